"""Diagnose, search, calibrate once and budget flag sets on a model where one named layer breaks int8.

tests/models/outlier_int8.py builds it: `culprit`'s weight row for a dead ReLU unit holds
values ~500x the others, so per-channel int8 collapses its real weights (module doc).
The model and one cache are shared by these tests, so each pays only for what is new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, TEST_MODELS

pytestmark = [pytest.mark.slow, pytest.mark.cost(65)]  # seconds on one quiet core, for the xdist order (docs/testing.md)
BUDGET = "top1>=0.98"
BENCHMARK_MODEL = Path("/work/shared/bin/benchmark_model")


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    """The model, built in this process: test_calibrate_once_... runs the converter here too,
    so this module's own TensorFlow import serves both (a builder subprocess was one more)."""
    import importlib.util

    folder = tmp_path_factory.mktemp("outlier")
    spec = importlib.util.spec_from_file_location("outlier_int8", TEST_MODELS / "outlier_int8.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    model, samples = builder.build(folder)
    return model, samples, folder / "cache"


def test_cli_ranks_the_broken_layer_first_and_the_search_fixes_it(cli, outlier, tmp_path):
    model, samples, cache = outlier
    chosen = tmp_path / "chosen.tflite"
    profile = ["--benchmark-model", str(BENCHMARK_MODEL)] if BENCHMARK_MODEL.is_file() else []
    proc = cli("diagnose", str(model), "--samples", str(samples), "--budget", BUDGET, "--json",
               "--cache-dir", str(cache), "--out", str(chosen), "--model-explorer", str(tmp_path / "me"), *profile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    layers = out["layers"]
    assert [x["label"] for x in layers][0] == "culprit"
    iso = [x["isolated"]["rmse_scale"] for x in layers]
    assert iso == sorted(iso, reverse=True)  # worst first by isolated error
    assert iso[0] > 10 * iso[1]  # and by far: the others are near rounding error (~0.3)
    for x in layers:
        assert {"tensor", "op", "index", "isolated", "accumulated"} <= set(x)
        assert {"rmse_scale", "rmse_range", "cosine", "snr_db"} <= set(x["isolated"])
    culprit = layers[0]
    assert culprit["op"] == "FULLY_CONNECTED" and culprit["index"] >= 0
    assert culprit["accumulated"]["cosine"] < 0.9 and culprit["isolated"]["cosine"] < 0.9
    search = out["search"]
    assert search["met"], search["message"]
    assert not search["steps"][0]["meets_budget"] and search["steps"][0]["float_layers"] == []
    assert search["steps"][0]["drift"]["top1_agreement"] < 0.5  # int8 really is broken
    pick = search["chosen"]
    assert "culprit" in pick["float_layers"] and len(pick["float_layers"]) <= 2
    assert pick["meets_budget"] and pick["drift"]["top1_agreement"] >= 0.98
    for step in search["steps"]:
        assert {"float_layers", "drift", "size_bytes", "p50_us", "meets_budget"} <= set(step)
    assert chosen.is_file() and chosen.stat().st_size == pick["size_bytes"]
    node_data = json.loads((tmp_path / "me" / "isolated_error.json").read_text())
    assert node_data["results"][culprit["tensor"]]["value"] == pytest.approx(culprit["isolated"]["rmse_scale"])
    assert (tmp_path / "me" / "quantized.tflite").is_file()
    if profile:  # per-op latency on the same nodes the error is on
        latency = json.loads((tmp_path / "me" / "op_latency_us.json").read_text())["results"]
        assert culprit["tensor"] in latency and latency[culprit["tensor"]]["value"] >= 0


def test_only_the_broken_layer_helps(outlier):
    from harness.core.budget import parse_budget
    from harness.pipeline.search import measure_step
    from harness.pipeline.session import open_session

    model, samples, cache = outlier
    session = open_session(model, "int8", samples=samples, cache_dir=cache)
    try:
        by_label = {x.label: x.tensor for x in session.diagnosis().layers}
        budget = parse_budget(BUDGET)
        others = [measure_step(session, [by_label[name]], [name], budget, "grow") for name in ("after", "hidden")]
        fixed = measure_step(session, [by_label["culprit"]], ["culprit"], budget, "grow")
    finally:
        session.close()
    for step in others:
        assert not step.meets_budget and step.drift["top1_agreement"] < 0.5, step.float_layers
    assert fixed.meets_budget


def test_a_step_quantized_once_is_not_quantized_again(outlier):
    """A later session (another budget, the API after the CLI, a campaign after diagnose) takes a
    step it shares with an earlier search from the cache: no worker job, so no TensorFlow."""
    from harness.pipeline.session import open_session

    model, samples, cache = outlier
    session = open_session(model, "int8", samples=samples, cache_dir=cache)
    try:
        culprit = [x.tensor for x in session.diagnosis().layers if x.label == "culprit"]
        first = session.quantized(culprit)
        submitted = []
        real_submit = session.builder.submit
        session.builder.submit = lambda job, priority=0.0: submitted.append(job) or real_submit(job, priority)
        again = session.quantized(culprit)
    finally:
        session.close()
    assert submitted == [] and again == first and again[2].is_file()


def test_calibrate_once_gives_the_standalone_conversions_outputs(outlier, tmp_path):
    """One calibration quantized three ways = three standalone conversions: the same tensors,
    quantization parameters and weights, bit-identical outputs; only the metadata differs."""
    from ai_edge_litert.interpreter import Interpreter

    from harness.convert import worker
    from harness.core.flag_sets import BUILTIN_FLAG_SETS
    from harness.tflite.file import read_tflite

    model, samples, _ = outlier
    with np.load(samples) as data:
        x = data["x"]
    np.savez(tmp_path / "rep.npz", **{"0": x})
    payload = {"name": "outlier", "kind": "keras", "path": str(model), "entry": None, "signature": "serving_default",
               "samples": None, "representative": None, "input_shapes": {}}
    calibration = tmp_path / "calibration.tflite"

    def job(name: str, out: str, calibrated: bool) -> dict:
        return {"op": "convert", "model": payload, "options": BUILTIN_FLAG_SETS[name].converter_options(),
                "rep_path": str(tmp_path / "rep.npz"), "shapes": [[1, 16]], "out_path": str(tmp_path / out),
                "calibration": str(calibration) if calibrated else None}

    def outputs(path) -> np.ndarray:
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        got = []
        for k in range(len(x)):
            v = x[k : k + 1]
            if i["dtype"] != np.float32:
                s, z = i["quantization"]
                v = np.clip(np.round(v / s + z), -128, 127).astype(i["dtype"])
            it.set_tensor(i["index"], v)
            it.invoke()
            got.append(it.get_tensor(o["index"]).copy())
        return np.concatenate(got)

    answers = []
    for name in ("int8", "int8_float_io", "int16x8"):
        worker.convert(job(name, f"{name}-standalone.tflite", False))
        answers.append(worker.convert(job(name, f"{name}-once.tflite", True)))
        alone, once = read_tflite(tmp_path / f"{name}-standalone.tflite"), read_tflite(tmp_path / f"{name}-once.tflite")
        assert [(t.name, t.shape, t.dtype, t.quantization, t.buffer_bytes) for t in alone.tensors] == \
            [(t.name, t.shape, t.dtype, t.quantization, t.buffer_bytes) for t in once.tensors], name
        assert alone.operator_sequence == once.operator_sequence, name
        a, b = outputs(tmp_path / f"{name}-standalone.tflite"), outputs(tmp_path / f"{name}-once.tflite")
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert [a["calibration"] for a in answers] == ["made", "reused", "reused"]


def test_campaign_budget_flag_set_is_a_row_beside_int8(cli, outlier, tmp_path):
    model, samples, cache = outlier
    campaign = tmp_path / "c.toml"
    campaign.write_text(f"""
name = "budget"
[settings]
flag_sets = ["int8", "int8_budget"]
runs = 10
warmup_runs = 1
min_seconds = 0.05
eval_samples = 200

[flag_sets.int8_budget]
base = "int8"
budget = "{BUDGET}"

[[models]]
path = "{model}"
samples = "{samples}"
""")
    args = ["run", str(campaign), "--cache-dir", str(cache), "--store", str(tmp_path / "s.sqlite"), "--workers", "1"]
    proc = cli(*args, "--out", str(tmp_path / "r1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "r1" / "results.json").read_text())
    rows = {r["flag_set"]: r for r in (data["results"] if isinstance(data, dict) else data)}
    assert rows["int8"]["drift"]["top1_agreement"] < 0.5
    fixed = rows["int8_budget"]
    assert fixed["status"] == "ok" and fixed["drift"]["top1_agreement"] >= 0.98
    assert fixed["reason"].startswith("float layers: culprit") and "meets top1>=0.98" in fixed["reason"]
    assert fixed["diagnosis"]["layers"][0]["label"] == "culprit"
    assert fixed["size_bytes"] > rows["int8"]["size_bytes"]  # a float layer costs bytes, and the row shows it
    assert "float layers: culprit" in proc.stdout
    # cached like any artifact: the second run converts and searches nothing
    again = cli(*args, "--out", str(tmp_path / "r2"))
    assert again.returncode == 0 and "converted nothing" in again.stdout, again.stdout[-2000:]
    report = cli("report", "--store", str(tmp_path / "s.sqlite"), "--format", "html", "--out", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Where quantization hurts" in html and "culprit (float)" in html


def test_pytest_fixture_diagnoses(outlier, tmp_path):
    from harness.pytest_plugin import HarnessFixture

    model, samples, cache = outlier
    d = HarnessFixture(tmp_path, cache).diagnose(str(model), "int8", samples=str(samples), budget=BUDGET)
    assert d.layers[0].label == "culprit"
    assert d.search["met"] and "culprit" in d.search["chosen"]["float_layers"]


def test_a_budget_no_step_meets_ends_with_the_best_step_and_says_so(outlier):
    from harness.pipeline.search import growth
    from harness.pipeline.session import diagnose

    model, samples, cache = outlier
    # int8 input and output stay quantized whatever is kept float: outputs never match exactly
    d = diagnose(model, "int8", samples=samples, budget="max_abs<=0", cache_dir=cache)
    search = d.search
    assert not search["met"]
    assert search["message"].startswith("budget max_abs<=0 cannot be met")
    assert len(search["steps"]) == 1 + len(growth(len(d.layers)))
    assert not any(s["meets_budget"] for s in search["steps"])
    best = min(s["drift"]["max_abs"] for s in search["steps"])
    assert search["chosen"]["drift"]["max_abs"] == best  # the closest step is the one kept


def test_python_api_diagnose_keeps_litert_log_lines_out_of_the_notebook(outlier, tmp_path, capfd):
    """Issue 19: the accumulated-error pass runs LiteRT in the caller's process, whose native
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." reached every notebook. A fresh
    process (the line prints once per process), float layers no other test diagnoses (so the
    pass runs, not the cache), fd 2 read by capfd."""
    model, samples, cache = outlier
    out = tmp_path / "session"
    script = (f"import harness; d = harness.diagnose({str(model)!r}, 'int8', samples={str(samples)!r}, "
              f"float_layers=['hidden', 'after'], cache_dir={str(cache)!r}, out_dir={str(out)!r}); "
              "print('layers', len(d.layers))")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=600,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    captured = capfd.readouterr()
    assert "layers" in captured.out
    assert "INFO:" not in captured.err and "XNNPACK" not in captured.err, captured.err[-2000:]
    (log,) = out.rglob("runtime.log")
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in log.read_text()
