"""Crash isolation: a model that kills the interpreter, or never finishes, costs one row.

(a) tests/data/crash.tflite segfaults ai_edge_litert (found by the seeded mutation search in
    tests/data/make_fixtures.py; see crash.txt) -> `runtime_failed` naming the signal.
(b) a converter that dies by signal (Keras 3 LSTM under full int8) is covered by
    tests/test_failures.py::test_converter_crash_is_classified: only its worker dies, the job
    becomes `conversion_failed` (category converter_crashed) and a fresh worker goes on.
(c) tests/data/hang.tflite is a WHILE loop whose condition never turns false: with
    --timeout 5 its row is `timeout`, the runner process is killed and none is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli

DATA = ROOT / "tests" / "data"


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of live processes whose command line contains TEXT (a /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = next((ln for ln in Path(f"/proc/{entry}/status").read_text().splitlines()
                          if ln.startswith("State:")), "")
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmd and "Z (zombie)" not in state:
            found.append((int(entry), cmd))
    return found


def test_fixtures_are_what_they_claim():
    from harness.tflite.file import read_tflite

    assert "WHILE" in {op.name for op in read_tflite(DATA / "hang.tflite").operators}
    assert "SIGSEGV" in (DATA / "crash.txt").read_text()
    # the crasher is one word away from the healthy model: the reader still accepts it
    read_tflite(DATA / "crash.tflite")


def test_crash_in_the_interpreter_directly_is_a_signal():
    code = ("import numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\n"
            f"it = Interpreter(model_path={str(DATA / 'crash.tflite')!r}); it.allocate_tensors()\n"
            "for d in it.get_input_details(): it.set_tensor(d['index'], np.full(d['shape'], 0.5, d['dtype']))\n"
            "it.invoke()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode < 0, (proc.returncode, proc.stderr[-500:])


def test_crash_and_hang_are_rows_and_the_campaign_goes_on(tmp_path):
    tmp = tmp_path / "tmp"  # the runner's job folders live here, so its processes are ours to find
    tmp.mkdir()
    t0 = time.monotonic()
    proc = run_cli(
        "run", "--model", str(DATA / "crash.tflite"), "--model", str(DATA / "hang.tflite"),
        "--model", str(DATA / "tiny.tflite"), "--timeout", "5", "--runs", "3", "--min-seconds", "0",
        "--eval-samples", "4", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
        "--cache-dir", str(tmp_path / "cache"), env={"TMPDIR": str(tmp)}, timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert rows["crash"]["status"] == "runtime_failed"
    assert "SIGSEGV" in rows["crash"]["reason"] or "signal" in rows["crash"]["reason"]
    assert rows["hang"]["status"] == "timeout" and "5 s" in rows["hang"]["reason"]
    assert rows["tiny"]["status"] == "ok"
    assert elapsed < 60
    time.sleep(0.5)
    assert processes_mentioning(str(tmp)) == []  # the hanging runner was killed, not orphaned


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL])
def test_runner_killed_by_any_signal_is_named(tmp_path, sig):
    """A runtime that dies by any signal gives a row naming it (a stand-in python kills itself)."""
    import numpy as np

    from harness.devices.base import MeasureJob
    from harness.devices.local import LocalDevice

    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nkill -{sig.name[3:]} $$\n")
    fake.chmod(0o755)
    np.savez(tmp_path / "in.npz", **{"0": np.zeros((1, 8), np.float32)})
    job = MeasureJob(DATA / "tiny.tflite", "x", tmp_path / "in.npz", ["x"], threads=1, xnnpack=True,
                     warmup_runs=0, runs=1, min_seconds=0, max_seconds=1, timeout_s=30)
    m = LocalDevice(python=str(fake)).measure(job)
    assert m.status == "runtime_failed" and sig.name in m.reason
