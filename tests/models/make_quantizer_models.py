"""Small models for the AI Edge Quantizer tests (tests/test_quantizer.py), seeded.

`python tests/models/make_quantizer_models.py tests/data/quantizer` writes these into the folder
the test reads (run offline; the files are committed, so the test imports no TensorFlow for
them):
- `cnn.keras`: conv (8 filters) -> dense 32 -> dense 16 -> dense 4; the last dense's input
  dimension, 16, is not divisible by a block of 32 (the blockwise refusal);
- `cnn.samples.npz`, `cnn.calib.npz`: evaluation inputs with labels, representative inputs;
- `fp32.tflite`: the converter's fp32 artifact of it (one SignatureDef);
- `f16.tflite`: `supported_types=[tf.float16]`: float16 weights behind DEQUANTIZE ops, like
  mediapipe's official models;
- `dynamic.tflite`: the converter's dynamic-range artifact (already quantized).
The model without a SignatureDef is made from `fp32.tflite` in the test (LiteRT only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(out: Path) -> None:
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 1), name="image")
    h = tf.keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    h = tf.keras.layers.Flatten()(h)
    h = tf.keras.layers.Dense(32, activation="relu", name="fc1")(h)
    h = tf.keras.layers.Dense(16, activation="relu", name="fc2")(h)
    probs = tf.keras.layers.Dense(4, activation="softmax", name="probs")(h)
    model = tf.keras.Model(inp, probs)
    rng = np.random.default_rng(0)
    x = rng.random((24, 8, 8, 1), dtype=np.float32)
    np.savez(out / "cnn.samples.npz", x=x[:16], y=np.argmax(model.predict(x[:16], verbose=0), -1))
    np.savez(out / "cnn.calib.npz", x=x[8:])
    model.save(out / "cnn.keras")
    for name, setup in (("fp32", None), ("f16", [tf.float16]), ("dynamic", [])):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if setup is not None:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            if setup:
                conv.target_spec.supported_types = setup
        (out / f"{name}.tflite").write_bytes(conv.convert())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
