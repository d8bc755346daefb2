"""The local device: each measurement runs `runner.py` in a fresh Python process.

A fresh process per artifact keeps measurements independent (no allocator or cache
state carried over) and lets the runner read its own peak RSS (VmHWM) honestly: the
parent's memory is not inherited the way `wait4`'s ru_maxrss would count it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness import runner as runner_module
from harness.devices.base import MeasureJob, Measurement
from harness.devices.hostinfo import local_info

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
        with tempfile.TemporaryDirectory(prefix="tflite-harness-") as tmp:
            out_npz = Path(tmp) / "outputs.npz"
            spec = {
                "model": str(job.artifact),
                "inputs": str(job.inputs_npz),
                "input_names": job.input_names,
                "outputs": str(out_npz),
                "threads": job.threads,
                "xnnpack": job.xnnpack,
                "warmup_runs": job.warmup_runs,
                "runs": job.runs,
                "min_seconds": job.min_seconds,
                "max_seconds": job.max_seconds,
            }
            spec_path = Path(tmp) / "job.json"
            spec_path.write_text(json.dumps(spec))
            try:
                proc = subprocess.run(
                    [self.python, "-I", str(RUNNER_PATH), str(spec_path)],
                    capture_output=True,
                    text=True,
                    timeout=job.timeout_s,
                )
            except subprocess.TimeoutExpired:
                return Measurement("timeout", f"runner gave no result within {job.timeout_s:.0f} s (settings.timeout_s)")
            raw = parse_runner_stdout(proc.stdout)
            if proc.returncode < 0:
                name = signal_name(-proc.returncode)
                return Measurement("runtime_failed", f"runner crashed with {name} while running the model",
                                   raw={"stderr": proc.stderr[-4000:]})
            if raw is None:
                tail = " ".join(proc.stderr.split()[-40:])
                return Measurement("runtime_failed", f"runner exited {proc.returncode} without a result: {tail}"[:400],
                                   raw={"stderr": proc.stderr[-4000:]})
            if raw.get("status") != "ok":
                return Measurement(raw.get("status", "runtime_failed"), raw.get("reason", ""), raw=raw)
            outputs: list[np.ndarray] = []
            if out_npz.is_file():
                with np.load(out_npz, allow_pickle=False) as data:
                    outputs = [data[str(k)] for k in range(len(raw.get("outputs", [])))
                               if str(k) in data.files]
            names = [o["name"] for o in raw.get("outputs", [])]
            return Measurement("ok", "", raw=raw, outputs=outputs, output_names=names)

    def close(self) -> None:
        pass
