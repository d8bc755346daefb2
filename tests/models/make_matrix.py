"""The models of the conversion matrix (tests/test_conversion_matrix.py), small and seeded.

`python tests/models/make_matrix.py tests/data/matrix` writes every model and its sample files
into that folder, with `entries.json`: the campaign entries ({name, path, kind?, samples?}),
paths relative to it (it also prints them, absolute). Run offline; the folder is committed, so
the test builds nothing and its converter workers are its only TensorFlow. Each model is one cell of model kind x signature:

| name            | kind                          | signature                                   |
|-----------------|-------------------------------|---------------------------------------------|
| k_func_one      | Keras functional              | one image input (batch 1)                   |
| k_func_two      | Keras functional              | two named inputs, two outputs               |
| k_func_dict     | Keras functional              | dict outputs                                |
| k_seq_nobatch   | Keras Sequential              | one input, unknown batch                    |
| k_sub_tokens    | Keras subclassed              | int32 token input                           |
| sm_two_dict     | SavedModel (tf.saved_model)   | two named inputs, dict outputs              |
| sm_tokens       | SavedModel (tf.saved_model)   | int32 token input                           |
| sm_tf1          | SavedModel (TF1 builder)      | one input, unknown batch                    |
| cf_nobatch      | concrete function             | unknown batch, dict outputs                 |
| jax_one         | JAX                           | one input                                   |
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CF_SOURCE = '''
import numpy as np
import tensorflow as tf

W = tf.constant(np.linspace(-1, 1, 48, dtype=np.float32).reshape(8, 6))

@tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="features")])
def _fn(x):
    h = tf.nn.relu(tf.matmul(x, W))
    return {"probs": tf.nn.softmax(h), "score": tf.reduce_sum(h, axis=-1, keepdims=True)}

def model():
    return _fn
'''

JAX_SOURCE = '''
import numpy as np

def forward(params, x):
    import jax.numpy as jnp
    import jax
    return jax.nn.softmax(jnp.tanh(x @ params["w"]) @ params["v"], axis=-1)

def model():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(10, 16)).astype(np.float32) * 0.3,
              "v": rng.normal(size=(16, 4)).astype(np.float32) * 0.3}
    return forward, params, [("x", (1, 10), "float32")]
'''


def build(out: Path) -> list[dict]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    L = keras.layers
    entries: list[dict] = []

    def keep(name: str, path: str, samples: dict | np.ndarray | None = None, **extra) -> None:
        entry = {"name": name, "path": str(out / path), **extra}
        if samples is not None:
            f = out / f"{name}.samples.npz"
            np.savez(f, **(samples if isinstance(samples, dict) else {"x": samples}))
            entry["samples"] = str(f)
        entries.append(entry)

    img = keras.Input((12, 12, 1), batch_size=1, name="image")
    x = L.Flatten()(L.Conv2D(4, 3, activation="relu")(img))
    keras.Model(img, L.Dense(5, activation="softmax")(x)).save(out / "k_func_one.keras")
    keep("k_func_one", "k_func_one.keras", rng.random((16, 12, 12, 1), dtype=np.float32))

    a, b = keras.Input((12, 12, 1), name="image"), keras.Input((6,), name="vector")
    h = L.Concatenate()([L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(a)), L.Dense(4)(b)])
    keras.Model([a, b], [L.Dense(3, name="cls")(h), L.Dense(2, name="box")(h)]).save(out / "k_func_two.keras")
    keep("k_func_two", "k_func_two.keras", {"image": rng.random((16, 12, 12, 1), dtype=np.float32),
                                           "vector": rng.random((16, 6), dtype=np.float32)})

    v = keras.Input((10,), name="features")
    h = L.Dense(8, activation="relu")(v)
    keras.Model(v, {"probs": L.Dense(3, activation="softmax")(h), "value": L.Dense(1)(h)}).save(
        out / "k_func_dict.keras")
    keep("k_func_dict", "k_func_dict.keras", rng.random((16, 10), dtype=np.float32))

    seq = keras.Sequential([keras.Input((10,)), L.Dense(8, activation="relu"), L.Dense(4, activation="softmax")])
    seq.save(out / "k_seq_nobatch.keras")
    keep("k_seq_nobatch", "k_seq_nobatch.keras", rng.random((16, 10), dtype=np.float32))

    @keras.saving.register_keras_serializable(package="matrix")
    class Tokens(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.emb = L.Embedding(50, 8)
            self.pool = L.GlobalAveragePooling1D()
            self.head = L.Dense(3, activation="softmax")

        def call(self, ids):
            return self.head(self.pool(self.emb(ids)))

    sub = Tokens()
    sub(np.zeros((1, 7), np.int32))
    sm_sub = out / "k_sub_tokens_sm"  # a subclassed model is shipped as its SavedModel export
    sub.export(str(sm_sub), format="tf_saved_model", verbose=False)
    tokens = rng.integers(0, 50, (16, 7)).astype(np.int32)
    keep("k_sub_tokens", "k_sub_tokens_sm", tokens)

    class TwoDict(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32, name="left"),
                                      tf.TensorSpec([1, 6], tf.float32, name="right")])
        def serve(self, left, right):
            return {"sum": tf.matmul(left + right, self.w), "diff": tf.nn.sigmoid(tf.matmul(left - right, self.w))}

    m = TwoDict()
    tf.saved_model.save(m, str(out / "sm_two_dict"), signatures={"serving_default": m.serve})
    keep("sm_two_dict", "sm_two_dict", {"left": rng.random((16, 6), dtype=np.float32),
                                        "right": rng.random((16, 6), dtype=np.float32)})

    class Tok(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(rng.normal(size=(50, 8)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 7], tf.int32, name="ids")])
        def serve(self, ids):
            return {"pooled": tf.reduce_mean(tf.gather(self.table, ids), axis=1)}

    t = Tok()
    tf.saved_model.save(t, str(out / "sm_tokens"), signatures={"serving_default": t.serve})
    keep("sm_tokens", "sm_tokens", {"ids": tokens})

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        ph = v1.placeholder(tf.float32, (None, 6), name="x")
        w = v1.get_variable("w", initializer=np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
        y = tf.nn.softmax(tf.matmul(ph, w), name="probs")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(out / "sm_tf1"))
            builder.add_meta_graph_and_variables(
                sess, [v1.saved_model.SERVING],
                signature_def_map={"serving_default": v1.saved_model.predict_signature_def({"x": ph}, {"probs": y})})
            builder.save()
    keep("sm_tf1", "sm_tf1", rng.random((16, 6), dtype=np.float32))

    (out / "cf_nobatch.py").write_text(CF_SOURCE)
    keep("cf_nobatch", "cf_nobatch.py:model", rng.random((16, 8), dtype=np.float32))

    (out / "jax_one.py").write_text(JAX_SOURCE)
    keep("jax_one", "jax_one.py:model", rng.random((16, 10), dtype=np.float32), kind="jax")
    return entries


def relative(entries: list[dict], folder: Path) -> list[dict]:
    """ENTRIES with their paths relative to FOLDER (entries.json: the committed copy moves)."""
    def rel(v: str) -> str:
        return str(Path(v).relative_to(folder)) if v.startswith(str(folder)) else v

    return [{k: rel(v) if k in ("path", "samples") else v for k, v in e.items()} for e in entries]


if __name__ == "__main__":
    folder = Path(sys.argv[1]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    entries = build(folder)
    (folder / "entries.json").write_text(json.dumps(relative(entries, folder), indent=1) + "\n")
    print("ENTRIES " + json.dumps(entries))
