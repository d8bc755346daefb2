"""A classifier where exactly one named layer breaks int8, for `diagnose` and the budget search.

`hidden` is a ReLU layer one of whose units never fires (zero weights, bias -1). In the
next layer, `culprit`, that dead unit's outgoing weight row holds values ~500x the
others. The float model is unchanged (the row multiplies zeros), but per-channel int8
takes each output channel's scale from that row, so the real weights collapse to a few
quanta and int8 loses most of its accuracy. Keeping `culprit` in float fixes it;
keeping any other layer in float does not.

Run as a script: `python outlier_int8.py OUT_DIR` writes outlier.keras and
outlier.samples.npz (inputs `x`, `labels`), trained on Gaussian blobs in ~2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

CLASSES, FEATURES, WIDTH, DEAD_UNIT, OUTLIER = 8, 16, 32, 5, 500.0


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(0, 1.0, (CLASSES, FEATURES))
    labels = rng.integers(0, CLASSES, n)
    x = centers[labels] + rng.normal(0, 0.35, (n, FEATURES))
    return x.astype(np.float32), labels.astype(np.int64)


def build(out_dir: Path) -> tuple[Path, Path]:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((FEATURES,), name="x")
    h = keras.layers.Dense(WIDTH, activation="relu", name="hidden")(inp)
    c = keras.layers.Dense(WIDTH, activation="relu", name="culprit")(h)
    d = keras.layers.Dense(WIDTH, activation="relu", name="after")(c)
    out = keras.layers.Dense(CLASSES, activation="softmax", name="probs")(d)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x, y = blobs(2000, 0)
    model.fit(x, y, epochs=6, batch_size=64, verbose=0)
    w, b = model.get_layer("hidden").get_weights()
    w[:, DEAD_UNIT] = 0.0
    b[DEAD_UNIT] = -1.0  # relu(-1) = 0 for every input: the unit never fires
    model.get_layer("hidden").set_weights([w, b])
    wc, bc = model.get_layer("culprit").get_weights()
    wc[DEAD_UNIT, :] = OUTLIER * np.abs(np.delete(wc, DEAD_UNIT, axis=0)).max()
    model.get_layer("culprit").set_weights([wc, bc])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "outlier.keras"
    model.save(path)
    xs, ys = blobs(200, 1)
    samples = out_dir / "outlier.samples.npz"
    np.savez(samples, x=xs, labels=ys)
    return path, samples


if __name__ == "__main__":
    print(*build(Path(sys.argv[1])))
