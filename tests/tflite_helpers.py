"""Small .tflite files for tests, converted once per session with TensorFlow in-process."""

from __future__ import annotations

from pathlib import Path


def tiny_classifier_tflite(path: Path, dynamic_range: bool = False) -> Path:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(size=(64, 64)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(64, 10)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 64], tf.float32, name="x")])
    def f(x):
        return {"probs": tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2))}

    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    if dynamic_range:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    path.write_bytes(c.convert())
    return path
