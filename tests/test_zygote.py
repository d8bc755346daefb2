"""Confirmation's runner zygote: every measurement is a fresh forked process; the zygote holds no model.

Real runner, real LiteRT, real .tflite files from tests/data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.devices.base import MeasureJob
from harness.devices.local import LocalDevice
from harness.devices.zygote import ForkingLocalDevice
from harness.pipeline.confirm import for_confirmation

from .conftest import ROOT

TINY = ROOT / "tests" / "data" / "tiny.tflite"


def _job(tmp_path: Path, model: Path, seconds: float = 0.05) -> MeasureJob:
    np.savez(tmp_path / "in.npz", **{"0": np.random.default_rng(0).random((2, 8), dtype=np.float32)})
    return MeasureJob(model, "x", tmp_path / "in.npz", ["x"], threads=1, xnnpack=True, warmup_runs=3, runs=10,
                      min_seconds=seconds, max_seconds=5, timeout_s=60)


def test_each_confirmation_measurement_is_a_fresh_child_and_the_zygote_holds_no_model(tmp_path):
    """Without the fork every result would carry the zygote's pid; had the zygote loaded the
    model (a warmed interpreter handed down), the .tflite would be mapped into it."""
    import json
    import subprocess
    import sys

    from harness.devices import runner
    from harness.devices.local import RUNNER_PATH, write_job_spec

    spec = write_job_spec(_job(tmp_path, TINY), tmp_path, None)
    zygote = subprocess.Popen([sys.executable, "-I", str(RUNNER_PATH), "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        results = []
        for _ in range(3):
            zygote.stdin.write(f"{spec}\n")
            zygote.stdin.flush()
            for line in zygote.stdout:
                if line.startswith(runner.RESULT_PREFIX):
                    results.append(json.loads(line[len(runner.RESULT_PREFIX):]))
                if line.startswith(runner.DONE_PREFIX):
                    assert line.split()[-1] == "0"
                    break
        maps = Path(f"/proc/{zygote.pid}/maps").read_text()
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=10)
    assert [r["status"] for r in results] == ["ok"] * 3
    pids = {r["pid"] for r in results}
    assert len(pids) == 3 and zygote.pid not in pids
    assert "tiny.tflite" not in maps
    assert zygote.returncode == 0


def test_the_forking_device_measures_like_the_local_device(tmp_path):
    job = _job(tmp_path, TINY)
    device = ForkingLocalDevice()
    try:
        ms = [device.measure(job) for _ in range(2)]
    finally:
        device.close()
    assert all(m.status == "ok" for m in ms), [m.reason for m in ms]
    assert all(len(m.report.samples_us) >= 10 and m.report.runtime for m in ms)
    assert device._proc is None  # close() stopped the zygote


def test_a_failing_job_is_a_result_and_the_zygote_serves_the_next(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    device = ForkingLocalDevice()
    try:
        failed = device.measure(_job(tmp_path, bad))
        ok = device.measure(_job(tmp_path, TINY))
    finally:
        device.close()
    assert failed.status != "ok" and failed.reason
    assert ok.status == "ok", ok.reason


def test_confirmation_forks_only_for_the_local_device():
    local = for_confirmation(LocalDevice())
    assert isinstance(local, ForkingLocalDevice)
    local.close()
    other = object()
    assert for_confirmation(other) is other
