"""A Keras model is exported to a SavedModel once per pool, and every flag set converts from it.

`TFLiteConverter.from_keras_model` exports the model again for every conversion (~3 s of
MobileNet's ~7 s). `harness/convert/keras_export.py` exports once, shared by the pool's
workers under a lock; these tests check the sharing and that the artifacts are the ones
`from_keras_model` gives (same outputs on the same input).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.convert.pool import WorkerPool
from harness.core.flag_sets import BUILTIN_FLAG_SETS

pytestmark = [pytest.mark.slow, pytest.mark.cost(55)]  # seconds on one quiet core, for the xdist order (docs/testing.md)

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "models" / "digits_cnn.keras"

COMPARE = r"""
import sys, numpy as np, tensorflow as tf, keras
from ai_edge_litert.interpreter import Interpreter
m = keras.models.load_model(sys.argv[1], compile=False)
ours = open(sys.argv[2], "rb").read()
theirs = tf.lite.TFLiteConverter.from_keras_model(m).convert()
x = np.random.default_rng(0).random(tuple(m.inputs[0].shape), dtype=np.float32)
def run(b):
    it = Interpreter(model_content=b); it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x); it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])
print("SIZES", len(ours), len(theirs), "MAXDIFF", float(np.abs(run(ours) - run(theirs)).max()))
"""


def _convert(pool: WorkerPool, out: Path, flag_set: str):
    model = {"name": "cnn", "kind": "keras", "path": str(CNN), "entry": None, "signature": "serving_default"}
    return pool.submit({"op": "convert", "model": model, "shapes": [[1, 8, 8, 1]], "rep_path": None,
                        "options": BUILTIN_FLAG_SETS[flag_set].converter_options(),
                        "out_path": str(out / f"{flag_set}.tflite")})


# a worker started outside a pool (a Ray node) has no EXPORTS_ENV: it still converts
OUTSIDE_A_POOL = (
    "from harness.convert.sources import load_keras\n"
    "from pathlib import Path\n"
    "m = load_keras(Path(sys.argv[1]))\n"
    "b = m.make_converter([(1, 8, 8, 1)]).convert()\n"
    "print('BYTES', len(b))\n"
    "from harness.convert.keras_export import ExportedConverters\n"
    "k = keras.models.load_model(sys.argv[1], compile=False)\n"
    "# the exporter dropped at once: its private folder must live as long as the converter\n"
    "print('BYTES', len(ExportedConverters('t').converter(k, None).convert()))\n"
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    """Three flag sets through a two-worker pool, then ONE process (one TensorFlow import, not
    two) that converts with `from_keras_model` for the comparison and, outside any pool (no
    EXPORTS_ENV), through the harness's exporter. What each test asserts is recorded here."""
    from harness.convert.keras_export import EXPORTS_ENV

    tmp = tmp_path_factory.mktemp("keras-export")
    pool = WorkerPool(2, tmp / "logs", timeout_s=300)
    try:
        pool.start()
        flag_sets = ("fp32", "float16", "dynamic_range")
        answers = [f.result() for f in [_convert(pool, tmp, fs) for fs in flag_sets]]
        entries = sorted(os.listdir(pool.export_dir))
        exports = [e for e in entries if not e.endswith(".lock")]
        saved = [(Path(pool.export_dir) / e / "saved_model.pb").is_file() for e in exports]
        export_dir = pool.export_dir
    finally:
        pool.close()
    env = {k: v for k, v in os.environ.items() if k != EXPORTS_ENV}
    r = subprocess.run([sys.executable, "-c", COMPARE + OUTSIDE_A_POOL, str(CNN), str(tmp / "fp32.tflite")],
                       capture_output=True, text=True, timeout=300, check=False,
                       env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp)
    return {"answers": answers, "entries": entries, "exports": exports, "saved": saved,
            "export_dir": export_dir, "proc": r}


def test_two_workers_share_one_export_and_match_from_keras_model(converted: dict) -> None:
    answers, entries, exports = converted["answers"], converted["entries"], converted["exports"]
    assert all(a.ok for a in answers), [a.error for a in answers]
    # one model, one set of shapes: one export, whichever worker made it, none half-written
    assert len(exports) == 1 and not exports[0].endswith(".partial"), entries
    assert converted["saved"] == [True]  # saved_model.pb in it
    assert not os.path.exists(converted["export_dir"])  # removed with the pool

    r = converted["proc"]
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("SIZES")), None)
    assert line is not None, r.stderr[-2000:]
    _, ours, theirs, _, maxdiff = line.split()
    assert ours == theirs and float(maxdiff) == 0.0, line


def test_a_worker_without_the_pools_folder_still_converts(converted: dict) -> None:
    r = converted["proc"]
    sizes = [int(ln.split()[1]) for ln in r.stdout.splitlines() if ln.startswith("BYTES ")]
    assert len(sizes) == 2 and sizes[0] == sizes[1] > 1000, (sizes, r.stderr[-2000:])
