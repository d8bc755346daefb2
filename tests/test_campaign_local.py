"""End to end on the local runtime, through the real CLI: real conversions, real runner.

One campaign holds a healthy Keras CNN, two concrete-function models whose outputs are
NaN and all-zero, and a Keras 3 LSTM that is not unrolled, whose full-int8 conversion
crashes the converter with SIGSEGV. It runs twice: the second run must convert nothing
and still measure.
"""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from .conftest import MODELS, TEST_MODELS, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.cost(18)]  # seconds on one quiet core, for the xdist order (docs/testing.md)


@pytest.fixture(scope="module")
def campaign_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    toml = root / "campaign.toml"
    toml.write_text(f"""
name = "e2e"
[settings]
flag_sets = ["fp32", "int8", "int8_float_io"]
runs = 20
warmup_runs = 2
min_seconds = 0.05
eval_samples = 16

[[models]]
name = "cnn"
path = "{MODELS / 'digits_cnn.keras'}"
samples = "{MODELS / 'digits_cnn.samples.npz'}"
representative = "{MODELS / 'digits_cnn.calib.npz'}"

[[models]]
name = "nan"
path = "{TEST_MODELS / 'broken_models.py'}:nan_model"

[[models]]
name = "zero"
path = "{TEST_MODELS / 'broken_models.py'}:zero_model"

[[models]]
name = "lstm"
path = "{MODELS / 'extra' / 'lstm_not_unrolled.keras'}"
""")
    # one converter worker: parallel conversion is not what this module checks (one TensorFlow import fewer)
    common = ["--store", str(root / "store.sqlite"), "--cache-dir", str(root / "cache"), "--workers", "1"]
    first = run_cli("run", str(toml), "--out", str(root / "run1"), *common)
    second = run_cli("run", str(toml), "--out", str(root / "run2"), *common)
    return root, first, second


def rows_of(path):
    return {(r["model"], r["flag_set"]): r for r in json.loads(path.read_text())}


def test_first_run_completes_with_a_row_per_job(campaign_runs):
    root, first, _ = campaign_runs
    assert first.returncode == 0, first.stderr[-3000:]
    rows = rows_of(root / "run1" / "results.json")
    assert len(rows) == 4 * 3
    required = {"model", "flag_set", "device", "threads", "status", "reason", "size_bytes", "convert_s", "init_us",
                "first_us", "latency_us", "peak_rss_mb", "drift"}
    for r in rows.values():
        assert required <= set(r)
        assert r["status"] in {"ok", "unhealthy", "conversion_failed", "runtime_failed", "unsupported"}
        if r["status"] != "ok":
            assert r["reason"], r


def test_healthy_model_is_measured_with_drift_and_accuracy(campaign_runs):
    root, _, _ = campaign_runs
    rows = rows_of(root / "run1" / "results.json")
    fp32, int8 = rows[("cnn", "fp32")], rows[("cnn", "int8")]
    for r in (fp32, int8):
        assert r["status"] == "ok", r["reason"]
        lat = r["latency_us"]
        assert lat["n"] >= 20 and lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert len(r["samples_us"]) == lat["n"]
        assert r["runtime"] == "ai_edge_litert" and r["runtime_version"]
        assert r["peak_rss_mb"] is not None and r["peak_rss_mb"] >= 0
        assert r["drift"]["samples"] == 16
    assert fp32["drift"]["cosine"] > 0.9999 and fp32["drift"]["top1_agreement"] == 1.0
    assert fp32["drift"]["accuracy"] == fp32["drift"]["reference_accuracy"]
    # full int8 quantizes weights: smaller file, some error, classes mostly kept
    assert int8["size_bytes"] < 0.5 * fp32["size_bytes"]
    assert 0 < int8["drift"]["max_abs"] < 0.5
    assert int8["drift"]["top1_agreement"] >= 0.8
    assert int8["representative"] == "samples" and fp32["representative"] == "none"
    assert "QUANTIZE" not in int8["ops"] and "QUANTIZE" in rows[("cnn", "int8_float_io")]["ops"]


def test_nan_and_zero_outputs_are_unhealthy(campaign_runs):
    root, _, _ = campaign_runs
    rows = rows_of(root / "run1" / "results.json")
    assert rows[("nan", "fp32")]["status"] == "unhealthy"
    assert "NaN" in rows[("nan", "fp32")]["reason"]
    assert rows[("zero", "fp32")]["status"] == "unhealthy"
    assert "all zeros" in rows[("zero", "fp32")]["reason"]
    # no sample data: representative data is seeded random, and the row says so
    assert rows[("nan", "int8_float_io")]["representative"] == "random"


def test_converter_crash_becomes_a_failed_row_and_the_campaign_goes_on(campaign_runs):
    root, first, _ = campaign_runs
    rows = rows_of(root / "run1" / "results.json")
    crashed = rows[("lstm", "int8")]
    assert crashed["status"] == "conversion_failed"
    assert crashed["failure_category"] == "converter_crashed"
    assert "SIGSEGV" in crashed["reason"]
    assert rows[("lstm", "fp32")]["status"] == "ok"
    assert "converter crashed" in first.stdout


def test_exports_and_store_agree(campaign_runs):
    root, first, _ = campaign_runs
    md = (root / "run1" / "results.md").read_text()
    assert md.count("\n") >= 2 + 12 and "| cnn | int8 |" in md
    with open(root / "run1" / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 12
    cnn_int8 = next(r for r in csv_rows if r["model"] == "cnn" and r["flag_set"] == "int8")
    assert float(cnn_int8["speedup"]) > 0 and float(cnn_int8["size_ratio"]) < 0.5
    db = sqlite3.connect(root / "store.sqlite")
    assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 24
    assert db.execute("SELECT count(DISTINCT run_id) FROM results").fetchone()[0] == 2
    # the terminal shows the comparison table with speed-up against fp32
    assert "speed-up" in first.stdout and "cnn" in first.stdout


def test_second_run_converts_nothing_and_still_measures(campaign_runs):
    root, first, second = campaign_runs
    assert second.returncode == 0, second.stderr[-3000:]
    assert "converted nothing" in second.stdout
    assert "converted nothing" not in first.stdout
    one, two = rows_of(root / "run1" / "results.json"), rows_of(root / "run2" / "results.json")
    assert two[("cnn", "int8")]["converted"] is False and one[("cnn", "int8")]["converted"] is True
    assert two[("cnn", "int8")]["artifact"] == one[("cnn", "int8")]["artifact"]
    assert two[("cnn", "int8")]["samples_us"] != one[("cnn", "int8")]["samples_us"]  # measured anew
    assert two[("lstm", "int8")]["status"] == "conversion_failed"  # failures are not cached as successes
    # the first run started converter workers and says when; the second needed none, so none started
    timeline = json.loads((root / "run1" / "logs" / "build-timeline.json").read_text())
    assert len(timeline["worker_imports"]) >= 1
    assert not (root / "run2" / "logs" / "build-timeline.json").exists()
