"""Nightly change points: across the last N runs, which rows changed, at which run, by how much,
and what changed with them.

- Exact figures (artifact sha256, size, ops, status, drift, accuracy) change at an exact run:
  each change is reported with its old and new value and what else changed in that run.
- Latency (p50 per run) is first corrected for the machine: in each run, every row is divided
  by the median move of the rows whose artifact, runtime and settings did not change since
  the previous run on the same device (the gate's identity rule, report/compare_identity.py).
  The corrected series go through E-Divisive means with a permutation test
  (report/edivisive.py). Each change point gets its magnitude, a 95 % interval, and a cause:
  what changed at (or next to) its run, else "latency moved with no artifact change". A step
  every unchanged artifact took together is a "machine" step, never a regression.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from harness.core import statuses
from harness.report.changes_data import ChangesInput, Point, Series
from harness.report.compare import Thresholds
from harness.report.edivisive import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SIZE,
    DEFAULT_PERMUTATIONS,
    ChangePoint,
    change_points,
    split_p_value,
)

BYTES, RUNTIME, SETTINGS, TOOLS, DEVICE = "bytes", "runtime", "settings", "tools", "device"
NO_ARTIFACT_CHANGE = "latency moved with no artifact change"
MACHINE = "machine"
CAUSES = (BYTES, RUNTIME, SETTINGS, TOOLS, DEVICE)  # the order a change point names them in
# What can make a latency change point a regression: a new tool version alone cannot (the
# artifact, its runtime and settings are the same, so the computation is), nor can the machine.
REGRESSION_CAUSES = {BYTES, RUNTIME, SETTINGS, DEVICE}
EXACT_FIGURES = ("artifact", "size", "ops", "status", "max_abs", "accuracy")


@dataclass
class ChangesOptions:
    thresholds: Thresholds = field(default_factory=Thresholds)
    alpha: float = DEFAULT_ALPHA
    permutations: int = DEFAULT_PERMUTATIONS
    min_size: int = DEFAULT_MIN_SIZE
    seed: int = 0


@dataclass
class ExactChange:
    key: tuple
    label: str
    figure: str  # one of EXACT_FIGURES
    run: int
    run_id: str
    old: str
    new: str
    worse: bool
    causes: list[str]  # what else changed in the same run (CAUSES names)
    also: list[str]  # the same, spelled out: "tensorflow 2.20.0 -> 2.21.0"


@dataclass
class LatencyChangePoint:
    key: tuple
    label: str
    run: int
    run_id: str
    before_us: float  # median stored p50 of the segment before
    after_us: float
    change: float  # machine-corrected relative change of the segment medians
    ci_low: float | None  # 95 % interval of the change (segment means of log p50, Welch)
    ci_high: float | None
    p_value: float
    cause: str  # the first of `causes`, or NO_ARTIFACT_CHANGE
    causes: list[str]
    also: list[str]
    regression: bool = False  # a slowdown beyond the threshold, interval above 0, a REGRESSION_CAUSES cause
    improvement: bool = False


@dataclass
class MachineStep:
    device: str
    run: int
    run_id: str
    change: float  # median move of the unchanged artifacts from the previous run
    rows: int


@dataclass
class ChangesReport:
    data: ChangesInput
    options: ChangesOptions
    exact: list[ExactChange]
    latency: list[LatencyChangePoint]
    machine: list[MachineStep]

    def failures(self) -> dict[tuple, list[str]]:
        """What `--fail-on regression` fails on, by row key: the newest latency change point of
        a row when it is a regression; the newest change of an exact figure when it got worse."""
        out: dict[tuple, list[str]] = {}
        newest: dict[tuple, LatencyChangePoint] = {}
        for c in self.latency:
            if c.key not in newest or c.run > newest[c.key].run:
                newest[c.key] = c
        for c in newest.values():
            if c.regression:
                out.setdefault(c.key, []).append(f"latency {c.change:+.1%} at run {c.run_id} ({c.cause})")
        last: dict[tuple, ExactChange] = {}
        for e in self.exact:
            last[(e.key, e.figure)] = e  # run order: the last one is the newest
        for e in last.values():
            if e.worse:
                out.setdefault(e.key, []).append(f"{e.figure} {e.old} -> {e.new} at run {e.run_id}")
        return out

    @property
    def failed(self) -> bool:
        return bool(self.failures())

    def runs_with_changes(self) -> dict[int, list[str]]:
        """Run index -> what it introduced (for the run list)."""
        out: dict[int, list[str]] = {}
        for e in self.exact:
            out.setdefault(e.run, []).append(f"{e.label}: {e.figure}")
        for c in self.latency:
            out.setdefault(c.run, []).append(f"{c.label}: latency {c.change:+.1%} ({c.cause})")
        for m in self.machine:
            out.setdefault(m.run, []).append(f"machine {m.device}: {m.change:+.1%}")
        return out

    def summary(self) -> str:
        regress = sum(c.regression for c in self.latency)
        worse = sum(e.worse for e in self.exact)
        head = "REGRESSED" if self.failed else "no regressions"
        return (f"{head}: {len(self.data.series)} row series over {len(self.data.runs)} run(s); "
                f"{len(self.latency)} latency change point(s) ({regress} regression(s)), "
                f"{len(self.exact)} exact change(s) ({worse} worse), {len(self.machine)} machine step(s)")


def _short(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _differs(prev: Point, cur: Point) -> bool:
    """Anything a cause could name differs (the fast test: most consecutive runs differ in nothing)."""
    return (prev.artifact != cur.artifact or prev.runtime_version != cur.runtime_version
            or prev.runtime != cur.runtime or prev.settings != cur.settings or prev.tools != cur.tools
            or prev.device != cur.device)


def what_changed(prev: Point, cur: Point) -> tuple[list[str], list[str]]:
    """The causes a change between two runs of one row can have, with their texts."""
    causes: list[str] = []
    also: list[str] = []
    if not _differs(prev, cur):
        return causes, also
    if prev.artifact != cur.artifact:
        causes.append(BYTES)
        also.append(f"bytes {(prev.artifact or '-')[:12]} -> {(cur.artifact or '-')[:12]}")
    if (prev.runtime, prev.runtime_version) != (cur.runtime, cur.runtime_version):
        causes.append(RUNTIME)
        also.append(f"runtime {prev.runtime} {prev.runtime_version} -> {cur.runtime} {cur.runtime_version}")
    if prev.settings != cur.settings:
        causes.append(SETTINGS)
        also.append(f"settings {prev.settings or '-'} -> {cur.settings or '-'}")
    pt, ct = (json.loads(p.tools) if p.tools != "{}" else {} for p in (prev, cur))
    tools = [f"{k} {pt.get(k, '-')} -> {ct.get(k, '-')}" for k in sorted(set(pt) | set(ct)) if pt.get(k) != ct.get(k)]
    if tools:
        causes.append(TOOLS)
        also.extend(tools)
    pd, cd = (json.loads(p.device) if p.device != "{}" else {} for p in (prev, cur))
    dev = [f"device {k} {pd.get(k) or '-'} -> {cd.get(k) or '-'}" for k in sorted(set(pd) | set(cd))
           if pd.get(k) != cd.get(k)]
    if dev:
        causes.append(DEVICE)
        also.extend(dev)
    return causes, also


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-9)


def exact_changes(series: Series, runs: list, t: Thresholds) -> list[ExactChange]:
    out = []
    for prev, cur in zip(series.points, series.points[1:], strict=False):
        if (prev.artifact == cur.artifact and prev.status == cur.status and prev.size_bytes == cur.size_bytes
                and prev.ops == cur.ops and prev.max_abs == cur.max_abs and prev.accuracy == cur.accuracy):
            continue  # the usual night: nothing exact moved
        found = []
        if prev.artifact != cur.artifact and prev.artifact and cur.artifact:
            found.append(("artifact", prev.artifact[:12], cur.artifact[:12], False))
        if prev.size_bytes != cur.size_bytes and prev.size_bytes and cur.size_bytes:
            grew = cur.size_bytes / prev.size_bytes - 1
            worse = t.max_size_increase is not None and grew > t.max_size_increase + 1e-12
            found.append(("size", f"{prev.size_bytes} B", f"{cur.size_bytes} B ({grew:+.1%})", worse))
        if prev.ops != cur.ops and prev.ops and cur.ops:
            gone, added = sorted(set(prev.ops) - set(cur.ops)), sorted(set(cur.ops) - set(prev.ops))
            found.append(("ops", ",".join(gone) or "(same set)", ",".join(added) or "(same set)", False))
        if prev.status != cur.status:
            found.append(("status", prev.status, cur.status + (f" ({cur.reason})" if cur.reason else ""),
                          prev.status == statuses.OK))
        if prev.status == cur.status == statuses.OK:
            if not _close(prev.max_abs, cur.max_abs) and prev.max_abs is not None and cur.max_abs is not None:
                worse = t.max_drift_increase is not None and cur.max_abs - prev.max_abs > t.max_drift_increase
                found.append(("max_abs", _short(prev.max_abs), _short(cur.max_abs), worse))
            if not _close(prev.accuracy, cur.accuracy) and prev.accuracy is not None and cur.accuracy is not None:
                worse = t.max_accuracy_drop is not None and prev.accuracy - cur.accuracy > t.max_accuracy_drop
                found.append(("accuracy", _short(prev.accuracy), _short(cur.accuracy), worse))
        if found:
            causes, also = what_changed(prev, cur)
            out.extend(ExactChange(series.key, series.label, fig, cur.run, runs[cur.run].id, old, new, worse,
                                   causes, also) for fig, old, new, worse in found)
    return out


def machine_moves(data: ChangesInput, threshold: float,
                  rounds: int = 3) -> tuple[dict[str, np.ndarray], list[MachineStep]]:
    """Per device, the machine's log level at each run, and its steps beyond the threshold.

    Each row splits into stretches of consecutive runs with the same artifact identity (same
    bytes, runtime and version, settings: the gate's rule); inside a stretch every move is the
    machine's. The level is a median polish over those stretches: each stretch's own level is
    the median of its values less the machine, the machine's level at a run the median over
    the stretches of their values less their own level. Chaining the medians of run-to-run
    moves instead adds up their noise into a random walk (0.5 % per run is 4 % over 60 runs)
    that every corrected series would then carry.
    """
    n = len(data.runs)
    groups: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}  # device -> (stretch, run, log p50)
    for s in data.series if data.controls is None else data.controls:
        a = s.arrays()
        timed = ~np.isnan(a.log_p50)
        joined = timed[1:] & timed[:-1] & (np.diff(a.run) == 1) & (a.identity[1:] == a.identity[:-1])
        stretch = np.r_[0, np.cumsum(~joined)]  # a new stretch wherever a point does not join the last
        size = np.bincount(stretch)
        keep = timed & (size[stretch] >= 2)
        if keep.any():
            groups.setdefault(s.key[2], []).append((stretch[keep], a.run[keep], a.log_p50[keep]))
    levels, steps = {}, []
    for device, parts in groups.items():
        rows, offset = [], 0
        for stretch, _, _ in parts:
            ids = np.unique(stretch, return_inverse=True)[1]
            rows.append(ids + offset)
            offset += ids.max() + 1
        x = np.full((offset, n), np.nan)
        x[np.concatenate(rows), np.concatenate([r for _, r, _ in parts])] = np.concatenate([v for _, _, v in parts])
        machine = np.zeros(n)
        for _ in range(rounds):
            own = np.nanmedian(x - machine, axis=1, keepdims=True)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a run no stretch covers: all-NaN column
                machine = _carried(np.nanmedian(x - own, axis=0))
            machine -= machine[0]
        counts = np.sum(~np.isnan(x[:, 1:]) & ~np.isnan(x[:, :-1]), axis=0)
        for j in range(1, n):
            move = math.expm1(machine[j] - machine[j - 1])
            if counts[j - 1] and abs(move) > threshold:
                steps.append(MachineStep(device, j, data.runs[j].id, move, int(counts[j - 1])))
        levels[device] = machine
    return levels, steps


def _carried(level: np.ndarray) -> np.ndarray:
    """Runs without an unchanged artifact keep the previous run's level (0 before the first known)."""
    known = ~np.isnan(level)
    if known.all():
        return level
    last = np.maximum.accumulate(np.where(known, np.arange(len(level)), -1))
    return np.where(last >= 0, level[np.maximum(last, 0)], 0.0)


def _interval(before: np.ndarray, after: np.ndarray) -> tuple[float | None, float | None]:
    if len(before) < 2 or len(after) < 2:
        return None, None
    diff = after.mean() - before.mean()
    se = math.sqrt(before.var(ddof=1) / len(before) + after.var(ddof=1) / len(after))
    return math.expm1(diff - 1.96 * se), math.expm1(diff + 1.96 * se)


def _cause(timed: list[Point], i: int) -> tuple[int, list[str], list[str]]:
    """What changed at the change point (timed[i-1] -> timed[i]), else one run either side;
    the position returned is where the cause is (an exact figure pins the run)."""
    for j in (i, i - 1, i + 1):
        if 1 <= j < len(timed):
            causes, also = what_changed(timed[j - 1], timed[j])
            if causes:
                return j, causes, also
    return i, [], []


def _pinned(everything: np.ndarray, x: np.ndarray, cps: list[ChangePoint],
            options: ChangesOptions) -> list[ChangePoint]:
    """Change points at runs where the row's identity changed (bytes, runtime, settings, tools,
    device) that the search did not find: that one split tested on its own (`split_p_value`),
    which short histories can pass where a search over every split cannot.
    `everything`: the codes of the timed points (SeriesArrays.everything)."""
    out: list[ChangePoint] = []
    for i in np.flatnonzero(everything[1:] != everything[:-1]) + 1:
        i = int(i)
        if not options.min_size <= i <= len(x) - options.min_size or any(abs(c.index - i) <= 1 for c in cps + out):
            continue
        lo = max([0, *(c.index for c in cps if c.index < i)])
        hi = min([len(x), *(c.index for c in cps if c.index > i)])
        if i - lo < options.min_size or hi - i < options.min_size:
            continue
        p = split_p_value(x[lo:hi], i - lo, permutations=options.permutations, seed=options.seed)
        if p < options.alpha:
            out.append(ChangePoint(i, p, float("nan")))
    return out


def latency_change_points(data: ChangesInput, options: ChangesOptions,
                          machine: dict[str, np.ndarray]) -> list[LatencyChangePoint]:
    flat = np.zeros(len(data.runs))
    arrays = [s.arrays() for s in data.series]
    timed = [np.flatnonzero(~np.isnan(a.log_p50)) for a in arrays]
    corrected = [a.log_p50[t] - machine.get(s.key[2], flat)[a.run[t]]
                 for s, a, t in zip(data.series, arrays, timed, strict=True)]
    found = change_points(corrected, alpha=options.alpha, permutations=options.permutations,
                          min_size=options.min_size, seed=options.seed)
    limit = options.thresholds.max_latency_regression
    out = []
    for s, a, t, x, cps in zip(data.series, arrays, timed, corrected, found, strict=True):
        cps = cps + _pinned(a.everything[t], x, cps, options)
        if not cps:
            continue
        cps.sort(key=lambda c: c.index)
        bounds = [0, *(c.index for c in cps), len(x)]
        pts = [s.points[i] for i in t]
        raw = np.exp(a.log_p50[t])
        for k, c in enumerate(cps):
            lo, hi = bounds[k], bounds[k + 2]
            before, after = x[lo:c.index], x[c.index:hi]
            change = math.expm1(float(np.median(after) - np.median(before)))
            ci_low, ci_high = _interval(before, after)
            at, causes, also = _cause(pts, c.index)
            cause = causes[0] if causes else NO_ARTIFACT_CHANGE
            sure = ci_low is not None
            out.append(LatencyChangePoint(
                s.key, s.label, pts[at].run, data.runs[pts[at].run].id, float(np.median(raw[lo:c.index])),
                float(np.median(raw[c.index:hi])), change, ci_low, ci_high, c.p_value, cause, causes, also,
                regression=bool(set(causes) & REGRESSION_CAUSES) and sure and change > limit and ci_low > 0,
                improvement=sure and change < -limit and ci_high < 0))
    return out


def analyse(data: ChangesInput, options: ChangesOptions | None = None) -> ChangesReport:
    """Exact changes, machine steps and latency change points of every series in `data`."""
    options = options or ChangesOptions()
    exact = [e for s in data.series for e in exact_changes(s, data.runs, options.thresholds)]
    machine, steps = machine_moves(data, options.thresholds.max_latency_regression)
    latency = latency_change_points(data, options, machine)
    exact.sort(key=lambda e: (e.run, e.label))
    latency.sort(key=lambda c: (c.run, c.label))
    return ChangesReport(data, options, exact, latency, steps)
