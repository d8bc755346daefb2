"""Plots for runs with many models: every row aggregated by flag set.

Per-model plots stop scaling at a few dozen models (three matplotlib figures each, and a
1000-model report would hold 3000 of them). These three figures summarise all rows instead:
latency relative to the baseline flag set on the same model and setting (or absolute p50
when there is no baseline), drift, and artifact size, as medians and percentiles per flag set.
"""

from __future__ import annotations

import math

from harness.core import statuses
from harness.core.result import Result
from harness.report.plots import FLOOR, drift_value, pareto_front
from harness.report.table import Row


def flag_set_stats(results: list[Result], rows: list[Row], metric: str) -> tuple[dict[str, dict], bool]:
    """Per flag set: latency figures (ratio to baseline, or p50 ms), drift values, size figures.

    `rows` are the results' comparison rows, whose speed-up and size ratio already relate each
    row to the baseline on the same model (and setting). Returns (stats, relative): whether
    latency and size are ratios to the baseline.
    """
    relative = any(row.values["speedup"] for row in rows)
    stats: dict[str, dict] = {}
    for r, row in zip(results, rows, strict=True):
        v = row.values
        s = stats.get(r.flag_set)
        if s is None:
            s = stats[r.flag_set] = {"latency": [], "drift": [], "size": []}
        size = v["size_ratio"] if relative else v["size_kb"]
        if size is not None:
            s["size"].append(size)
        if r.status not in statuses.MEASURED or not v["p50_ms"]:
            continue
        if relative:
            if v["speedup"]:
                s["latency"].append(1 / v["speedup"])
        else:
            s["latency"].append(v["p50_ms"])
        d = drift_value(r, metric)
        if d is not None and math.isfinite(d):
            s["drift"].append(max(d, FLOOR))
    return stats, relative


def percentile(sorted_values: list[float], q: float) -> float:
    """numpy.percentile's default (linear) on an already sorted list, without importing numpy."""
    pos = q / 100 * (len(sorted_values) - 1)
    i = math.floor(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def overview(results: list[Result], rows: list[Row], baseline: str | None, metric: str, n_models: int,
             limit: int) -> dict:
    """SVGs `scatter`, `boxes`, `sizes` (None when there is nothing to draw), plus a `note` and `x_label`."""
    from harness.report import svg

    stats, relative = flag_set_stats(results, rows, metric)
    x_label = f"median p50 latency / {baseline} p50 (same model and setting)" if relative else "median p50 latency (ms)"
    note = (f"{n_models} models: per-model plots are drawn for runs of up to {limit} models. These plots aggregate "
            f"all {len(results)} rows by flag set (over models, devices and thread counts); every figure is "
            "in the results table above.")
    out = {"note": note, "x_label": x_label, "scatter": None, "boxes": None, "sizes": None}
    pts, names = [], []
    for name, s in stats.items():
        if s["latency"] and s["drift"]:
            pts.append((percentile(sorted(s["latency"]), 50), percentile(sorted(s["drift"]), 50)))
            names.append(f"{name} (n={len(s['latency'])})")
    if pts:
        out["scatter"] = svg.scatter(pts, names, pareto_front(pts), x_label,
                                     f"median {metric} (floored at {FLOOR:g})")
    boxes = []
    for name, s in stats.items():
        if s["latency"]:
            v = sorted(s["latency"])
            q = [percentile(v, p) for p in (1, 25, 50, 75, 99)]
            boxes.append({"label": f"{name} (n={len(v)})", "whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3],
                          "whishi": q[4]})
    if boxes:
        lo, hi = min(b["whislo"] for b in boxes), max(b["whishi"] for b in boxes)
        what = f"p50 / {baseline} p50 per row" if relative else "p50 latency per row (ms)"
        out["boxes"] = svg.hboxes(boxes, f"{what}: box p25-p75, line median, whiskers p1-p99",
                                  log=lo > 0 and hi / lo > 20)
    sizes = {name: percentile(sorted(s["size"]), 50) for name, s in stats.items() if s["size"]}
    if sizes:
        out["sizes"] = svg.hbars(list(sizes), list(sizes.values()),
                                 f"median artifact size / {baseline} size (same model)" if relative
                                 else "median artifact size (KiB)", ".2f" if relative else ".1f")
    return out
