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

from harness.result import Result

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


def median_change_ci(base, new, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Relative change of the median (new/base - 1) with a percentile-bootstrap CI.

    Each bootstrap median is drawn from its exact distribution instead of by resampling
    n values: the median of a resample of sorted x is x[j] with
    P(median <= x[j]) = P(Binomial(n, (j+1)/n) >= ceil(n/2)), so B draws cost
    O(n + B log n) even for 50 000 samples. (For even n this is the lower median.)
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    b = np.sort(np.asarray(base, dtype=float))
    a = np.sort(np.asarray(new, dtype=float))
    boot_b = _bootstrap_medians(b, n_boot, rng)
    boot_a = _bootstrap_medians(a, n_boot, rng)
    ratios = boot_a / boot_b - 1.0
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    change = float(np.median(a) / np.median(b) - 1.0)
    return change, float(low), float(high)


def _bootstrap_medians(sorted_x, n_boot: int, rng):
    import numpy as np
    from scipy.stats import binom

    n = len(sorted_x)
    k = (n + 1) // 2  # the lower median is the k-th smallest (1-based)
    cdf = binom.sf(k - 1, n, np.arange(1, n + 1) / n)  # P(median <= x[j]) for j = 0..n-1
    idx = np.searchsorted(cdf, rng.random(n_boot), side="left")
    return sorted_x[np.minimum(idx, n - 1)]


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


_BATCH_ROWS = 2048  # rows per vectorised block: 2 x 2048 x 2000 bootstrap medians, ~65 MB


def latency_stats(pairs: list[tuple], n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> list[tuple[float, float, float, float, float, float]]:
    """(base_p50, new_p50, change, ci_low, ci_high, p) for each (base samples, new samples) pair.

    The same numbers as `median_change_ci` and `mannwhitneyu` row by row, computed for all rows
    of equal sample counts at once: every row's bootstrap starts from the same seed, so the
    order-statistic indices it draws depend only on the sample counts and are drawn once per
    count; the test runs on 2-D blocks (only where both sides have over 8 samples: there scipy
    always takes the asymptotic test; for smaller rows its exact-or-asymptotic choice looks at
    ties in the whole input, so those rows go one by one as before).
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    out: list = [None] * len(pairs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (b, a) in enumerate(pairs):
        groups.setdefault((len(b), len(a)), []).append(i)
    tail = (1.0 - level) / 2 * 100

    def block(rows: list[int], nb: int, na: int, idx_b, idx_a) -> None:
        B = np.sort(np.asarray([pairs[i][0] for i in rows], dtype=float), axis=1)
        A = np.sort(np.asarray([pairs[i][1] for i in rows], dtype=float), axis=1)
        if nb > 8 and na > 8:
            pvals = mannwhitneyu(A, B, alternative="two-sided", axis=1).pvalue
        else:
            pvals = [mannwhitneyu(pairs[i][1], pairs[i][0], alternative="two-sided").pvalue for i in rows]
        ratios = A[:, idx_a] / B[:, idx_b] - 1.0
        low, high = np.percentile(ratios, [tail, 100 - tail], axis=1)
        med_b, med_a = np.median(B, axis=1), np.median(A, axis=1)
        change = med_a / med_b - 1.0
        for j, i in enumerate(rows):
            out[i] = (float(med_b[j]), float(med_a[j]), float(change[j]), float(low[j]), float(high[j]),
                      float(pvals[j]))

    jobs = []
    for (nb, na), members in groups.items():
        rng = np.random.default_rng(seed)
        idx_b = _bootstrap_indices(nb, n_boot, rng)
        idx_a = _bootstrap_indices(na, n_boot, rng)
        jobs += [(members[k:k + _BATCH_ROWS], nb, na, idx_b, idx_a) for k in range(0, len(members), _BATCH_ROWS)]
    if len(jobs) > 1:  # NumPy's sorting, partitioning and indexing release the GIL: use the cores
        import os
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1, 4)) as pool:
            list(pool.map(lambda job: block(*job), jobs))
    for job in jobs[:1] if len(jobs) == 1 else ():
        block(*job)
    return out


def _bootstrap_indices(n: int, n_boot: int, rng):
    """Which order statistic each of n_boot bootstrap medians of n samples is (see below)."""
    import numpy as np
    from scipy.stats import binom

    k = (n + 1) // 2
    cdf = binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    return np.minimum(np.searchsorted(cdf, rng.random(n_boot), side="left"), n - 1)


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


# ---------------------------------------------------------------- formatting

COMPARE_COLUMNS = ["model", "flag set", "device", "thr", "xnn", "status", "p50 base ms", "p50 new ms",
                   "p50 change [95% CI]", "p", "max abs", "accuracy", "size", "mem MB", "verdict", "why"]


def _ms(us: float | None) -> str:
    if us is None:
        return "-"
    ms = us / 1000
    if ms == 0:
        return "0"
    decimals = max(0, 2 - int(math.floor(math.log10(abs(ms)))))
    return f"{ms:.{decimals}f}"


def _p_text(p: float) -> str:
    if p < 1e-16:
        return "<1e-16"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _pair(b, a, fmt: str) -> str:
    if b is None and a is None:
        return "-"
    fb = "-" if b is None else format(b, fmt)
    fa = "-" if a is None else format(a, fmt)
    return fb if fb == fa else f"{fb} -> {fa}"


def row_cells(r: RowComparison) -> list[str]:
    model, flag_set, device, threads, xnnpack = r.key
    _, _, new_device, new_threads, new_xnn = r.new_key or r.key
    device = _pair(device, new_device, "s")
    threads_text = _pair(threads, new_threads, "d")
    xnn_text = _pair("yes" if xnnpack else "no", "yes" if new_xnn else "no", "s")
    status = _pair(r.base_status, r.new_status, "s") if (r.base_status or r.new_status) else "-"
    lat = r.latency
    if lat:
        change = f"{lat.change:+.1%}"
        if lat.ci_low is not None:
            change += f" [{lat.ci_low:+.1%}, {lat.ci_high:+.1%}]"
        p = "-" if lat.p_value is None else _p_text(lat.p_value)
        lat_cells = [_ms(lat.base_p50_us), _ms(lat.new_p50_us), change, p]
    else:
        lat_cells = ["-", "-", "-", "-"]
    sb, sa = r.size_bytes
    size = "-" if not (sb and sa) else (f"{sa / 1024:.1f} KB" if sa == sb else f"{sa / 1024:.1f} KB ({sa / sb - 1:+.1%})")
    return [model, flag_set, device, threads_text, xnn_text, status, *lat_cells,
            _pair(*r.max_abs, ".3g"), _pair(*r.accuracy, ".3f"), size, _pair(*r.peak_rss_mb, ".1f"),
            r.verdict, "; ".join(r.regressions or r.improvements)]


def comparison_markdown(c: Comparison, base_name: str, new_name: str) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")

    lines = [f"**tflite-harness compare** `{esc(base_name)}` -> `{esc(new_name)}`: {esc(c.summary())}", "",
             "| " + " | ".join(COMPARE_COLUMNS) + " |",
             "|" + "|".join("---" if i < 3 or h in ("status", "verdict", "why") else "---:"
                            for i, h in enumerate(COMPARE_COLUMNS)) + "|"]
    order = {REGRESSED: 0, MISSING: 0, IMPROVED: 1, ADDED: 2, SAME: 3}
    for r in sorted(c.rows, key=lambda r: order[r.verdict]):
        cells = [esc(x) for x in row_cells(r)]
        if r.verdict in (REGRESSED, MISSING):
            cells[COMPARE_COLUMNS.index("verdict")] = f"**{r.verdict}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_rich(c: Comparison, base_name: str, new_name: str):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(base_name)} -> {escape(new_name)}", header_style="bold")
    for h in COMPARE_COLUMNS:
        table.add_column(h, justify="left" if h in ("model", "flag set", "device", "status", "verdict", "why")
                         else "right", overflow="fold")
    style = {REGRESSED: "bold red", MISSING: "bold red", IMPROVED: "green", ADDED: "cyan", SAME: "dim"}
    for r in c.rows:
        cells = [escape(x) for x in row_cells(r)]
        i = COMPARE_COLUMNS.index("verdict")
        cells[i] = f"[{style[r.verdict]}]{cells[i]}[/]"
        table.add_row(*cells)
    return table


def comparison_dict(c: Comparison, base_name: str, new_name: str) -> dict:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    rows = []
    for r in c.rows:
        model, flag_set, device, threads, xnnpack = r.key
        lat = r.latency
        rows.append({
            "model": model, "flag_set": flag_set, "device": device, "threads": threads, "xnnpack": xnnpack,
            "verdict": r.verdict, "regressions": r.regressions, "improvements": r.improvements,
            "status": {"base": r.base_status, "new": r.new_status},
            "latency": None if lat is None else {
                "base_p50_us": lat.base_p50_us, "new_p50_us": lat.new_p50_us, "change": clean(lat.change),
                "ci95": [clean(lat.ci_low), clean(lat.ci_high)] if lat.ci_low is not None else None,
                "p_value": lat.p_value, "significant": lat.significant, "verdict": lat.verdict},
            "max_abs": {"base": clean(r.max_abs[0]), "new": clean(r.max_abs[1])},
            "cosine": {"base": clean(r.cosine[0]), "new": clean(r.cosine[1])},
            "accuracy": {"base": r.accuracy[0], "new": r.accuracy[1]},
            "size_bytes": {"base": r.size_bytes[0], "new": r.size_bytes[1]},
            "peak_rss_mb": {"base": r.peak_rss_mb[0], "new": r.peak_rss_mb[1]},
        })
    t = c.thresholds
    return {"base": base_name, "new": new_name, "regressed": bool(c.regressed), "summary": c.summary(),
            "thresholds": {"max_latency_regression": t.max_latency_regression, "alpha": t.alpha,
                           "max_drift_increase": t.max_drift_increase, "max_accuracy_drop": t.max_accuracy_drop,
                           "max_size_increase": t.max_size_increase},
            "rows": rows}


def comparison_plain(c: Comparison, base_name: str, new_name: str) -> str:
    """`comparison_rich` as aligned plain text (same columns and cells, no colours), for
    tables too large for rich to lay out in reasonable time."""
    from harness.report.plain import plain_table

    right = {i for i, h in enumerate(COMPARE_COLUMNS)
             if h not in ("model", "flag set", "device", "status", "verdict", "why")}
    return plain_table(COMPARE_COLUMNS, [row_cells(r) for r in c.rows], right=right,
                       title=f"{base_name} -> {new_name}")


def comparison_json(c: Comparison, base_name: str, new_name: str) -> str:
    """`comparison_dict` as JSON with one row per line: the same JSON as json.dumps(indent=1)
    but through the C encoder (indent forces the pure-Python one: seconds for 100k rows)."""
    import json

    data = comparison_dict(c, base_name, new_name)
    rows = data.pop("rows")
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items()]
    body = ",\n  ".join(map(json.dumps, rows))
    lines.append(f' "rows": [\n  {body}\n ]' if rows else ' "rows": []')
    return "\n".join(lines) + "\n}"
