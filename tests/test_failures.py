"""Each conversion-failure category, produced by a REAL model through the real worker pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.convert.failures import classify
from harness.convert.pool import WorkerPool
from harness.core.flag_sets import BUILTIN_FLAG_SETS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FAILING = ROOT / "tests" / "models" / "failing_models.py"
INV = ROOT / "tests" / "models" / "inv_model.py"
LSTM = ROOT / "models" / "extra" / "lstm_not_unrolled.keras"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    # one worker: the jobs' answers, not parallel conversion, are what this checks (one TensorFlow import)
    p = WorkerPool(1, tmp_path_factory.mktemp("logs"), timeout_s=300)
    yield p
    p.close()


def _cf(path: Path, entry: str) -> dict:
    return {"name": entry, "kind": "concrete_function", "path": str(path), "entry": entry,
            "signature": "serving_default"}


def _submit(pool, tmp_path, model, flag_set, shapes, rep=None):
    rep_path = None
    if rep is not None:
        rep_path = tmp_path / f"{flag_set}-rep.npz"
        np.savez(rep_path, **{"0": rep})
    return pool.submit({"op": "convert", "model": model, "options": BUILTIN_FLAG_SETS[flag_set].converter_options(),
                        "rep_path": str(rep_path) if rep_path else None, "shapes": shapes,
                        "out_path": str(tmp_path / f"{flag_set}.tflite")})


def _classify(answer, flag_set):
    assert not answer.ok, "the conversion was expected to fail"
    return classify(answer.error, answer.log, signal=answer.signal, timed_out=answer.timed_out, flag_set=flag_set)


def test_failure_categories(pool, tmp_path):
    rng = np.random.default_rng(0)
    for sub in "abcde":
        (tmp_path / sub).mkdir()
    jobs = {
        "needs_flex": (_submit(pool, tmp_path / "a", _cf(INV, "inv_model"), "fp32", [[1, 3, 3]]), "fp32"),
        "unsupported": (_submit(pool, tmp_path / "b", _cf(FAILING, "py_model"), "select_tf_ops", [[1, 4]]),
                        "select_tf_ops"),
        "tensor_list": (_submit(pool, tmp_path / "c", _cf(FAILING, "tensor_list_model"), "fp32", [[2, 3]]), "fp32"),
        "quant": (_submit(pool, tmp_path / "d", _cf(FAILING, "cumsum_model"), "int16x8", [[1, 8]],
                          rng.random((8, 8), dtype=np.float32)), "int16x8"),
        # rank 2 samples for a rank 4 input: calibration's CONV_2D refuses them
        "rep": (_submit(pool, tmp_path / "e", _cf(FAILING, "conv_model"), "int8", [[1, 8, 8, 1]],
                        rng.random((8, 64), dtype=np.float32)), "int8"),
    }
    got = {k: _classify(f.result(), fs) for k, (f, fs) in jobs.items()}

    assert got["needs_flex"].category == "needs_flex_ops"
    assert "MatrixInverse" in got["needs_flex"].reason and "select_tf_ops" in got["needs_flex"].reason
    assert got["unsupported"].category == "unsupported_op"
    assert "EagerPyFunc" in got["unsupported"].reason
    assert got["tensor_list"].category == "dynamic_shapes"
    assert "unroll" in got["tensor_list"].reason
    assert got["quant"].category == "quantization_unsupported"
    assert "CUMSUM" in got["quant"].reason and "int8" in got["quant"].reason
    assert got["rep"].category == "representative_data"


@pytest.mark.skipif(not LSTM.is_file(), reason="models/extra/lstm_not_unrolled.keras was not built "
                    "(the crash does not reproduce with this TensorFlow)")
def test_converter_crash_is_classified(pool, tmp_path):
    model = {"name": "lstm", "kind": "keras", "path": str(LSTM), "entry": None, "signature": "serving_default"}
    prep = pool.submit({"op": "prepare", "model": model, "eval_samples": 4, "seed": 0,
                        "out_dir": str(tmp_path / "prep")}).result()
    assert prep.ok, prep.error
    shapes = [i["shape"] for i in prep.data["inputs"]]
    with np.load(tmp_path / "prep" / "representative.npz") as d:
        rep = d["0"]
    answer = _submit(pool, tmp_path, model, "int8", shapes, rep).result()
    failure = _classify(answer, "int8")
    assert answer.signal is not None
    assert failure.category == "converter_crashed"
    # the next job runs on a fresh worker; forked from the pool's one TensorFlow import
    # (convert/forkserver.py), it costs no import of its own
    after = _submit(pool, tmp_path, model, "fp32", shapes).result()
    assert after.ok, after.error
    assert pool.tensorflow_imports == (1 if pool._forks else 2)
