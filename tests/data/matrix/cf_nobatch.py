
import numpy as np
import tensorflow as tf

W = tf.constant(np.linspace(-1, 1, 48, dtype=np.float32).reshape(8, 6))

@tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="features")])
def _fn(x):
    h = tf.nn.relu(tf.matmul(x, W))
    return {"probs": tf.nn.softmax(h), "score": tf.reduce_sum(h, axis=-1, keepdims=True)}

def model():
    return _fn
