"""Plots for the HTML report, rendered by matplotlib (Agg, no pyplot) to inline SVG strings.

Text stays text (`svg.fonttype = none`), which matplotlib XML-escapes, and math parsing is
off so a `$` in a model name is just a dollar. The SVG metadata block, XML declaration and
DOCTYPE are dropped: the report must reference no URL outside SVG namespace attributes.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

from harness.core import statuses
from harness.core.result import Result

DRIFT_METRICS = {
    "max_abs": "max abs difference from the original",
    "1-cosine": "1 - cosine similarity to the original",
    "rmse": "RMSE vs the original",
    "1-top1": "1 - top-1 agreement with the original",
}
FLOOR = 1e-12  # drift of an exact conversion is 0; log axes need a floor

_RC = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "svg.hashsalt": "tflite-harness",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def drift_value(r: Result, metric: str) -> float | None:
    d = r.drift or {}
    if metric == "1-cosine":
        v = d.get("cosine")
        return None if not isinstance(v, (int, float)) else 1.0 - float(v)
    if metric == "1-top1":
        v = d.get("top1_agreement")
        return None if not isinstance(v, (int, float)) else 1.0 - float(v)
    v = d.get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (lower or equal in both, lower in one)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _log(ax, axis: str) -> None:
    """Log scale with plain tick labels (the default ones are mathtext, and math parsing is off)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}" if 1e-3 <= v < 1e4 else f"{v:.0e}"))
    target.set_minor_formatter(NullFormatter())


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text.strip()


def _label(r: Result, many: bool) -> str:
    if not many:
        return r.flag_set
    return f"{r.flag_set} @{r.device}/{r.threads}t" + ("" if r.xnnpack else "/no-xnn") + _runtime(r)


def _runtime(r) -> str:
    api, accel = getattr(r, "runtime_api", None) or "interpreter", getattr(r, "accelerator", None) or "cpu"
    return "" if (api, accel) == ("interpreter", "cpu") else f"/{api}:{accel}"


def _many_settings(results: list[Result]) -> bool:
    return len({(r.device, r.threads, r.xnnpack, _runtime(r)) for r in results}) > 1


def latency_drift_scatter(results: list[Result], metric: str = "max_abs") -> str | None:
    """One model: x = p50 latency, y = drift; the Pareto front as a step line."""
    import matplotlib

    pts, labels = [], []
    many = _many_settings(results)
    for r in results:
        p50 = (r.latency_us or {}).get("p50")
        y = drift_value(r, metric)
        if r.status not in statuses.MEASURED or p50 is None or y is None or not math.isfinite(y):
            continue
        pts.append((p50 / 1000, max(y, FLOOR)))
        labels.append(_label(r, many))
    if not pts:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 3.6)
        ax = fig.add_subplot()
        front = pareto_front(pts)
        xs, ys = zip(*pts, strict=True)
        ax.scatter(xs, ys, color="#8a8a8a", zorder=2, label="dominated")
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        ax.scatter(fx, fy, color="#d62728", zorder=3, label="Pareto front")
        ax.step(fx, fy, where="post", color="#d62728", alpha=0.6, zorder=1)
        for (x, y), lab in zip(pts, labels, strict=True):
            ax.annotate(lab, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        _log(ax, "y")
        if max(xs) / max(min(xs), 1e-12) > 20:
            _log(ax, "x")
        ax.set_xlabel("p50 latency (ms)")
        ax.set_ylabel(f"{metric} (floored at {FLOOR:g})")
        ax.legend(loc="best", fontsize=8)
        return to_svg(fig)


def latency_boxes(results: list[Result]) -> str | None:
    """Box plots from the raw samples: box p25-p75, line p50, whiskers p1-p99."""
    import matplotlib
    import numpy as np

    stats = []
    many = _many_settings(results)
    for r in results:
        if r.status not in statuses.MEASURED or not r.samples_us:
            continue
        q = np.percentile(np.asarray(r.samples_us, dtype=float) / 1000, [1, 25, 50, 75, 99])
        stats.append({"label": _label(r, many), "whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3],
                      "whishi": q[4], "fliers": []})
    if not stats:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 0.5 + 0.38 * len(stats))
        ax = fig.add_subplot()
        ax.bxp(stats[::-1], orientation="horizontal", showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#9ecae1"}, medianprops={"color": "#08519c"})
        lo = min(s["whislo"] for s in stats)
        hi = max(s["whishi"] for s in stats)
        if lo > 0 and hi / lo > 20:
            _log(ax, "x")
        ax.set_xlabel("latency (ms): box p25-p75, line p50, whiskers p1-p99")
        return to_svg(fig)


def size_bars(results: list[Result]) -> str | None:
    import matplotlib

    seen: dict[str, int] = {}
    for r in results:
        if r.size_bytes and r.flag_set not in seen:
            seen[r.flag_set] = r.size_bytes
    if not seen:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, 0.5 + 0.32 * len(seen))
        ax = fig.add_subplot()
        names = list(seen)[::-1]
        kb = [seen[n] / 1024 for n in names]
        ax.barh(range(len(names)), kb, color="#74c476")
        ax.set_yticks(range(len(names)), labels=names)
        for i, v in enumerate(kb):
            ax.annotate(f"{v:.1f}", (v, i), textcoords="offset points", xytext=(3, -3), fontsize=8)
        ax.set_xlabel("artifact size (KiB)")
        ax.grid(axis="y", visible=False)
        return to_svg(fig)


def trend(points: list[dict], title: str | None = None, marks: list[dict] | None = None) -> str | None:
    """History of one model/flag set: p50 (with p25-p75 band), drift and size over runs.

    `points` are dicts with series, when (epoch s), run, p50_ms, q1_ms, q3_ms, max_abs, size_kb.
    `marks`: change points ({"when": epoch s, "text": what changed, optional "color"}), a dashed
    line on every panel and their text on the latency panel.
    """
    import datetime as dt

    import matplotlib

    ok = [p for p in points if p.get("p50_ms") is not None]
    if not ok:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(7.0, 5.0)
        ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
        series: dict[str, list[dict]] = {}
        for p in points:
            series.setdefault(p["series"], []).append(p)
        for name, pts in series.items():
            pts = sorted(pts, key=lambda p: p["when"])
            t = [dt.datetime.fromtimestamp(p["when"]) for p in pts]
            lat = [p.get("p50_ms") for p in pts]
            line = ax1.plot(t, [math.nan if v is None else v for v in lat], marker="o", label=name)[0]
            q1 = [p.get("q1_ms") for p in pts]
            q3 = [p.get("q3_ms") for p in pts]
            if all(v is not None for v in q1 + q3):
                ax1.fill_between(t, q1, q3, alpha=0.2, color=line.get_color())
            ax2.plot(t, [max(p["max_abs"], FLOOR) if p.get("max_abs") is not None else math.nan for p in pts],
                     marker="o", color=line.get_color())
            ax3.plot(t, [p.get("size_kb") if p.get("size_kb") is not None else math.nan for p in pts],
                     marker="o", color=line.get_color())
        for m in marks or []:
            at = dt.datetime.fromtimestamp(m["when"])
            color = m.get("color", "#c62828")
            for ax in (ax1, ax2, ax3):
                ax.axvline(at, color=color, linestyle="--", linewidth=1, alpha=0.8)
            ax1.annotate(m["text"], (at, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                         textcoords="offset points", fontsize=7, color=color, rotation=0)
        ax1.set_ylabel("p50 ms")
        ax2.set_ylabel("max abs")
        if any(p.get("max_abs") is not None for p in points):  # a log axis with no data fails to draw
            _log(ax2, "y")
        ax3.set_ylabel("size KiB")
        ax1.legend(loc="best", fontsize=8)
        if title:
            ax1.set_title(title)
        fig.autofmt_xdate()
        return to_svg(fig)
