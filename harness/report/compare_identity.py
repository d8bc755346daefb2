"""Artifact identity and the machine's move: what `compare` knows before it judges a latency.

Two rows whose `.tflite` bytes, runtime (and version) and measurement settings are equal
ran the same computation: any difference in their latency is the machine's (frequency,
a neighbour's load, memory placement). Their changes say how far the machine moved between
the two runs and how much rows scatter around that move: the run-to-run noise that a
stored change of any other row must exceed before it is even worth confirming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.result import Result
from harness.report.compare_stats import PairStats

# artifact identity of a matched pair
SAME_ARTIFACT = "same"  # same bytes, runtime + version, settings: latency changes are the machine's
RUNTIME_CHANGED = "runtime"  # same bytes, another runtime or version: a change is the runtime's
RUNTIME_API_CHANGED = "runtime_api"  # same bytes and runtime, another API or accelerator (--ignore runtime)
SETTINGS_CHANGED = "settings"  # same bytes and runtime, other measurement settings (or threads, xnnpack)
DEVICE_CHANGED = "device"  # same bytes measured on two devices: a change is the device's
ARTIFACT_CHANGED = "changed"  # other bytes: a change may be the conversion's
UNKNOWN = "unknown"  # a side does not name its artifact (old rows): treated as changed


def samples_of(r: Result):
    """The raw samples of a row: a list, or a NumPy array (the store's compare path); [] when none."""
    s = r.samples_us
    return [] if s is None else s


def artifact_identity(base: Result, new: Result) -> str:
    """Could the artifact explain a latency change? (see the module docstring)."""
    if not base.artifact or not new.artifact:
        return UNKNOWN
    if base.artifact != new.artifact:
        return ARTIFACT_CHANGED
    if base.device != new.device:  # compared across devices (--ignore device)
        return DEVICE_CHANGED
    if (base.runtime, base.runtime_version) != (new.runtime, new.runtime_version):
        return RUNTIME_CHANGED
    if runtime_label(base) != runtime_label(new):  # --ignore runtime: Interpreter vs CompiledModel, on purpose
        return RUNTIME_API_CHANGED
    if (getattr(base, "settings", None) != getattr(new, "settings", None)
            or (base.threads, base.xnnpack) != (new.threads, new.xnnpack)):  # --ignore threads / xnnpack
        return SETTINGS_CHANGED
    return SAME_ARTIFACT


def runtime_label(r) -> str:
    """'interpreter/cpu', 'compiled_model/gpu+cpu' (rows from before the runtime axis: the Interpreter's)."""
    return f"{getattr(r, 'runtime_api', None) or 'interpreter'}/{getattr(r, 'accelerator', None) or 'cpu'}"


@dataclass(frozen=True)
class MachineMove:
    """How the unchanged artifacts' medians moved between the runs: the machine, not the conversion."""

    rows: int
    change: float  # median relative change
    spread: float | None  # robust spread (1.4826 MAD) of their log changes; 3+ rows

    def text(self, threshold: float) -> str:
        what = "artifact" if self.rows == 1 else "artifacts"
        if abs(self.change) <= threshold:
            return f"{self.rows} unchanged {what} moved {self.change:+.1%}: the machine held steady"
        return (f"{self.rows} unchanged {what} moved {self.change:+.1%}: "
                f"the machine was {'slower' if self.change > 0 else 'faster'}")


def machine_move(pairs: list[tuple[Result, Result, PairStats | None]]) -> MachineMove | None:
    """The median move of the same-artifact rows (ok on both sides), with its spread;
    each pair with its `latency_stats` figures when it has raw samples."""
    import numpy as np

    logs = []
    for base, new, s in pairs:
        if base.status != "ok" or new.status != "ok" or artifact_identity(base, new) != SAME_ARTIFACT:
            continue
        if s is not None:
            mb, mn = s.base_p50, s.new_p50
        elif base.latency_us and new.latency_us:
            mb, mn = base.latency_us.get("p50") or 0, new.latency_us.get("p50") or 0
        else:
            continue
        if mb > 0 and mn > 0:
            logs.append(math.log(mn / mb))
    if not logs:
        return None
    x = np.asarray(logs)
    centre = float(np.median(x))
    spread = float(1.4826 * np.median(np.abs(x - centre))) if len(x) >= 3 else None
    return MachineMove(len(x), math.exp(centre) - 1.0, spread)


def tested_pair(base: Result, new: Result) -> bool:
    """Both ok with raw samples on both sides: the rows that get the test and the bootstrap."""
    return {base.status, new.status} <= {"ok", "latency_only"} and len(samples_of(base)) >= 3 and len(samples_of(new)) >= 3


NOISE_MIN_ROWS = 8


def run_to_run_noise(pairs: list[tuple[Result, Result]]) -> float | None:
    """Robust spread (1.4826 x MAD) of log(median NEW / median BASE) over the matched rows.

    Samples of one run come from one process, so Mann-Whitney cannot see the between-process
    variation (CPU frequency, memory placement, other load) that shifts every median by a few
    percent from run to run. Across many rows that variation shows as scatter of the per-row
    changes around their common shift. Unchanged artifacts give a better estimate (their
    scatter is all noise) and need only 3 rows; this is the fallback when there are fewer.
    """
    import numpy as np

    return median_noise([(float(np.median(samples_of(b))), float(np.median(samples_of(a))))
                   for b, a in pairs if tested_pair(b, a)])


def median_noise(medians: list[tuple[float, float]]) -> float | None:
    """`run_to_run_noise` from the (median BASE, median NEW) of the tested rows."""
    import numpy as np

    logs = [math.log(mn / mb) for mb, mn in medians if mb > 0 and mn > 0]
    if len(logs) < NOISE_MIN_ROWS:
        return None
    x = np.asarray(logs)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))
