"""Compare two runs row by row: the regression gate.

Pure functions on lists of `Result`. Rows match on (model, flag set, device, threads,
xnnpack). For latency, a row regresses only when the change is both *significant*
(two-sided Mann-Whitney U on the raw samples, p < alpha) and *large* (median change
over the threshold): with tens of thousands of samples almost any difference is
significant, and without a test a noisy 6 % blip would fail CI. The 95 % confidence
interval of the change in median comes from a percentile bootstrap with a fixed seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.core.result import Result
from harness.report.compare_stats import latency_stats, median_change_ci  # noqa: F401 - re-exported

REGRESSED = "REGRESSED"
IMPROVED = "improved"
SAME = "~"
MISSING = "MISSING"
ADDED = "new"


@dataclass
class Thresholds:
    max_latency_regression: float = 0.05  # relative change of the median
    max_drift_increase: float | None = None  # absolute increase of max_abs
    max_accuracy_drop: float | None = None  # absolute drop of accuracy (0..1)
    max_size_increase: float | None = 0.0  # relative
    alpha: float = 0.01
    # Run-to-run noise floor: a latency change must also exceed noise_factor x the spread of
    # the per-row median changes (robust, MAD) when at least NOISE_MIN_ROWS rows have samples.
    noise_factor: float | None = 3.0


@dataclass
class LatencyChange:
    base_p50_us: float
    new_p50_us: float
    change: float  # relative change of the median: new / base - 1
    ci_low: float | None  # 95 % CI of the relative change
    ci_high: float | None
    p_value: float | None
    significant: bool
    verdict: str


@dataclass
class RowComparison:
    key: tuple  # model, flag_set, device, threads, xnnpack (of the base row when there is one)
    base_status: str | None
    new_status: str | None
    latency: LatencyChange | None = None
    max_abs: tuple[float | None, float | None] = (None, None)
    cosine: tuple[float | None, float | None] = (None, None)
    accuracy: tuple[float | None, float | None] = (None, None)
    size_bytes: tuple[int | None, int | None] = (None, None)
    peak_rss_mb: tuple[float | None, float | None] = (None, None)
    regressions: list[str] = field(default_factory=list)  # what regressed, one phrase each
    improvements: list[str] = field(default_factory=list)
    new_key: tuple | None = None  # differs from key only in --ignore'd fields

    @property
    def verdict(self) -> str:
        if self.new_status is None:
            return MISSING
        if self.base_status is None:
            return ADDED
        if self.regressions:
            return REGRESSED
        if self.improvements:
            return IMPROVED
        return SAME

    @property
    def label(self) -> str:
        model, flag_set, device, threads, xnnpack = self.key
        return f"{model}/{flag_set} on {device} ({threads} thr{'' if xnnpack else ', no xnnpack'})"


@dataclass
class Comparison:
    rows: list[RowComparison]
    thresholds: Thresholds
    noise: float | None = None  # run-to-run spread of median changes (relative), when estimated
    latency_limit: float | None = None  # the limit applied: max(threshold, noise_factor x noise)

    @property
    def regressed(self) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict in (REGRESSED, MISSING)]

    @property
    def improved(self) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict == IMPROVED]

    def summary(self) -> str:
        counts = {v: 0 for v in (REGRESSED, MISSING, IMPROVED, SAME, ADDED)}
        for r in self.rows:
            counts[r.verdict] += 1
        head = "REGRESSED" if self.regressed else "no regressions"
        parts = [f"{counts[REGRESSED]} regressed", f"{counts[IMPROVED]} improved", f"{counts[SAME]} unchanged"]
        if counts[MISSING]:
            parts.append(f"{counts[MISSING]} missing in the new run")
        if counts[ADDED]:
            parts.append(f"{counts[ADDED]} new")
        t = self.thresholds
        limit = self.latency_limit if self.latency_limit is not None else t.max_latency_regression
        noise = (f"; run-to-run noise {self.noise:.1%} (MAD of the rows' median changes) raised the limit"
                 if self.noise is not None and limit > t.max_latency_regression else "")
        return (f"{head}: {len(self.rows)} rows, " + ", ".join(parts)
                + f" (latency: Mann-Whitney p < {t.alpha:g} and median change > {limit:.1%}{noise})")


def _samples(r: Result):
    """The raw samples of a row: a list, or a NumPy array (the store's compare path); [] when none."""
    s = r.samples_us
    return [] if s is None else s


def compare_latency(base: Result, new: Result, thresholds: Thresholds,
                    stats: tuple | None = None) -> LatencyChange | None:
    """`stats`: (base_p50, new_p50, change, ci_low, ci_high, p) computed for many rows at once
    by `latency_stats` (the same numbers this computes for one row)."""
    b = _samples(base)
    a = _samples(new)
    if not ((base.latency_us or len(b)) and (new.latency_us or len(a))):
        return None
    if len(b) >= 3 and len(a) >= 3:
        if stats is None:
            stats = latency_stats([(b, a)])[0]
        base_p50, new_p50, change, low, high, p = stats
        significant = p < thresholds.alpha
    else:  # no raw samples (e.g. benchmark_model gave only a summary): no test, no gate
        base_p50, new_p50 = base.latency_us["p50"], new.latency_us["p50"]
        change, low, high, p, significant = new_p50 / base_p50 - 1.0, None, None, None, False
    limit = thresholds.max_latency_regression
    if significant and change > limit:
        verdict = REGRESSED
    elif significant and change < -limit:
        verdict = IMPROVED
    else:
        verdict = SAME
    return LatencyChange(base_p50, new_p50, change, low, high, p, significant, verdict)


def _drift(r: Result | None, key: str) -> float | None:
    if r is None or not r.drift:
        return None
    v = r.drift.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def compare_row(key: tuple, base: Result | None, new: Result | None, thresholds: Thresholds,
                latency: tuple | None = None) -> RowComparison:
    row = RowComparison(key, base.status if base else None, new.status if new else None,
                        new_key=new.key if new else None)
    if base is None or new is None:
        if new is None:
            row.regressions.append("missing in the new run")
        return row
    row.max_abs = (_drift(base, "max_abs"), _drift(new, "max_abs"))
    row.cosine = (_drift(base, "cosine"), _drift(new, "cosine"))
    row.accuracy = (_drift(base, "accuracy"), _drift(new, "accuracy"))
    row.size_bytes = (base.size_bytes, new.size_bytes)
    row.peak_rss_mb = (base.peak_rss_mb, new.peak_rss_mb)
    if base.status == "ok" and new.status != "ok":
        row.regressions.append(f"status ok -> {new.status}" + (f" ({new.reason})" if new.reason else ""))
        return row
    if base.status != "ok" and new.status == "ok":
        row.improvements.append(f"status {base.status} -> ok")
    if base.status != "ok" or new.status != "ok":
        return row
    row.latency = compare_latency(base, new, thresholds, latency)
    if row.latency and row.latency.verdict == REGRESSED:
        row.regressions.append(f"latency p50 {row.latency.change:+.1%}")
    elif row.latency and row.latency.verdict == IMPROVED:
        row.improvements.append(f"latency p50 {row.latency.change:+.1%}")
    b, a = row.max_abs
    if thresholds.max_drift_increase is not None and b is not None and a is not None:
        if a - b > thresholds.max_drift_increase:
            row.regressions.append(f"max_abs {b:.3g} -> {a:.3g}")
    b, a = row.accuracy
    if thresholds.max_accuracy_drop is not None and b is not None and a is not None:
        if b - a > thresholds.max_accuracy_drop:
            row.regressions.append(f"accuracy {b:.3f} -> {a:.3f}")
    b, a = row.size_bytes
    if thresholds.max_size_increase is not None and b and a:
        if a / b - 1.0 > thresholds.max_size_increase + 1e-12:
            row.regressions.append(f"size {b} -> {a} bytes ({a / b - 1:+.1%})")
        elif a < b:
            row.improvements.append(f"size {a / b - 1:+.1%}")
    return row


KEY_FIELDS = ("model", "flag_set", "device", "threads", "xnnpack")
IGNORABLE = ("device", "threads", "xnnpack")


def compare_results(base: list[Result], new: list[Result], thresholds: Thresholds | None = None,
                    ignore: tuple[str, ...] = ()) -> Comparison:
    """Match rows by key and compare each; rows only in NEW are 'new', only in BASE 'MISSING'.

    `ignore` drops settings from the match key (e.g. xnnpack: compare a run with the
    delegate against one without). Two rows of one run that then share a key are an error.
    """
    thresholds = thresholds or Thresholds()
    unknown = set(ignore) - set(IGNORABLE)
    if unknown:
        raise ValueError(f"cannot ignore {sorted(unknown)}; choose from {', '.join(IGNORABLE)}")

    def match_key(r: Result) -> tuple:
        return tuple(None if name in ignore else v for name, v in zip(KEY_FIELDS, r.key, strict=True))

    def index(results: list[Result], which: str) -> dict[tuple, Result]:
        out: dict[tuple, Result] = {}
        for r in results:
            k = match_key(r)
            if k in out:
                raise ValueError(f"{which} has several rows for {r.model}/{r.flag_set} once "
                                 f"{', '.join(ignore)} is ignored; ignore fewer settings")
            out[k] = r
        return out

    b = index(base, "BASE")
    a = index(new, "NEW")
    keys = list(b) + [k for k in a if k not in b]
    # the latency statistics of every row that has them, computed in vectorised blocks
    tested = [k for k in keys if k in b and k in a and _tested(b[k], a[k])]
    stats = dict(zip(tested, latency_stats([(_samples(b[k]), _samples(a[k])) for k in tested]), strict=True))
    noise = _noise([(s[0], s[1]) for s in stats.values()])
    applied = thresholds
    if noise is not None and thresholds.noise_factor:
        floor = math.exp(thresholds.noise_factor * noise) - 1.0
        if floor > thresholds.max_latency_regression:
            from dataclasses import replace

            applied = replace(thresholds, max_latency_regression=floor)
    rows = [compare_row((b.get(k) or a[k]).key, b.get(k), a.get(k), applied, stats.get(k)) for k in keys]
    return Comparison(rows, thresholds, noise, applied.max_latency_regression)


def _tested(base: Result, new: Result) -> bool:
    """Both ok with raw samples on both sides: the rows that get the test and the bootstrap."""
    return base.status == "ok" and new.status == "ok" and len(_samples(base)) >= 3 and len(_samples(new)) >= 3


NOISE_MIN_ROWS = 8


def run_to_run_noise(pairs: list[tuple[Result, Result]]) -> float | None:
    """Robust spread (1.4826 x MAD) of log(median NEW / median BASE) over the matched rows.

    Samples of one run come from one process, so Mann-Whitney cannot see the between-process
    variation (CPU frequency, memory placement, other load) that shifts every median by a few
    percent from run to run. Across many rows that variation shows as scatter of the per-row
    changes around their common shift; a real regression of one row stands out from it, and
    a real regression of all rows moves the centre, not the scatter.
    """
    import numpy as np

    return _noise([(float(np.median(_samples(b))), float(np.median(_samples(a))))
                   for b, a in pairs if _tested(b, a)])


def _noise(medians: list[tuple[float, float]]) -> float | None:
    """run_to_run_noise from the (median BASE, median NEW) of the tested rows."""
    import numpy as np

    logs = [math.log(mn / mb) for mb, mn in medians if mb > 0 and mn > 0]
    if len(logs) < NOISE_MIN_ROWS:
        return None
    x = np.asarray(logs)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))
