"""CompiledModel beside the Interpreter: the runner, the runtime axis, the store, compare.

Real parts throughout: the pinned ai-edge-litert's CompiledModel and Interpreter in fresh
runner processes, the real SQLite store, the CLI. The .tflite files are tests/data's tiny
model and, for the I/O dtypes CompiledModel cannot take, models TensorFlow converted once
(tests/data/io/make_io_models.py, committed): no test here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.config import Settings
from harness.core.errors import UsageError
from harness.core.result import Result
from harness.core.runtimes import parse_accelerators, parse_runtimes, variants
from harness.core.schema import MIGRATIONS
from harness.devices.base import MeasureJob
from harness.devices.local import LocalDevice
from harness.devices.runner_compiled import runtime_words
from harness.report.compare import compare_results
from harness.report.compare_identity import RUNTIME_API_CHANGED
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.tflite"  # float32 [1, 8] -> [1, 4]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cm") / "inputs.npz"
    np.savez(path, **{"0": np.random.default_rng(3).random((6, 8), dtype=np.float32)})
    return path


def job(artifact: Path, inputs: Path, api: str, accel: str = "cpu", names=("x",)) -> MeasureJob:
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    return MeasureJob(artifact, sha, inputs, list(names), threads=1, xnnpack=True, warmup_runs=1, runs=20,
                      min_seconds=0.0, max_seconds=5.0, timeout_s=120, runtime_api=api, accelerator=accel)


@pytest.fixture(scope="module")
def both(inputs):
    """The tiny model measured through the Interpreter and through CompiledModel on the CPU."""
    dev = LocalDevice()
    return dev.measure(job(TINY, inputs, "interpreter")), dev.measure(job(TINY, inputs, "compiled_model"))


# ------------------------------------------------------------------------------------------ runner


def test_compiled_model_is_measured_like_invoke(both):
    interp, cm = both
    assert interp.status == cm.status == "ok", (interp.reason, cm.reason)
    rep = cm.report
    assert rep.runtime_api == "compiled_model" and rep.accelerator == "cpu"
    assert interp.report.runtime_api == "interpreter" and interp.report.fully_accelerated is None
    assert len(rep.samples_us) >= 20 and all(x > 0 for x in rep.samples_us)
    assert rep.init_us and rep.init_us > 0 and rep.first_us is not None
    assert rep.peak_rss_delta_kb is not None and rep.init_rss_delta_kb is not None
    assert isinstance(rep.fully_accelerated, bool)
    # write + run + read is its own figure, and it costs at least the run alone
    assert len(rep.roundtrip_us) >= 20
    assert np.median(rep.roundtrip_us) >= np.min(rep.samples_us)
    assert rep.eval_samples == 6 and cm.output_names == interp.output_names
    # read back (dequantized) on the evaluation samples: the CPU accelerator gives the Interpreter's outputs
    assert [o.shape for o in cm.outputs] == [o.shape for o in interp.outputs] == [(6, 4)]
    np.testing.assert_allclose(cm.outputs[0], interp.outputs[0], rtol=1e-6, atol=1e-7)


def test_gpu_without_an_adapter_is_an_unsupported_row(inputs):
    """No silent fallback: a GPU that cannot start is `unsupported` in the runtime's words, never a
    CPU number labelled GPU. (Where an adapter exists the next test measures it instead.)"""
    dev = LocalDevice()
    for accel in ("gpu", "gpu+cpu"):
        m = dev.measure(job(TINY, inputs, "compiled_model", accel))
        if m.status == "ok":
            pytest.skip(f"a GPU adapter exists here ({accel} ran): see test_gpu_where_an_adapter_exists")
        assert m.status == "unsupported", m.reason
        assert m.reason.startswith(f"{accel}: ") and "\n" not in m.reason and len(m.reason) < 400
        assert "adapter" in m.reason.lower() or "gpu" in m.reason.lower()
        assert not m.report.samples_us and not m.outputs


def test_gpu_where_an_adapter_exists(inputs, both):
    m = LocalDevice().measure(job(TINY, inputs, "compiled_model", "gpu+cpu"))
    if m.status == "unsupported":
        pytest.skip(f"no GPU here: {m.reason}")
    assert m.status == "ok", m.reason
    assert m.report.accelerator == "gpu+cpu" and m.report.samples_us
    np.testing.assert_allclose(m.outputs[0], both[0].outputs[0], rtol=1e-2, atol=1e-3)  # GPU float math


def test_npu_alone_says_why_and_the_interpreter_takes_only_the_cpu(inputs):
    dev = LocalDevice()
    npu = dev.measure(job(TINY, inputs, "compiled_model", "npu"))
    if npu.status != "ok":  # no NPU here: LiteRT's own reason
        assert npu.status == "unsupported" and npu.reason.startswith("npu: "), npu.reason
    # npu+cpu without an NPU would run everything on the CPU (and read fully accelerated): not this row
    chain = dev.measure(job(TINY, inputs, "compiled_model", "npu+cpu"))
    if chain.status == "unsupported":
        assert chain.reason.startswith("npu+cpu: NPU accelerator could not be loaded"), chain.reason
        assert "run on the CPU" in chain.reason and not chain.report.samples_us
    interp_gpu = dev.measure(job(TINY, inputs, "interpreter", "gpu"))
    assert interp_gpu.status == "unsupported" and "compiled_model" in interp_gpu.reason


def test_runtime_words_find_the_root_cause():
    stderr = ("E0000 00:00 1 delegate_webgpu.cc:736] Failed to get or create delegate WebGPU environment: "
              "INTERNAL: Failed to initialize WebGPU environment\n"
              "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: No adapters found\n"
              "WARNING: [compiled_model.cc:1393] Failed to apply compiler plugins\n")
    exc = RuntimeError("ERROR: [./litert/cc/litert_compiled_model.h:1961]\n└ ERROR: [litert/runtime/compiled_model.cc:1036]")
    assert runtime_words(stderr, exc).endswith("No adapters found")
    plain = RuntimeError("ERROR: [x.h:1]\n└ Some ops are not accelerated. Add kLiteRtHwAcceleratorCpu")
    assert runtime_words("", plain).startswith("Some ops are not accelerated")


# ------------------------------------------------------------------------------------------ settings


def test_the_runtime_axis_in_settings():
    assert Settings().runtimes == ("interpreter",) and Settings().accelerators == ("cpu",)  # default unchanged
    assert parse_runtimes("interpreter,compiled_model", "x") == ("interpreter", "compiled_model")
    assert parse_accelerators(["cpu", "gpu+cpu"], "x") == ("cpu", "gpu+cpu")
    for bad in ("tpu", "gpu+gpu", "gpu+", ""):
        with pytest.raises(UsageError):
            parse_accelerators(bad, "x")
    with pytest.raises(UsageError, match="runtime 'tflite'"):
        parse_runtimes(["tflite"], "x")
    assert variants(("interpreter", "compiled_model"), ("cpu", "gpu")) == [
        ("interpreter", "cpu"), ("compiled_model", "cpu"), ("compiled_model", "gpu")]
    assert variants(("interpreter",), ("gpu",)) == [("compiled_model", "gpu")]  # the Interpreter has no GPU


def test_bad_runtime_on_the_command_line_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--model", str(TINY), "--runtimes", "tflite",
                        "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s.sqlite")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "runtime 'tflite' is unknown" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ campaign


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory):
    from harness.api import make_campaign, open_run

    tmp = tmp_path_factory.mktemp("cmrun")
    c = make_campaign(models=[TINY], runtimes=["interpreter", "compiled_model"], accelerators=["cpu", "gpu"],
                      runs=20, min_seconds=0.0, warmup_runs=1)
    run = open_run(c, out=tmp / "run", store=tmp / "s.sqlite", cache_dir=tmp / "cache", workers=1)
    summary = run.execute()
    return tmp, summary


def test_a_run_gives_a_row_per_runtime_and_accelerator(campaign_run):
    tmp, summary = campaign_run
    rows = {(r.runtime_api, r.accelerator): r for r in summary.results}
    assert set(rows) == {("interpreter", "cpu"), ("compiled_model", "cpu"), ("compiled_model", "gpu")}
    interp, cm, gpu = rows["interpreter", "cpu"], rows["compiled_model", "cpu"], rows["compiled_model", "gpu"]
    assert interp.status == cm.status == "ok"
    assert cm.roundtrip_us["p50"] > 0 and cm.fully_accelerated is not None and interp.fully_accelerated is None
    # numerics across runtimes: the same artifact, CompiledModel against the Interpreter
    assert cm.drift["vs_interpreter"]["max_abs"] == 0.0 and "vs_interpreter" not in (interp.drift or {})
    if gpu.status != "ok":
        assert gpu.status == "unsupported" and gpu.reason.startswith("gpu: ") and gpu.latency_us is None
    assert len({r.plan_index for r in summary.results}) == 3
    # files and store name the runtime; the report rows read it from the store's columns
    lines = [json.loads(x) for x in (summary.out_dir / "results.jsonl").read_text().splitlines()]
    assert {(x["runtime_api"], x["accelerator"]) for x in lines} == set(rows)
    header = (summary.out_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert "api" in header and "roundtrip_ms" in header and "rt" not in header
    store = Store(summary.store_path)
    try:
        report = {(r.runtime_api, r.accelerator): r for r in store.report_rows(summary.run_id)}
        assert report["compiled_model", "cpu"].roundtrip_us["p50"] == pytest.approx(cm.roundtrip_us["p50"])
        assert report["compiled_model", "cpu"].drift["vs_interpreter"]["max_abs"] == 0.0
        assert len(store.result_keys(summary.run_id)) == 3
        assert set(store.sample_arrays(summary.run_id)) == {r.key for r in summary.results if r.samples_us}
    finally:
        store.close()


def test_the_default_table_marks_the_runtime_and_stays_narrow(campaign_run):
    _, summary = campaign_run
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}

    def report(*extra: str) -> str:
        r = subprocess.run([sys.executable, "-m", "harness.cli", "report", "--store", str(summary.store_path), *extra],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    text = report()
    assert max(map(len, text.splitlines())) <= 120, text
    assert re.search(r"[│ ]cm +│", text) and "interp" in text and "cm:gpu" in text
    wide = report("--wide")
    assert "compiled_model/cpu" in wide and "w+run+r" in wide and "vs interp" in wide


def test_compare_ignore_runtime_sets_interpreter_against_compiled_model(campaign_run):
    _, summary = campaign_run
    cpu = [r for r in summary.results if r.accelerator == "cpu"]
    interp = [r for r in cpu if r.runtime_api == "interpreter"]
    cm = [r for r in cpu if r.runtime_api == "compiled_model"]
    assert compare_results(interp, cm).rows[0].new_status is None  # without --ignore they do not match
    c = compare_results(interp, cm, ignore=("runtime",))
    assert len(c.rows) == 1 and c.rows[0].identity == RUNTIME_API_CHANGED
    assert "compiled_model" not in c.rows[0].label and c.rows[0].new_key[5] == "compiled_model"


# ------------------------------------------------------------------------------------------ store


def test_a_schema_3_store_migrates_to_the_runtime_key(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for v in (1, 2, 3):
        for stmt in filter(str.strip, MIGRATIONS[v].split(";")):
            db.execute(stmt)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO runs (id, started_at) VALUES ('old', 1.0)")
    old = Result(model="m", flag_set="fp32", device="local", threads=1, status="ok").to_dict()
    del old["runtime_api"], old["accelerator"]
    db.execute("INSERT INTO results (run_id, model, flag_set, device, threads, xnnpack, status, data, created_at)"
               " VALUES ('old', 'm', 'fp32', 'local', 1, 1, 'ok', ?, 1.0)", (json.dumps(old),))
    db.close()
    s = Store(path)
    try:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == 4
        (row,) = s.results("old")
        assert (row.runtime_api, row.accelerator) == ("interpreter", "cpu")
        assert s.result_keys("old") == {("m", "fp32", "local", 1, True, "interpreter", "cpu")}
        # the same model/flag set/device through CompiledModel is another row, not a replacement
        s.add_result("old", Result(model="m", flag_set="fp32", device="local", threads=1, status="ok",
                                   runtime_api="compiled_model", fully_accelerated=False,
                                   roundtrip_us={"p50": 9.0}))
        rows = {r.runtime_api: r for r in s.report_rows("old")}
        assert set(rows) == {"interpreter", "compiled_model"}
        assert rows["compiled_model"].fully_accelerated is False and rows["compiled_model"].roundtrip_us == {"p50": 9.0}
    finally:
        s.close()


# ------------------------------------------------------------------------------------------ I/O dtypes

IO_MODELS = ROOT / "tests" / "data" / "io"  # converted once by tests/data/io/make_io_models.py (committed)


@pytest.fixture(scope="module")
def io_models(tmp_path_factory) -> Path:
    """The I/O-dtype models: TensorFlow's int8-I/O and int16-I/O full-integer conversions of a
    small conv model and an argmax with an int64 output, committed so this module imports no
    TensorFlow."""
    out = tmp_path_factory.mktemp("io")
    for name in ("int8io", "int16io", "int64out"):
        (out / f"{name}.tflite").write_bytes((IO_MODELS / f"{name}.tflite").read_bytes())
    np.savez(out / "inputs.npz", **{"0": np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)})
    return out


@pytest.mark.slow
def test_int16_and_int64_io_are_unsupported_and_int8_io_runs(io_models):
    dev = LocalDevice()
    inputs = io_models / "inputs.npz"
    for name, dtype in (("int16io", "int16"), ("int64out", "int64")):
        m = dev.measure(job(io_models / f"{name}.tflite", inputs, "compiled_model", names=("image",)))
        assert m.status == "unsupported", m.reason
        assert f"({dtype})" in m.reason and "TensorBuffers" in m.reason and "Interpreter" in m.reason
        assert dev.measure(job(io_models / f"{name}.tflite", inputs, "interpreter", names=("image",))).status == "ok"
    # int8 I/O: quantized on the way in, dequantized on the way out, exactly as the Interpreter does
    interp = dev.measure(job(io_models / "int8io.tflite", inputs, "interpreter", names=("image",)))
    cm = dev.measure(job(io_models / "int8io.tflite", inputs, "compiled_model", names=("image",)))
    assert cm.status == "ok", cm.reason
    assert cm.report.fully_accelerated is False  # XNNPACK leaves ops of this int8 model to builtin kernels
    assert cm.outputs[0].dtype == np.float32
    np.testing.assert_array_equal(cm.outputs[0], interp.outputs[0])


def test_the_compiled_model_runner_is_self_contained_like_the_runner():
    """It is pushed to boards beside runner.py: stdlib, numpy and ai_edge_litert only."""
    import ast

    tree = ast.parse((ROOT / "harness" / "devices" / "runner_compiled.py").read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] in ("harness", "tensorflow", "keras")], names
