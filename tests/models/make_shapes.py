"""Small models of the shapes users bring, built in a subprocess by the tests that need them.

`python make_shapes.py OUT NAME...` writes each named model (and its sample files) into OUT.
Kept apart from the tests so the test process never imports TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def two_inputs(out: Path) -> None:
    """image (1x24x24x3) and vector (1x5) in, two outputs: the signature orders inputs by name."""
    import keras

    keras.utils.set_random_seed(0)
    img = keras.Input((24, 24, 3), name="image")
    vec = keras.Input((5,), name="vector")
    x = keras.layers.Conv2D(4, 3, activation="relu")(img)
    x = keras.layers.GlobalAveragePooling2D()(x)
    h = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(vec)])
    model = keras.Model([img, vec], [keras.layers.Dense(3, name="cls")(h), keras.layers.Dense(2, name="reg")(h)])
    model.save(out / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(out / "two.samples.npz", image=rng.random((16, 24, 24, 3), dtype=np.float32),
             vector=rng.random((16, 5), dtype=np.float32))
    np.savez(out / "two.calib.npz", vector=rng.random((24, 5), dtype=np.float32),
             image=rng.random((24, 24, 24, 3), dtype=np.float32))


def stacked(out: Path) -> None:
    """A (None, 12) model whose samples are np.stack of batch-1 inputs: (16, 1, 12)."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((12,), name="features")
    keras.Model(inp, keras.layers.Dense(4, activation="softmax")(keras.layers.Dense(8, activation="relu")(inp))
                ).save(out / "stacked.keras")
    rng = np.random.default_rng(1)
    np.save(out / "stacked.samples.npy", np.stack([rng.random((1, 12), dtype=np.float32) for _ in range(16)]))


def tf1_saved_model(out: Path) -> None:
    """A TF1-style SavedModel (tf.compat.v1 builder): no object graph that TF2's loader can restore."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, (None, 6), name="x")
        w = v1.get_variable("w", initializer=np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
        b = v1.get_variable("b", initializer=np.full((4,), 0.1, np.float32))
        y = tf.nn.softmax(tf.matmul(x, w) + b, name="probs")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(out / "tf1_sm"))
            sig = v1.saved_model.predict_signature_def({"x": x}, {"probs": y})
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.SERVING],
                                                 signature_def_map={"serving_default": sig})
            builder.save()


def optimizer_slots_saved_model(out: Path) -> None:
    """A SavedModel whose object graph references optimizer slot variables, as a Keras 2 model
    saved with its optimizer has: TF 2.21's loader re-creates them with `Optimizer.add_slot` on
    an optimizer it can only revive as a `_UserObject`, and fails. Made by saving a tf.Module
    with an `optimizer` child and writing the slot reference (`slot_variables`, what Keras 2's
    OptimizerV2 records) into its node of saved_model.pb; the variables stay as saved."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4), name="w")
            self.b = tf.Variable(np.full((4,), 0.1, np.float32), name="b")
            self.optimizer = tf.Module()
            self.optimizer.slot_w = tf.Variable(np.zeros((6, 4), np.float32), name="w/Adam")

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def serve(self, x):
            return {"probs": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}

    folder = out / "slots_sm"
    net = Net()
    tf.saved_model.save(net, str(folder), signatures={"serving_default": net.serve})
    pb = folder / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(pb.read_bytes())
    graph = sm.meta_graphs[0].object_graph_def

    def child(node: int, name: str) -> int:
        return next(c.node_id for c in graph.nodes[node].children if c.local_name == name)

    opt, w = child(0, "optimizer"), child(0, "w")
    slot = child(opt, "slot_w")
    node = graph.nodes[opt]
    keep = [c for c in node.children if c.local_name != "slot_w"]  # a slot is no child of its optimizer
    del node.children[:]
    node.children.extend(keep)
    ref = node.slot_variables.add()
    ref.original_variable_node_id, ref.slot_name, ref.slot_variable_node_id = w, "m", slot
    pb.write_bytes(sm.SerializeToString())


def official_tflite(out: Path) -> None:
    """two.keras converted outside the harness (as an official export would be): two_official.tflite."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(out / "two.keras")
    (out / "two_official.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


BUILDERS = {"official": official_tflite, "two": two_inputs, "stacked": stacked, "tf1": tf1_saved_model, "slots": optimizer_slots_saved_model}

if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        BUILDERS[name](folder)
