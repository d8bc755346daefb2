"""What a confirmation measured, and the one statistic that decides from it.

Confirmation re-measures a base and a new artifact now, on the same device, in fresh
processes, round after round, alternating which goes first (A B, B A, A B, ...). Each
round gives one paired ratio new/base of the two processes' medians; slow drifts of the
machine (frequency, a neighbour's load) hit both halves of a round alike and cancel in
the ratio, and the alternation cancels the "second process of a pair is slower" bias.

Each process is summarised by a low quantile of its samples, p10 (`ROUND_QUANTILE`), not
its median: a neighbour's load only ever adds time to an invoke (preemption, a polluted
cache), so the fast part of the distribution is the artifact's own cost and moves least
between processes (Chen & Revels, "Robust benchmarking in noisy environments", 2016, make
the case for the minimum; p10 of thousands of samples keeps that robustness without
resting on one sample). Medians are kept alongside, for the record and bench/gate.py.

The decision uses a Student-t 95 % interval of the mean log ratio over the rounds (the
geometric-mean ratio). With 4-8 rounds a percentile bootstrap has too few points to
cover honestly and a sign test cannot reach p < 0.05 below 6 rounds; the t interval
widens with every inconsistent round, so one round hit by a burst of load makes the
gate say "not confirmed" rather than cry wolf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ROUND_QUANTILE = 10  # percentile of each process's samples that a round compares


@dataclass
class Remeasurement:
    """Per-round figures (microseconds) of base and new, as measured now by confirmation:
    the `ROUND_QUANTILE` percentile that decides, and the medians."""

    device: str
    base_us: list[float] = field(default_factory=list)
    new_us: list[float] = field(default_factory=list)
    base_medians_us: list[float] = field(default_factory=list)
    new_medians_us: list[float] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)  # "AB" or "BA" per round
    seconds: float = 0.0  # wall time of the whole confirmation of this pair
    error: str | None = None  # why it stopped (device unreachable, a run failed), if it did

    @property
    def rounds(self) -> int:
        return min(len(self.base_us), len(self.new_us))

    def change(self) -> PairedChange | None:
        return paired_change(self.base_us, self.new_us)


@dataclass(frozen=True)
class PairedChange:
    """The confirmed relative change new/base - 1 with its 95 % interval over `rounds` rounds."""

    change: float
    ci_low: float
    ci_high: float
    rounds: int
    slower_rounds: int  # rounds in which new was slower than base

    def to_dict(self) -> dict:
        return {"change": self.change, "ci95": [self.ci_low, self.ci_high], "rounds": self.rounds,
                "slower_rounds": self.slower_rounds}


def paired_change(base_us: list[float], new_us: list[float], level: float = 0.95) -> PairedChange | None:
    """Geometric-mean ratio of paired per-round figures with a Student-t interval; None below 2 rounds."""
    from scipy.stats import t as student_t

    logs = [math.log(n / b) for b, n in zip(base_us, new_us, strict=False) if b > 0 and n > 0]
    k = len(logs)
    if k < 2:
        return None
    mean = sum(logs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (k - 1))
    half = float(student_t.ppf(0.5 + level / 2, k - 1)) * sd / math.sqrt(k)
    return PairedChange(math.exp(mean) - 1.0, math.exp(mean - half) - 1.0, math.exp(mean + half) - 1.0, k,
                        sum(x > 0 for x in logs))
