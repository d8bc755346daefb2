"""How the .tflite files in this folder were made (run offline; the files are committed).

    .venv/bin/python tests/data/io/make_io_models.py

The I/O dtypes tests/test_compiled_model.py checks CompiledModel against: an 8x8x1 `image`
-> Conv2D 4 -> Dense 3 softmax model, seeded, converted by TensorFlow as
- int8io.tflite: full integer with int8 input and output (CompiledModel runs it),
- int16io.tflite: 16x8 with int16 input and output (CompiledModel refuses it),
and int64out.tflite: an argmax whose output is int64 (refused too). The test converted these
in a TensorFlow child every run; committed, the module starts no TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(out: Path) -> None:
    import tensorflow as tf

    tf.random.set_seed(0)
    inp = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Flatten()(tf.keras.layers.Conv2D(4, 3, activation="relu")(inp))
    m = tf.keras.Model(inp, tf.keras.layers.Dense(3, activation="softmax")(x))
    rng = np.random.default_rng(0)
    for name, io, ops in (("int8io", tf.int8, tf.lite.OpsSet.TFLITE_BUILTINS_INT8),
                          ("int16io", tf.int16,
                           tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)):
        c = tf.lite.TFLiteConverter.from_keras_model(m)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), dtype=np.float32)] for _ in range(8))
        c.target_spec.supported_ops = [ops]
        c.inference_input_type = c.inference_output_type = io
        (out / f"{name}.tflite").write_bytes(c.convert())

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32, name="image")])
    def am(image):
        return {"cls": tf.argmax(tf.reshape(image, [1, 64]), axis=1)}

    c = tf.lite.TFLiteConverter.from_concrete_functions([am.get_concrete_function()], am)
    (out / "int64out.tflite").write_bytes(c.convert())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
