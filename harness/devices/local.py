"""The local device: each measurement runs `runner.py` in a fresh Python process.

A fresh process per artifact keeps measurements independent (no allocator or cache
state carried over) and lets the runner read its own peak RSS (VmHWM) honestly: the
parent's memory is not inherited the way `wait4`'s ru_maxrss would count it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.core import statuses
from harness.devices import runner as runner_module
from harness.devices.base import MeasureJob, Measurement, RunnerReport
from harness.devices.hostinfo import local_info, state_now, state_warnings

RUNNER_PATH = Path(runner_module.__file__).resolve()


def parse_runner_stdout(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(runner_module.RESULT_PREFIX):
            return json.loads(line[len(runner_module.RESULT_PREFIX) :])
    return None


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


class LocalDevice:
    name = "local"
    runner = "python"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable

    def info(self) -> dict:
        return local_info()

    def measure(self, job: MeasureJob) -> Measurement:
        """Run the job in `job.repeat` fresh processes and combine them (pyperf's approach).

        Between-process variation (address-space layout, frequency, cache state) is part of
        the truth about latency; one process alone hides it.
        """
        before = state_now()
        parts = []
        for i in range(max(1, job.repeat)):
            m = self._measure_once(job, outputs=(i == 0 and job.collect_outputs))
            if m.status != statuses.OK:
                return m
            parts.append(m)
        after = state_now()
        first = parts[0]
        report = replace(first.report)
        if len(parts) > 1:
            report.samples_us = [x for p in parts for x in p.report.samples_us]
            report.process_medians_us = [float(np.median(p.report.samples_us)) for p in parts if p.report.samples_us]
            report.peak_rss_delta_kb = max((p.report.peak_rss_delta_kb or 0) for p in parts)
            report.timed_s = sum(p.report.timed_s or 0.0 for p in parts)
        report.processes = len(parts)
        report.device_state = {"before": before, "after": after}
        report.warnings = state_warnings(before, after)
        return Measurement(statuses.OK, "", report=report, outputs=first.outputs, output_names=first.output_names)

    def _measure_once(self, job: MeasureJob, outputs: bool) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="tflite-harness-") as tmp:
            out_npz = Path(tmp) / "outputs.npz"
            spec_path = write_job_spec(job, Path(tmp), out_npz if outputs else None)
            try:
                proc = subprocess.run(
                    [self.python, "-I", str(RUNNER_PATH), str(spec_path)],
                    capture_output=True,
                    text=True,
                    timeout=job.timeout_s,
                )
            except subprocess.TimeoutExpired:
                return timeout_measurement(job)
            return measurement_from(proc.returncode, proc.stdout, proc.stderr, out_npz if outputs else None)

    def close(self) -> None:
        pass


def write_job_spec(job: MeasureJob, folder: Path, out_npz: Path | None) -> Path:
    """The runner's JOB.json for `job` in `folder` (shared by the fresh-process and zygote paths)."""
    cpus = None
    if job.pin_cpu is not None:
        n = os.cpu_count() or 1
        cpus = sorted({(job.pin_cpu + k) % n for k in range(job.threads)})
    spec = {
        "model": str(job.artifact),
        "inputs": str(job.inputs_npz),
        "input_names": job.input_names,
        "outputs": str(out_npz) if out_npz else None,
        "threads": job.threads,
        "xnnpack": job.xnnpack,
        "warmup_runs": job.warmup_runs,
        "runs": job.runs,
        "min_seconds": job.min_seconds,
        "max_seconds": job.max_seconds,
        "cpus": cpus,
        "runtime_api": job.runtime_api,
        "accelerator": job.accelerator,
    }
    spec_path = folder / "job.json"
    spec_path.write_text(json.dumps(spec))
    return spec_path


def timeout_measurement(job: MeasureJob) -> Measurement:
    return Measurement(statuses.TIMEOUT, f"runner gave no result within {job.timeout_s:.0f} s (settings.timeout_s)")


def measurement_from(returncode: int, stdout: str, stderr: str, out_npz: Path | None) -> Measurement:
    """One runner process's exit status and output as a Measurement (negative code: killed by a signal)."""
    raw = parse_runner_stdout(stdout)
    if returncode < 0:
        name = signal_name(-returncode)
        return Measurement(statuses.RUNTIME_FAILED, f"runner crashed with {name} while running the model",
                           report=RunnerReport(stderr=stderr[-4000:]))
    if raw is None:
        tail = " ".join(stderr.split()[-40:])
        return Measurement(statuses.RUNTIME_FAILED, f"runner exited {returncode} without a result: {tail}"[:400],
                           report=RunnerReport(stderr=stderr[-4000:]))
    report = RunnerReport.from_dict({k: v for k, v in raw.items() if k not in ("status", "reason")})
    report.stderr = stderr[-4000:]  # LiteRT's INFO lines and warnings: for the run's logs/runtime.log
    if raw.get("status") != statuses.OK:
        return Measurement(raw.get("status", statuses.RUNTIME_FAILED), raw.get("reason", ""), report=report)
    arrays: list[np.ndarray] = []
    if out_npz is not None and out_npz.is_file():
        with np.load(out_npz, allow_pickle=False) as data:
            arrays = [data[str(k)] for k in range(len(raw.get("outputs", []))) if str(k) in data.files]
    names = [o["name"] for o in raw.get("outputs", [])]
    return Measurement(statuses.OK, "", report=report, outputs=arrays, output_names=names)
