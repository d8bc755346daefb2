"""The local device for confirmation: a runner zygote that forks one fresh process per measurement.

Confirmation (harness/pipeline/confirm.py) measures two artifacts alternately in many short
processes. Started from scratch, each of them spends most of its life importing Python,
NumPy and LiteRT (~0.3 s quiet, ~1 s on a busy 2-core runner) to time 0.1 s; the gate's
cost target (a confirmation at most 3x one measurement of the two rows) cannot be met that
way with enough rounds to decide. `runner.py --serve` imports once and forks a child per
job: each measurement still runs in a fresh process (own pid and address space, its own
interpreter and model, nothing loaded before the fork but the modules), and the child runs
the same `runner.run` as `runner.py JOB.json`.

Only confirmation uses it: runs keep `LocalDevice`'s exec-per-measurement, the path whose
start-up and memory figures a stored row reports. `ForkingLocalDevice` is a `LocalDevice`
whose single measurement goes through the zygote; `close()` stops it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.devices import runner as runner_module
from harness.devices.base import MeasureJob, Measurement
from harness.devices.local import (
    RUNNER_PATH,
    LocalDevice,
    measurement_from,
    timeout_measurement,
    write_job_spec,
)


class ForkingLocalDevice(LocalDevice):
    """LocalDevice whose measurements are children forked by one long-lived runner zygote."""

    def __init__(self, python: str | None = None):
        super().__init__(python)
        self._proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    def _zygote(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([self.python, "-I", str(RUNNER_PATH), "--serve"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr, start_new_session=True)
        return self._proc

    def _measure_once(self, job: MeasureJob, outputs: bool) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="tflite-harness-") as tmp:
            out_npz = Path(tmp) / "outputs.npz" if outputs else None
            spec_path = write_job_spec(job, Path(tmp), out_npz)
            proc = self._zygote()
            self._stderr.seek(0)
            self._stderr.truncate()
            try:
                proc.stdin.write(f"{spec_path}\n".encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._stop()
                return measurement_from(1, "", self._stderr_text(), out_npz)
            got = self._read_until_done(proc, job.timeout_s)
            if got is None:
                self._stop()
                return timeout_measurement(job)
            stdout, code = got
            return measurement_from(code, stdout, self._stderr_text(), out_npz)

    def _read_until_done(self, proc: subprocess.Popen, timeout_s: float) -> tuple[str, int] | None:
        """The child's stdout and exit status, or None when no end came within timeout_s."""
        deadline = time.monotonic() + timeout_s
        buf = b""
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                text = buf.decode(errors="replace")
                for line in text.splitlines():
                    if line.startswith(runner_module.DONE_PREFIX):
                        return text, int(line[len(runner_module.DONE_PREFIX):])
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:  # the zygote died: its exit status stands for the child's
                    proc.wait()
                    return text, proc.returncode if proc.returncode < 0 else (proc.returncode or 1)
                buf += chunk

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the zygote's own session: it and its child
            except ProcessLookupError:
                pass
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f:
                f.close()

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # end of jobs: the zygote leaves its loop and exits
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()
        self._stderr.close()
