"""The conversion matrix: model kinds x signatures x every built-in flag set, end to end.

Ten small models (tests/models/make_matrix.py, committed in tests/data/matrix so the module's
only TensorFlow is its two converter workers: Keras functional, Sequential
and subclassed; SavedModels from tf.saved_model.save and from the TF1 builder; a concrete
function; JAX; with one input, two named inputs and two outputs, int32 tokens, an unknown
batch, dict outputs) run through the real CLI under every built-in flag set. Each cell must be
an `ok` row with drift against the original, or a failure whose category names the
converter's limit (never the catch-all `conversion_error`, never `unhealthy`), and the
failures must be exactly the known ones, so a new one, or a known one fixed, shows here.

One run per module, one conversion cache for the module, 4 evaluation samples and two
timed runs per row: about four minutes on two busy cores.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from harness.core.flag_sets import BUILTIN_FLAG_SETS

from .conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.cost(70)]  # seconds on one quiet core, for the xdist order (docs/testing.md)

FLAG_SETS = list(BUILTIN_FLAG_SETS)
MODELS = ["k_func_one", "k_func_two", "k_func_dict", "k_seq_nobatch", "k_sub_tokens", "sm_two_dict", "sm_tokens",
          "sm_tf1", "cf_nobatch", "jax_one"]
# The converter's known limits on these models: (model, flag set) -> failure category
EXPECTED_FAILURES = {
    # 16x8 calibration records no range for the float cast of the token ids before the embedding
    ("k_sub_tokens", "int16x8"): "quantization_unsupported",
}
MATRIX_DATA = Path(__file__).resolve().parent / "data" / "matrix"  # tests/models/make_matrix.py's output
LIMIT_CATEGORIES = {"quantization_unsupported", "unsupported_op", "needs_flex_ops", "dynamic_shapes",
                    "representative_data", "converter_crashed", "sample_data", "input_mismatch"}


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    shutil.copytree(MATRIX_DATA, root / "models")
    entries = json.loads((root / "models" / "entries.json").read_text())
    entries = [{k: str(root / "models" / v) if k in ("path", "samples") else v for k, v in e.items()}
               for e in entries]
    assert [e["name"] for e in entries] == MODELS
    lines = ['name = "matrix"', "[settings]", f"flag_sets = {json.dumps(FLAG_SETS)}", "runs = 2", "warmup_runs = 0",
             "min_seconds = 0.0", "eval_samples = 4"]
    for e in entries:
        lines.append("[[models]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    (root / "matrix.toml").write_text("\n".join(lines) + "\n")
    done = run_cli("run", str(root / "matrix.toml"), "--out", str(root / "run"), "--store", str(root / "s.sqlite"),
                   "--cache-dir", str(root / "cache"), "--workers", "2", timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    rows = {(r["model"], r["flag_set"]): r for r in json.loads((root / "run" / "results.json").read_text())}
    return rows, json.loads((root / "run" / "logs" / "build-timeline.json").read_text())["jobs"]


@pytest.fixture(scope="module")
def matrix(matrix_run):
    return matrix_run[0]


def test_every_cell_has_a_row(matrix):
    assert set(matrix) == {(m, fs) for m in MODELS for fs in FLAG_SETS}


@pytest.mark.parametrize("model", MODELS)
def test_each_cell_is_ok_with_drift_or_a_named_converter_limit(matrix, model):
    for fs in FLAG_SETS:
        r = matrix[(model, fs)]
        if (model, fs) in EXPECTED_FAILURES:
            assert r["status"] in ("conversion_failed", "unsupported"), (fs, r["status"], r["reason"])
            assert r["failure_category"] == EXPECTED_FAILURES[(model, fs)], (fs, r["failure_category"], r["reason"])
            assert r["failure_category"] in LIMIT_CATEGORIES and r["reason"], (fs, r["reason"])
            continue
        assert r["status"] == "ok", (fs, r["status"], r["failure_category"], r["reason"])
        drift = r["drift"] or {}
        assert drift.get("samples") == 4 and math.isfinite(drift["cosine"]) and drift["cosine"] > 0.95, (fs, drift)


def test_rows_say_how_each_model_was_converted(matrix):
    paths = {m: matrix[(m, "fp32")]["conversion_path"] for m in MODELS}
    assert paths["sm_tf1"] == "tf_compat_v1_graph"
    assert paths["jax_one"].startswith("jax:")
    assert paths["k_func_one"] == "keras" and paths["sm_tokens"] == "saved_model"
    assert paths["cf_nobatch"] == "concrete_function"


def test_no_worker_waited_on_a_calibration_lock(matrix_run):
    """Two workers, three int8-family flag sets per model: each model's first family job makes
    the calibration while the others are held out of the pool (issue 19), so the run's
    timeline shows every other family job starting after it and no worker waiting on the lock."""
    from harness.pipeline.timeline import lock_waits, spans

    _rows, events = matrix_run
    assert lock_waits(events) == []
    family = [s for s in spans(events) if s.calibration_key]
    assert {s.flag_set for s in family} == {"int8", "int8_float_io", "int16x8"}
    for key in {s.calibration_key for s in family}:
        group = [s for s in family if s.calibration_key == key]
        made = [s for s in group if s.calibration == "made"]
        assert len(made) <= 1, [(s.model, s.flag_set) for s in made]  # once per model and data
        for s in group:
            if made and s is not made[0]:
                assert s.started >= made[0].finished, (s.model, s.flag_set)
    finished = [e for e in events if e["event"] == "finished" and e.get("calibration") == "reused"]
    assert finished and all(e["calibration_wait_s"] < 1.0 for e in finished)
