"""Budgets: what a quantized artifact must keep, e.g. `top1>=0.99,cosine>=0.995`.

A budget is a comma-separated list of bounds on the drift of an artifact against the
original model, measured on the evaluation samples:

| metric          | reads                                       | usual direction |
|-----------------|---------------------------------------------|-----------------|
| `top1`          | top-1 agreement with the original           | `>=`            |
| `cosine`        | mean cosine similarity of the outputs        | `>=`            |
| `accuracy_drop` | original accuracy - artifact accuracy (labels needed) | `<=`   |
| `max_abs`       | largest absolute output difference           | `<=`            |
| `accuracy`      | accuracy on the labels                       | `>=`            |

Plain data only: the CLI and the campaign parser validate a budget without TensorFlow.
A top-1 figure is a proportion of a finite sample, so `check` also gives its 95%
Wilson interval: a budget met by 0.99 on 32 samples is a weaker claim than on 1000.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.core.errors import UsageError

METRICS = ("top1", "cosine", "accuracy_drop", "max_abs", "accuracy")
_BOUND = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")
EXAMPLE = "top1>=0.99,cosine>=0.995"


@dataclass(frozen=True)
class Bound:
    metric: str
    op: str  # ">=" or "<="
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Verdict:
    """Whether one artifact's drift meets the budget, and by how much it misses."""

    meets: bool
    failures: list[str]
    shortfall: float  # 0 when met; the sum of each missed bound's relative miss otherwise
    top1_ci: tuple[float, float] | None = None


def metric_value(drift: dict, metric: str) -> float | None:
    """The value a bound reads from a drift dict (None when not measured, e.g. no labels)."""
    if metric == "top1":
        return drift.get("top1_agreement")
    if metric == "accuracy_drop":
        acc, ref = drift.get("accuracy"), drift.get("reference_accuracy")
        return None if acc is None or ref is None else float(ref) - float(acc)
    value = drift.get(metric)
    return None if value is None else float(value)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion P measured on N samples."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Budget:
    bounds: tuple[Bound, ...]

    @property
    def text(self) -> str:
        return ",".join(str(b) for b in self.bounds)

    def check(self, drift: dict | None) -> Verdict:
        drift = drift or {}
        failures, shortfall = [], 0.0
        for b in self.bounds:
            v = metric_value(drift, b.metric)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                failures.append(f"{b.metric} not measured" + (" (the samples have no labels)"
                                                              if "accuracy" in b.metric else ""))
                shortfall += 1.0
                continue
            ok = v >= b.value if b.op == ">=" else v <= b.value
            if not ok:
                failures.append(f"{b.metric} {v:.4g} (needs {b.op}{b.value:g})")
                shortfall += abs(v - b.value) / max(abs(b.value), 1e-9)
        top1 = drift.get("top1_agreement")
        ci = wilson(float(top1), int(drift.get("samples") or 0)) if top1 is not None else None
        return Verdict(not failures, failures, 0.0 if not failures else shortfall, ci)


def parse_budget(text: str, where: str = "--budget") -> Budget:
    """`top1>=0.99,accuracy_drop<=0.01` -> Budget; a one-line UsageError names what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{where}: a budget is text like {EXAMPLE!r}")
    bounds = []
    for part in text.split(","):
        m = _BOUND.match(part)
        if not m:
            raise UsageError(f"{where}: {part.strip()!r} is not a bound; write METRIC>=VALUE or METRIC<=VALUE, "
                             f"e.g. {EXAMPLE!r}")
        metric, op, raw = m.groups()
        if metric not in METRICS:
            raise UsageError(f"{where}: unknown budget metric {metric!r}; choose from {', '.join(METRICS)}")
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"{where}: {raw!r} in {part.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"{where}: {part.strip()!r} needs a finite number")
        if metric in ("top1", "cosine", "accuracy") and not -1.0 <= value <= 1.0:
            raise UsageError(f"{where}: {metric} is a fraction; give a value in [0, 1], e.g. {metric}>=0.99")
        bounds.append(Bound(metric, op, value))
    return Budget(tuple(bounds))
