"""The two runners an ADB device can use: our Python runner, or the native benchmark_model.

Both get a `Session` (the device's harness folder, its transport and a retrying `step`)
and return a `Measurement` whose raw fields match local runs where they can. The
benchmark_model runner adds ``latency_aggregate`` (the tool prints no per-run samples, so
``samples_us`` is empty) and delegate coverage, and measures drift by running each
evaluation sample once with ``--input_layer_value_files``/``--output_filepath``.
"""

from __future__ import annotations

import json
import secrets
import shlex
import tempfile
from pathlib import Path
from typing import Any

from harness.core import statuses
from harness.core.runtimes import COMPILED_MODEL
from harness.devices import benchmark_model as bm
from harness.devices import runner as runner_module
from harness.devices.adb.drift import run_drift
from harness.devices.adb.files import file_sha256
from harness.devices.adb.session import (
    DEADLINE_EXIT,
    DriftError,
    Session,
    benchmark_failure,
    deadline_reason,
    run_bounded,
    tail,
    under_deadline,  # noqa: F401 - re-exported
)
from harness.devices.base import MeasureJob, Measurement, RunnerReport

RUNNER_PATH = Path(runner_module.__file__).resolve()
COMPILED_RUNNER_PATH = RUNNER_PATH.with_name("runner_compiled.py")  # its CompiledModel path, pushed beside it
DEFAULT_DEVICE_BENCHMARK_MODEL = "/data/local/tmp/benchmark_model"
def _parse_result(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith(runner_module.RESULT_PREFIX):
            try:
                return json.loads(line[len(runner_module.RESULT_PREFIX):])
            except json.JSONDecodeError:
                return None
    return None


# --------------------------------------------------------------------------- python runner


def run_python(s: Session, job: MeasureJob) -> Measurement:
    import numpy as np

    f = s.folder
    runner_name = f"runner-{file_sha256(RUNNER_PATH)[:16]}.py"
    compiled_name = f"runner-compiled-{file_sha256(COMPILED_RUNNER_PATH)[:16]}.py"
    model_name = f"{job.artifact_sha}.tflite"
    inputs_name = f"{file_sha256(job.inputs_npz)[:32]}.npz"

    def push_files() -> None:
        f.ensure(RUNNER_PATH, runner_name)
        if job.runtime_api == COMPILED_MODEL:
            f.ensure(COMPILED_RUNNER_PATH, compiled_name)
        f.ensure(job.artifact, model_name)
        f.ensure(job.inputs_npz, inputs_name)

    s.step("push", push_files)

    def run_once() -> tuple[str, Any]:
        jid = secrets.token_hex(6)
        spec = {
            # names relative to the harness folder (the runner runs there): no device path
            # leaves our quoting, and path-rewriting test doubles need none
            "model": model_name, "inputs": inputs_name,
            "input_names": list(job.input_names), "outputs": f"job-{jid}-out.npz",
            "threads": job.threads, "xnnpack": job.xnnpack, "warmup_runs": job.warmup_runs,
            "runs": job.runs, "min_seconds": job.min_seconds, "max_seconds": job.max_seconds,
            "runtime_api": job.runtime_api, "accelerator": job.accelerator, "compiled_runner": compiled_name,
        }
        f.push_bytes(json.dumps(spec).encode(), f"job-{jid}.json")
        cmd = (f"cd {shlex.quote(f.root)} && {shlex.quote(s.profile.python)} -I "
               f"{f.q(runner_name)} {f.q(f'job-{jid}.json')}")
        return jid, run_bounded(s, cmd, job.timeout_s)

    jid, r = s.step("run", run_once)
    raw = _parse_result(r.output)
    try:
        if raw is None and r.returncode == DEADLINE_EXIT:
            return Measurement(statuses.TIMEOUT, deadline_reason(s, job.timeout_s), report=RunnerReport(stderr=r.output[-4000:]))
        if raw is None:
            if r.returncode == 127 or "not found" in r.output and s.profile.python in r.output:
                return Measurement(statuses.RUNTIME_FAILED, f"{s.profile.python} not found on the device; "
                                   "install Python 3 with ai-edge-litert, or use runner = "
                                   "\"benchmark_model\"", report=RunnerReport(stderr=r.output[-4000:]))
            if r.returncode > 128:
                return Measurement(statuses.RUNTIME_FAILED, f"runner crashed with signal {r.returncode - 128}"
                                   " while running the model", report=RunnerReport(stderr=r.output[-4000:]))
            return Measurement(statuses.RUNTIME_FAILED,
                               f"runner exited {r.returncode} without a result: {tail(r.output)}"[:400],
                               report=RunnerReport(stderr=r.output[-4000:]))
        report = RunnerReport.from_dict({k: v for k, v in raw.items() if k not in ("status", "reason")})
        if raw.get("status") != statuses.OK:
            return Measurement(raw.get("status", statuses.RUNTIME_FAILED), raw.get("reason", ""), report=report)
        outputs: list = []
        if raw.get("outputs") and raw.get("eval_samples"):
            with tempfile.TemporaryDirectory(prefix="tflite-harness-pull-") as tmp:
                local = Path(tmp) / "out.npz"
                s.step("pull", lambda: f.pull(f"job-{jid}-out.npz", local))
                with np.load(local, allow_pickle=False) as data:
                    outputs = [data[str(k)] for k in range(len(raw["outputs"])) if str(k) in data.files]
        names = [o["name"] for o in raw.get("outputs", [])]
        return Measurement(statuses.OK, "", report=report, outputs=outputs, output_names=names)
    finally:
        f.remove(f"job-{jid}.json", f"job-{jid}-out.npz")


# --------------------------------------------------------------------------- benchmark_model


def _binary(s: Session) -> str:
    p = s.profile
    if p.benchmark_model is not None:
        if not p.benchmark_model.is_file():
            raise FileNotFoundError(f"benchmark_model binary {p.benchmark_model} (device profile) "
                                    "does not exist on this computer")
        name = f"benchmark_model-{file_sha256(p.benchmark_model)[:16]}"
        s.step("push", lambda: s.folder.ensure(p.benchmark_model, name, mode=0o755))
        return f"./{name}"  # commands run inside the harness folder
    return p.device_benchmark_model or DEFAULT_DEVICE_BENCHMARK_MODEL


def _report_from_output(out: bm.BenchmarkOutput) -> RunnerReport:
    agg = None
    if out.inference is not None:
        i = out.inference
        agg = {"count": i.count, "avg": i.avg_us, "std": i.std_us, "min": i.min_us,
               "max": i.max_us, "median": i.median_us, "p50": i.median_us, "p5": i.p5_us,
               "p95": i.p95_us}
    elif out.inference_avg_us is not None:
        agg = {"count": None, "avg": out.inference_avg_us}
    report = RunnerReport(
        runtime="benchmark_model", init_us=out.init_us, first_us=out.first_us, latency_aggregate=agg,
        warmup_aggregate=({"count": out.warmup.count, "avg": out.warmup.avg_us} if out.warmup else None),
        peak_memory_mb=out.peak_memory_mb, init_memory_mb=out.init_memory_mb,
        delegate=out.delegate, delegated_nodes=out.delegated_nodes, total_nodes=out.total_nodes,
        delegate_partitions=out.partitions, delegate_coverage=out.delegate_coverage, num_threads=out.num_threads,
    )
    if out.overall_memory_mb is not None:
        report.peak_rss_delta_kb = round(out.overall_memory_mb * 1024)
    return report


def run_benchmark_model(s: Session, job: MeasureJob) -> Measurement:
    """One timed benchmark_model run (then the drift runs); the measurement keeps the tool's
    command line and its whole output, so a figure can be checked against what it printed."""
    argv: list[str] = []
    output: list[str] = []
    m = _run_benchmark_model(s, job, argv, output)
    if m.report is not None and output:
        m.report.command = list(argv)
        m.report.raw_output = output[0]
    return m


def _run_benchmark_model(s: Session, job: MeasureJob, argv_out: list[str], output: list[str]) -> Measurement:
    f = s.folder
    if (job.runtime_api, job.accelerator) != ("interpreter", "cpu"):
        return Measurement(statuses.UNSUPPORTED, f"{job.runtime_api}/{job.accelerator}: benchmark_model measures "
                           "the Interpreter on the CPU; use runner = \"python\" for CompiledModel rows",
                           report=RunnerReport(runtime="benchmark_model"))
    try:
        binary = _binary(s)
    except FileNotFoundError as exc:
        return Measurement(statuses.RUNTIME_FAILED, str(exc))
    model_name = f"{job.artifact_sha}.tflite"
    s.step("push", lambda: f.ensure(job.artifact, model_name))
    settings = bm.BenchmarkSettings(
        num_threads=job.threads, num_runs=job.runs, warmup_runs=job.warmup_runs,
        min_secs=job.min_seconds, max_secs=job.max_seconds, warmup_min_secs=0.0,
        delegate="xnnpack" if job.xnnpack else "none")
    argv = bm.build_args(binary, model_name, settings, extra=s.profile.extra_args)
    argv_out.extend(argv)
    cmd = f"cd {shlex.quote(f.root)} && {bm.shell_command(argv)}"
    r = s.step("run", lambda: run_bounded(s, cmd, job.timeout_s))
    output.append(r.output)
    if r.returncode == DEADLINE_EXIT:
        return Measurement(statuses.TIMEOUT, deadline_reason(s, job.timeout_s),
                           report=RunnerReport(runtime="benchmark_model", stderr=r.output[-4000:]))
    if r.returncode != 0:
        return benchmark_failure(s, r.output, r.returncode)
    try:
        out = bm.parse_output(r.output)
    except bm.BenchmarkOutputError:
        return benchmark_failure(s, r.output, r.returncode)
    report = _report_from_output(out)
    report.command = list(argv)
    warnings: list[str] = []
    if job.xnnpack and out.delegated_nodes is not None and out.total_nodes and \
            out.delegated_nodes < out.total_nodes:
        warnings.append(f"XNNPACK took {out.delegated_nodes}/{out.total_nodes} nodes; the rest "
                        "run on the default CPU kernels")
    outputs, names, meta = [], [], []
    scripts: list = []
    status, reason = statuses.OK, ""
    try:
        outputs, names, meta = run_drift(s, job, binary, model_name, scripts)
    except DriftError as exc:  # the timed run's figures stand; only the outputs are missing
        status, reason = statuses.LATENCY_ONLY, f"on-device drift failed: {exc}"
    report.scripts = [x.to_dict() for x in scripts]
    report.warnings = warnings
    report.outputs = meta
    report.eval_samples = len(outputs[0]) if outputs else 0
    return Measurement(status, reason, report=report, outputs=outputs, output_names=names)
