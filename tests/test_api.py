"""The Python API (harness/api.py, exported from harness/__init__.py), as a notebook uses it.

Fast tests run the bundled-with-the-tests tiny.tflite (no conversion, so no TensorFlow):
real local measurements in a fresh process, a real SQLite store. The slow ones convert the
bundled Keras model for real.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.core import statuses
from harness.core.errors import UsageError

from .conftest import MODELS, ROOT

TINY = ROOT / "tests" / "data" / "tiny.tflite"
FAST = {"runs": 5, "warmup_runs": 1, "min_seconds": 0, "eval_samples": 4}
HAS_PANDAS = importlib.util.find_spec("pandas") is not None


def places(tmp: Path, tag: str) -> dict:
    return {"out": tmp / tag, "store": tmp / "harness.sqlite", "cache_dir": tmp / "cache", "workers": 1}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    first = harness.run_model(TINY, **places(tmp, "a"), **FAST)
    second = harness.run_model(TINY, **places(tmp, "b"), **FAST)
    return tmp, first, second


def test_import_harness_loads_neither_tensorflow_nor_numpy():
    code = ("import sys, harness; names = harness.__all__; harness.rows; harness.compare; harness.run_model; "
            "print(sorted(m for m in ('numpy', 'tensorflow', 'harness.pipeline.campaign') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
    assert {"run_campaign", "run_model", "convert_model", "rows", "compare"} <= set(harness.__all__)
    for name in ("run_campaign", "run_model", "convert_model", "rows", "compare"):
        assert getattr(harness, name).__doc__, name


def test_run_model_returns_a_summary_whose_rows_every_reader_agrees_on(two_runs):
    tmp, first, _ = two_runs
    assert [r.status for r in first.results] == [statuses.OK]
    assert first.results[0].latency_us["n"] >= FAST["runs"]
    by_id = harness.rows(first.run_id, store=tmp / "harness.sqlite")
    readers = [harness.rows(first), by_id, harness.rows(first.out_dir), harness.rows(first.out_dir / "results.json")]
    for got in readers:
        assert [(r.key, r.status, r.artifact) for r in got] == [(r.key, r.status, r.artifact) for r in first.results]
    assert by_id[0].samples_us == first.results[0].samples_us  # raw samples come back from the store


def test_rows_of_the_latest_run_is_the_second(two_runs):
    tmp, _, second = two_runs
    assert [r.key for r in harness.rows("latest", store=tmp / "harness.sqlite")] == [r.key for r in second.results]
    assert harness.rows(second.run_id, store=tmp / "harness.sqlite")[0].started_at == second.results[0].started_at


@pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed here")
def test_rows_become_a_dataframe_with_dotted_columns(two_runs):
    _, first, _ = two_runs
    df = harness.rows(first).to_dataframe()
    assert len(df) == 1 and df["status"][0] == statuses.OK
    assert df["latency_us.p50"][0] == first.results[0].latency_us["p50"]
    assert "samples_us" not in df.columns and "samples_us" in harness.rows(first).to_dataframe(samples=True)


@pytest.mark.skipif(HAS_PANDAS, reason="pandas is installed here")
def test_without_pandas_the_dataframe_says_how_to_get_it(two_runs):
    _, first, _ = two_runs
    rows = harness.rows(first)
    with pytest.raises(ImportError, match="pip install pandas"):
        rows.to_dataframe()
    assert rows[0].status == statuses.OK  # the rows themselves need no pandas


def test_rows_of_missing_things_are_one_line_errors(tmp_path, two_runs):
    store_dir, _, _ = two_runs
    with pytest.raises(UsageError, match="no results store"):
        harness.rows("latest", store=tmp_path / "none.sqlite")
    with pytest.raises(UsageError, match="no such file"):
        harness.rows(tmp_path / "results.json")
    with pytest.raises(UsageError, match="folder has no results.json"):
        harness.rows(tmp_path)
    with pytest.raises(UsageError, match="no run 'zzz'"):
        harness.rows("zzz", store=store_dir / "harness.sqlite")


def test_compare_two_runs_matches_the_cli_gate(two_runs, cli):
    tmp, first, second = two_runs
    c = harness.compare(first, second, max_latency_regression=10.0, max_size_increase=0.0)
    assert len(c.rows) == 1 and not c.regressed
    assert c.rows[0].size_bytes == (first.results[0].size_bytes, second.results[0].size_bytes)
    by_id = harness.compare(first.run_id, second.out_dir, store=tmp / "harness.sqlite",
                            max_latency_regression=10.0)
    assert by_id.summary() == c.summary()
    proc = cli("compare", first.run_id, second.run_id, "--store", str(tmp / "harness.sqlite"),
               "--max-latency-regression", "1000%")
    assert proc.returncode == 0, proc.stderr
    assert c.summary() in proc.stdout
    with pytest.raises(UsageError, match="unknown threshold.*max_latency_regression"):
        harness.compare(first, second, max_latency=0.1)


def test_run_campaign_takes_a_toml_path_and_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(f'name = "notebook"\n[[models]]\npath = "{TINY}"\n[settings]\nruns = 50\nthreads = [1, 2]\n')
    summary = harness.run_campaign(toml, threads=1, **places(tmp_path, "run"), **FAST)
    assert [(r.model, r.threads, r.status) for r in summary.results] == [("tiny", 1, statuses.OK)]
    assert summary.results[0].latency_us["n"] < 50  # runs=5 overrode the file's 50 (min_seconds 0)
    assert (summary.out_dir / "results.json").is_file() and summary.store_path == tmp_path / "harness.sqlite"


def test_bad_settings_are_one_line_errors_before_anything_runs(tmp_path):
    with pytest.raises(UsageError, match="runs must be at least 1"):
        harness.run_model(TINY, runs=0, **places(tmp_path, "x"))
    with pytest.raises(UsageError, match="unknown setting 'rnus'"):
        harness.run_model(TINY, rnus=5, **places(tmp_path, "x"))
    with pytest.raises(UsageError, match="does not exist"):
        harness.run_model(tmp_path / "nope.keras", **places(tmp_path, "x"))
    with pytest.raises(UsageError, match="unknown flag set|flag set"):
        harness.run_model(TINY, ["fp33"], **places(tmp_path, "x"))
    assert not (tmp_path / "x").exists()


def test_convert_a_tflite_gives_it_as_given(tmp_path):
    done = harness.convert_model(TINY, out=tmp_path / "logs", cache_dir=tmp_path / "cache", workers=1)
    assert [a.ok for a in done.artifacts] == [True]
    assert done.artifacts[0].path.read_bytes() == TINY.read_bytes()
    assert done.prepared["tiny"].meta.inputs


@pytest.mark.slow
def test_run_model_converts_a_keras_model_for_real(tmp_path):
    summary = harness.run_model(MODELS / "digits_cnn.keras", ["fp32"], **places(tmp_path, "keras"), **FAST)
    (row,) = summary.results
    assert row.status == statuses.OK and row.flag_set == "fp32" and row.converted
    assert row.drift["max_abs"] < 1e-3  # fp32 keeps the original's outputs
    # the run's eval_samples: the same reference outputs, so the cache answers without a worker
    again = harness.convert_model(MODELS / "digits_cnn.keras", ["fp32"], out=tmp_path / "logs",
                                  cache_dir=tmp_path / "cache", workers=1, eval_samples=FAST["eval_samples"])
    assert again.conversions_performed == 0 and again.artifacts[0].sha == row.artifact  # from the cache


def test_diagnose_is_exported_and_refuses_what_it_cannot_diagnose(tmp_path):
    """`harness.diagnose` is the CLI's and the fixture's call; a .tflite has no float original to
    diagnose against, which is a one-line usage error before any worker starts."""
    assert harness.diagnose.__doc__ and "BUDGET" in harness.diagnose.__doc__
    with pytest.raises(UsageError, match="original model"):
        harness.diagnose(TINY, "int8", cache_dir=tmp_path / "cache")
