"""Concrete-function models that each make the converter fail in one classified way.

Used by tests/test_failures.py through the real worker pool:
  py_model           tf.py_function (EagerPyFunc): no builtin and no Flex kernel -> unsupported_op
  tensor_list_model  TensorArray with unknown element shapes -> dynamic_shapes
  cumsum_model       CUMSUM has no 16x8 kernel -> quantization_unsupported under int16x8
  conv_model         a conv net, fed representative data of the wrong rank -> representative_data
"""

import numpy as np
import tensorflow as tf


def py_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return tf.py_function(lambda a: a * 2.0, [x], tf.float32)

    return f


def tensor_list_model():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def f(x):
        ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=None)
        for i in tf.range(tf.shape(x)[0]):
            ta = ta.write(i, x[i][: i + 1])
        return ta.concat()

    return f


def cumsum_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def f(x):
        return tf.math.cumsum(x, axis=1) + 0.0

    return f


def conv_model():
    w = tf.constant(np.random.default_rng(0).random((3, 3, 1, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32, name="x")])
    def f(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    return f
