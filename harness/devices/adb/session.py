"""What both ADB runners share: the device session they run in, commands bounded by the
device's own `timeout`, and how a failed `benchmark_model` run becomes a measurement.

The benchmark_model runner (`runners.py`) and its on-device drift pass (`drift.py`) both
use these; keeping them here lets `runners.py` call `drift.py` without a cycle.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any, Protocol

from harness.core import statuses
from harness.devices import benchmark_model as bm
from harness.devices.adb.files import RemoteFolder
from harness.devices.base import Measurement, RunnerReport
from harness.devices.profiles import DeviceProfile

STORAGE_FULL = ("device storage is full (No space left on device); free space in "
                "{folder}")

# A transport timeout alone would leave a hung runner running on the device, sharing its
# CPU with every later job. So each run goes under the device's own `timeout` (toybox on
# Android 6+, coreutils on boards), which ends it first; the transport waits a bit longer.
DEADLINE_GRACE_S = 15.0
DEADLINE_EXIT = 124  # what `timeout` exits with when it had to stop the command


class Session(Protocol):
    folder: RemoteFolder
    profile: DeviceProfile
    transport: Any
    label: str

    def step(self, phase: str, fn): ...


def under_deadline(command: str, seconds: float) -> str:
    """`command` stopped on the device after `seconds` (TERM, then KILL 5 s later).

    Falls back to running it unbounded where the device has no `timeout` applet; the
    transport's own timeout still bounds the wait then.
    """
    n = max(1, math.ceil(seconds))
    inner = shlex.quote(command)
    return (f"if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 {n} sh -c {inner}; "
            f"else exec sh -c {inner}; fi")


def run_bounded(s: Session, command: str, seconds: float):
    """Run `command` on the device under `under_deadline`; returns the ShellResult."""
    return s.transport.shell(under_deadline(command, seconds), timeout_s=seconds + DEADLINE_GRACE_S)


def deadline_reason(s: Session, seconds: float) -> str:
    return (f"{s.label}: runner gave no result within {seconds:.0f} s (settings.timeout_s); "
            "it was stopped on the device")


def tail(text: str, words: int = 40) -> str:
    return " ".join(text.split()[-words:])


def benchmark_failure(s: Session, text: str, rc: int | None) -> Measurement:
    """A benchmark_model run that gave no timings, classified (unsupported, out of space, error)."""
    category, reason = bm.classify_failure(text, rc)
    raw = RunnerReport(runtime="benchmark_model", stderr=text[-4000:], extra={"failure": category})
    if category == "unsupported":
        return Measurement(statuses.UNSUPPORTED, reason, report=raw)
    if category == "out_of_space":
        return Measurement(statuses.RUNTIME_FAILED, STORAGE_FULL.format(folder=s.folder.root), report=raw)
    if category == "ok":
        reason = f"benchmark_model exited {rc} without timings: {tail(text)}"[:400]
    return Measurement(statuses.RUNTIME_FAILED, reason, report=raw)



@dataclass
class DriftError(Exception):
    message: str
    measurement: Measurement | None = None

    def __str__(self) -> str:
        return self.message
