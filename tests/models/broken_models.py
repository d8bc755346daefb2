"""Concrete-function models whose converted outputs are broken on purpose.

`nan_model` takes log of a negative number for every input in [0, 1), so its outputs
are NaN; `zero_model` ends in relu of a negative number, so its outputs are all zeros.
The harness must mark both `unhealthy`, never `ok`.
"""

import tensorflow as tf


def nan_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return {"y": tf.math.log(x - 2.0)}

    return f


def zero_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return {"y": tf.nn.relu(-x - 1.0) * tf.ones([1, 3])[:, :1]}

    return f


def tiny_classifier():
    """A healthy two-layer classifier with fixed weights (reference for the others)."""
    w1 = tf.constant([[0.5, -0.2, 0.1], [0.3, 0.8, -0.5], [-0.6, 0.1, 0.9], [0.2, -0.4, 0.3]])
    w2 = tf.constant([[1.0, -1.0, 0.5], [-0.5, 1.0, 0.2], [0.3, 0.4, -1.0]])

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return {"probs": tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2))}

    return f
