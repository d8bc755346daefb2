"""Shell scripts pushed to a device: what they may use, how they report a failing step.

A device is often an Android phone: `mksh` and toybox applets, nothing else (no bash, no
GNU coreutils, no python; some toybox builds lack `dd`). Every script checks first that the
applets it needs exist, and marks each step, so a failure is worded as the step that failed
and what it printed (`on-device drift failed: `dd` not found on the device`), never as a
later program's missing output. Each script, its output and exit code are kept in the run's
logs/ (`DeviceScript`, carried in `RunnerReport.scripts`). The commands used are listed in
docs/devices.md.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from harness.devices.adb.session import Session, benchmark_failure, tail

DRIFT_APPLETS = ("dd", "cat", "rm")  # plus the shell's own: command, echo, exit
_MISSING = re.compile(r"^script-missing-command: (\S+)$", re.M)
_STEP = re.compile(r"^script-step-failed: (\S+) sample (\d+)(?: exit (\d+))?$", re.M)


@dataclass(frozen=True)
class DeviceScript:
    """One pushed script: its name, the step it served, its text, what it printed, its exit code."""

    name: str
    step: str
    script: str
    output: str
    exit_code: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require(applets: tuple[str, ...]) -> str:
    """A first script line that stops with a marker naming the first applet the device lacks."""
    names = " ".join(applets)
    return (f"for c in {names}; do command -v \"$c\" >/dev/null 2>&1 || "
            "{ echo \"script-missing-command: $c\"; exit 127; }; done")


def drift_script(run: str, n: int, blobs: list[tuple[bytes, int]], blob_names: list[str], cut: list[str],
                 out_one: str, out_all: str, log: str) -> str:
    """Cut sample i of every input blob with `dd`, run benchmark_model once on it, append its outputs.

    Runs inside the harness folder and names files relative to it."""
    lines = [require(DRIFT_APPLETS), f"rm -f {shlex.quote(out_all)}"]
    for i in range(n):
        for (_b, size), blob, c in zip(blobs, blob_names, cut, strict=True):
            lines.append(f"dd if={blob} of={c} bs={size} skip={i} count=1 2>{log} "
                         f"|| {{ echo 'script-step-failed: dd sample {i}'; cat {log}; exit 1; }}")
        lines.append(f"{run} > {log} 2>&1 || {{ rc=$?; echo \"script-step-failed: benchmark_model sample {i} "
                     f"exit $rc\"; cat {log}; exit $rc; }}")
        lines.append(f"cat {out_one} >> {out_all} || {{ echo 'script-step-failed: cat sample {i}'; exit 1; }}")
    lines.append("echo drift-done")
    return "\n".join(lines) + "\n"


def script_failure(s: Session, output: str, returncode: int | None) -> str:
    """What failed in a script run: the missing applet, or the marked step and its own output."""
    missing = _MISSING.search(output)
    if missing:
        return f"`{missing.group(1)}` not found on the device"
    step = _STEP.search(output)
    if step is None:
        return f"the script exited {returncode}: {tail(output)}"[:400]
    program, sample, rc = step.group(1), step.group(2), step.group(3)
    said = output[step.end():].strip()
    if program == "benchmark_model":
        reason = benchmark_failure(s, said, int(rc) if rc else returncode).reason
        return f"benchmark_model failed on sample {sample}: {reason}"[:400]
    return f"`{program}` failed on sample {sample}: {tail(said) or 'it printed nothing'}"[:400]
