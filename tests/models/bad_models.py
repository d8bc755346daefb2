"""Writes models that are broken in one way each (tests/test_bad_inputs.py).

Usage: python bad_models.py OUT_DIR
(run offline: its output is committed as tests/data/bad_models/, which the test copies, so the
test starts no TensorFlow of its own; rerun it into that folder when a model here changes)
  text.keras        a text file renamed .keras
  nomodel.h5        an HDF5 file holding a dataset but no model
  sm_novars/        a SavedModel whose variables/ folder was deleted
  sm_ok/            a healthy SavedModel (used with signature = "nope")
  dynamic.keras     Input(shape=(None, 8)): an unknown time dimension and no samples
  tokens.keras      int32 token ids into an Embedding, and no samples
"""

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
(out / "text.keras").write_text("this is not a model\n")
with h5py.File(out / "nomodel.h5", "w") as f:
    f.create_dataset("weights", data=np.arange(10.0))


class Scale(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([4, 2]))

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.matmul(x, self.w)}


for name in ("sm_novars", "sm_ok"):
    m = Scale()
    tf.saved_model.save(m, str(out / name), signatures={"serving_default": m.__call__})
shutil.rmtree(out / "sm_novars" / "variables")

inp = tf.keras.Input(shape=(None, 8), name="seq")
tf.keras.Model(inp, tf.keras.layers.Dense(3)(inp)).save(out / "dynamic.keras")
tok = tf.keras.Input(shape=(4,), dtype="int32", name="ids")
x = tf.keras.layers.Flatten()(tf.keras.layers.Embedding(50, 3)(tok))
tf.keras.Model(tok, tf.keras.layers.Dense(2)(x)).save(out / "tokens.keras")
