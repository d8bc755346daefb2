"""A concrete-function model whose only real op, MatrixInverse, has no TFLite builtin.

It converts only with Select TF ops (Flex): `check` must name MatrixInverse and recommend
select_tf_ops, and the local runtime (no Flex delegate) must report the row `unsupported`.
"""

import tensorflow as tf


def inv_model():
    @tf.function(input_signature=[tf.TensorSpec([1, 3, 3], tf.float32, name="x")])
    def f(x):
        return {"y": tf.linalg.inv(x + 3.0 * tf.eye(3, batch_shape=[1]))}

    return f
