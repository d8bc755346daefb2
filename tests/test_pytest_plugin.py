"""A user's pytest file using the plugin: fails when drift exceeds its bound, passes otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import MODELS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.cost(35)]  # seconds on one quiet core, for the xdist order (docs/testing.md)

USER_TESTS = f'''
MODEL = "{MODELS / 'digits_cnn.keras'}"

def test_int8_within_bounds(tflite_harness):
    r = tflite_harness.run(MODEL, flag_set="int8")
    tflite_harness.assert_ok(r, max_abs=0.5, min_top1=0.9, max_size_bytes=40_000)

def test_int8_too_strict(tflite_harness):
    r = tflite_harness.run(MODEL, flag_set="int8")
    tflite_harness.assert_ok(r, max_abs=1e-6)

def test_latency_with_pytest_benchmark(tflite_harness, benchmark):
    art = tflite_harness.convert(MODEL, "int8")
    tflite_harness.benchmark(benchmark, art)
    assert benchmark.stats.stats.rounds > 0
'''


def test_user_file_fails_on_drift_and_passes_otherwise(tmp_path, suite_cache):
    """The user's file shares the suite's cache: it asserts drift, size and pytest-benchmark's
    rounds, not whether digits_cnn's int8 artifact was converted here or by another test
    (the plugin's 32 evaluation samples are the CLI's default, so a default run hits)."""
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_user.py"),
         "--tflite-harness-cache", str(suite_cache), "--benchmark-json", str(tmp_path / "bench.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 2 passed" in out
    assert "test_int8_too_strict" in out and "max_abs" in out and "> 1e-06" in out
    assert (tmp_path / "bench.json").is_file()  # pytest-benchmark saw the benchmark
    assert ROOT.exists()
