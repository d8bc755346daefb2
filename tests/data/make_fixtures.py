"""How the .tflite fixtures in this folder were made (run offline; the files are committed).

    .venv/bin/python tests/data/make_fixtures.py            # tiny.tflite, hang.tflite
    .venv/bin/python tests/data/make_fixtures.py --crasher  # search for crash.tflite
    .venv/bin/python tests/data/make_fixtures.py --gate     # gate_wide.tflite, gate_wide_same.tflite
    .venv/bin/python tests/data/make_fixtures.py --adb      # adb_fp32.tflite, adb_int8.tflite
    .venv/bin/python tests/data/make_fixtures.py --dr       # tiny_dr.tflite
    .venv/bin/python tests/data/make_fixtures.py --shapes   # shapes/{fixed,nobatch,dyn}.keras

tiny.tflite   a healthy 8 -> 16 -> 4 float classifier (FULLY_CONNECTED, RELU, SOFTMAX).
gate_wide.tflite  8 -> 256 -> 256 -> 4: far more work than tiny.tflite (a real slowdown to confirm).
gate_wide_same.tflite  gate_wide.tflite's architecture with other weights: the "same work" pair
              for the planted-change test (compare's confirmation must find no latency change between
              the two), at ~5 us an invoke; tiny's ~1 us is mostly timer and call noise (a
              4-round median of tiny and a same-work copy moved +91 % under load once).
adb_fp32.tflite, adb_int8.tflite  one small image CNN (8x8x1 'image' -> Conv2D 4 -> Dense 3,
              softmax) as fp32 and as full int8 (int8 input and output): the pair that
              tests/test_adb_device.py measures on the simulated device and locally. Committed so
              that module starts no TensorFlow (it tests devices, not conversion).
tiny_dr.tflite  tests/tflite_helpers.py's 64 -> 64 -> 10 classifier, dynamic-range quantized
              (int8 weights, float activations): what tests/test_check.py reads with `check`.
shapes/       three small Keras models whose input shapes tests/test_sample_shapes.py holds
              sample files against: fixed.keras (1, 8, 8, 1) and nobatch.keras (None, 8, 8, 1),
              a Conv2D 4 -> Dense 3 softmax each, and dyn.keras (1, None, 8) -> Dense 3.
hang.tflite   a WHILE loop whose condition `x[0] > -1` holds for every input in [0, 1):
              ai_edge_litert's invoke() never returns (the `timeout` fixture).
crash.tflite  tiny.tflite with one 32-bit word of its flatbuffer changed, found by a seeded
              random search: every candidate is loaded, allocated and invoked in a forked
              child, and the first one that kills the child with a signal is kept. The
              search log (offset, old and new value, signal) is in crash.txt.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_tiny() -> bytes:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(size=(8, 16)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(16, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def f(x):
        return {"probs": tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2))}

    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return c.convert()


def make_dense(widths: tuple[int, ...], seed: int) -> bytes:
    """A float MLP 8 -> widths... -> 4 with softmax (the shape family of tiny.tflite)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    sizes = (8, *widths, 4)
    ws = [tf.constant((rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32))  # scaled: healthy, varied outputs
          for a, b in zip(sizes, sizes[1:], strict=False)]

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def f(x):
        for w in ws[:-1]:
            x = tf.nn.relu(tf.matmul(x, w))
        return {"probs": tf.nn.softmax(tf.matmul(x, ws[-1]))}

    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return c.convert()


def make_hang() -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
    def f(x):
        def cond(i, v):
            return v[0, 0] > -1.0  # true for every input in [0, 1): the loop never ends

        def body(i, v):
            return i + 1, v * 1.0001

        _, out = tf.while_loop(cond, body, [tf.constant(0), x])
        return {"y": out}

    c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return c.convert()


def make_adb_pair() -> tuple[bytes, bytes]:
    """fp32 and full-int8 conversions of one seeded image CNN (see the docstring above)."""
    import numpy as np
    import tensorflow as tf

    tf.random.set_seed(0)
    inp = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = tf.keras.layers.Flatten()(x)
    m = tf.keras.Model(inp, tf.keras.layers.Dense(3, activation="softmax")(x))
    fp32 = tf.lite.TFLiteConverter.from_keras_model(m).convert()
    rng = np.random.default_rng(0)
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), dtype=np.float32)] for _ in range(8))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return fp32, c.convert()


def make_shape_models(out: Path) -> None:
    """The Keras models of shapes/ (see the docstring above)."""
    import tensorflow as tf

    out.mkdir(exist_ok=True)
    tf.random.set_seed(0)

    def cnn(batch_size):
        inp = tf.keras.Input((8, 8, 1), batch_size=batch_size, name="image")
        x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inp)
        x = tf.keras.layers.Flatten()(x)
        return tf.keras.Model(inp, tf.keras.layers.Dense(3, activation="softmax")(x))

    cnn(1).save(out / "fixed.keras")
    cnn(None).save(out / "nobatch.keras")
    seq = tf.keras.Input((None, 8), batch_size=1, name="seq")
    tf.keras.Model(seq, tf.keras.layers.Dense(3)(seq)).save(out / "dyn.keras")


def _try(blob: bytes, path: Path) -> int | None:
    """Signal number that killed a child loading and invoking BLOB, else None."""
    path.write_bytes(blob)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(2)
            os.open(os.devnull, os.O_WRONLY)
            import numpy as np
            from ai_edge_litert.interpreter import Interpreter

            signal.alarm(5)
            it = Interpreter(model_path=str(path))
            it.allocate_tensors()
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.full(d["shape"], 0.5, dtype=d["dtype"]))
            it.invoke()
            for d in it.get_output_details():
                it.get_tensor(d["index"]).sum()
        except BaseException:  # noqa: BLE001
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGALRM:
        return os.WTERMSIG(status)
    return None


def search_crasher(base: bytes, seed: int = 0, tries: int = 5000) -> tuple[bytes, str] | None:
    import ai_edge_litert.interpreter  # noqa: F401 - imported once, inherited by the forks

    rng = random.Random(seed)
    tmp = HERE / ".candidate.tflite"
    values = [0, 1, 2, 3, 7, 0xFFFF, 0x7FFFFFFF, -1, -2, 1 << 20, 1 << 28]
    try:
        for n in range(tries):
            off = rng.randrange(8, len(base) - 4) & ~3
            old = struct.unpack_from("<i", base, off)[0]
            new = rng.choice(values)
            if new == old:
                continue
            blob = bytearray(base)
            struct.pack_into("<i", blob, off, new)
            sig = _try(bytes(blob), tmp)
            if sig is not None:
                note = (f"try {n} (seed {seed}): word at offset {off} changed {old} -> {new}; "
                        f"the child died with {signal.Signals(sig).name}")
                return bytes(blob), note
    finally:
        tmp.unlink(missing_ok=True)
    return None


def main() -> int:
    if "--crasher" in sys.argv:
        base = (HERE / "tiny.tflite").read_bytes()
        found = search_crasher(base)
        if found is None:
            print("no crasher found")
            return 1
        blob, note = found
        (HERE / "crash.tflite").write_bytes(blob)
        (HERE / "crash.txt").write_text(note + "\n")
        print(note)
        return 0
    if "--gate" in sys.argv:
        (HERE / "gate_wide.tflite").write_bytes(make_dense((256, 256), seed=0))
        (HERE / "gate_wide_same.tflite").write_bytes(make_dense((256, 256), seed=1))
        return 0
    if "--shapes" in sys.argv:
        make_shape_models(HERE / "shapes")
        return 0
    if "--dr" in sys.argv:
        sys.path.insert(0, str(HERE.parent.parent))
        from tests.tflite_helpers import tiny_classifier_tflite

        tiny_classifier_tflite(HERE / "tiny_dr.tflite", dynamic_range=True)
        return 0
    if "--adb" in sys.argv:
        fp32, int8 = make_adb_pair()
        (HERE / "adb_fp32.tflite").write_bytes(fp32)
        (HERE / "adb_int8.tflite").write_bytes(int8)
        return 0
    (HERE / "tiny.tflite").write_bytes(make_tiny())
    (HERE / "hang.tflite").write_bytes(make_hang())
    return 0


if __name__ == "__main__":
    sys.exit(main())
