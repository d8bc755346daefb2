"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no URLs).

Built from a jinja2 template with autoescape on: every name that came from a user (model,
flag set, device, reason) is escaped. The only unescaped insertions are matplotlib's SVG
strings, whose text matplotlib XML-escapes itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from harness.report.table import comparison_rows, visible_columns
from harness.result import Result
from harness.store import RunInfo

TEMPLATES = Path(__file__).parent / "templates"
NUMERIC = {"threads", "size_kb", "size_ratio", "p50_ms", "p90_ms", "speedup", "init_ms", "peak_mb", "max_abs",
           "cosine", "snr_db", "top1", "accuracy"}


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _status_class(status: str | None) -> str:
    return {"ok": "ok", "unhealthy": "warn", "unsupported": "warn", None: "warn"}.get(status, "bad")


def run_context(run: RunInfo | None) -> dict | None:
    if run is None:
        return None
    tools = ", ".join(f"{k} {v}" for k, v in sorted((run.tool_versions or {}).items()))
    return {"id": run.id, "campaign": run.campaign, "started": _when(run.started_at), "state": run.state,
            "git_commit": (run.git_commit or "")[:12] or None, "host": run.host, "tools": tools}


def table_context(results: list[Result], baseline: str | None) -> dict:
    rows = comparison_rows(results, baseline)
    cols = visible_columns(rows)
    headers = [{"text": h, "desc": d} for _, h, d in cols]
    out = []
    for row in rows:
        cells = []
        for key, _, _ in cols:
            text = row.text[key]
            if key == "reason" and text == "-":
                text = ""
            cls = "num" if key in NUMERIC else ("status" if key == "status" else key)
            cells.append({"text": text, "cls": cls})
        out.append({"cls": _status_class(row.values["status"]), "cells": cells})
    return {"headers": headers, "rows": out}


def failures_context(results: list[Result]) -> list[dict]:
    return [{"model": r.model, "flag_set": r.flag_set, "device": r.device, "threads": r.threads, "status": r.status,
             "category": r.failure_category, "reason": r.reason} for r in results if r.status != "ok"]


def history_points(pairs: Iterable[tuple[RunInfo, Result]]) -> list[dict]:
    """One point per stored row of a model/flag set: what `history` tables and trend plots show."""
    import numpy as np

    pts = []
    for run, r in pairs:
        lat = r.latency_us or {}
        q1 = q3 = None
        if r.samples_us:
            q1, q3 = (float(v) / 1000 for v in np.percentile(np.asarray(r.samples_us, dtype=float), [25, 75]))
        drift = r.drift or {}
        series = f"{r.device} {r.threads}thr" + ("" if r.xnnpack else " no-xnn")
        pts.append({
            "series": series, "when": run.started_at, "run": run.id, "date": _when(run.started_at),
            "git_commit": (run.git_commit or "")[:10] or "-", "device": r.device, "threads": r.threads,
            "xnnpack": r.xnnpack, "status": r.status, "reason": r.reason,
            "p50_ms": lat["p50"] / 1000 if r.status == "ok" and lat.get("p50") is not None else None,
            "q1_ms": q1, "q3_ms": q3,
            "max_abs": drift.get("max_abs") if isinstance(drift.get("max_abs"), (int, float)) else None,
            "cosine": drift.get("cosine") if isinstance(drift.get("cosine"), (int, float)) else None,
            "accuracy": drift.get("accuracy"),
            "size_kb": r.size_bytes / 1024 if r.size_bytes else None,
        })
    return pts


HISTORY_HEADERS = ["run", "date", "git", "device", "thr", "xnn", "status", "p50 ms", "max abs", "cosine", "acc",
                   "size KB"]


def history_table(points: list[dict]) -> dict:
    from harness.report.table import _fmt, _sig

    rows = []
    for p in points:
        rows.append([p["run"], p["date"], p["git_commit"], p["device"], str(p["threads"]),
                     "yes" if p["xnnpack"] else "no",
                     p["status"] + (f" ({p['reason']})" if p["status"] != "ok" and p["reason"] else ""),
                     _sig(p["p50_ms"]), _fmt(p["max_abs"], 4), _fmt(p["cosine"], 4), _fmt(p["accuracy"], 3),
                     _fmt(p["size_kb"], 1)])
    return {"headers": HISTORY_HEADERS, "rows": rows}


def _render(**ctx) -> str:
    from harness import __version__

    base = {"version": __version__, "generated": _when(dt.datetime.now().timestamp()), "run": None, "table": None,
            "pivot": None, "failures": [], "models": [], "history": [], "baseline": None, "drift_label": ""}
    return _env().get_template("report.html.j2").render(**{**base, **ctx})


def render_report(run: RunInfo | None, results: list[Result], *, baseline: str | None = "fp32",
                  drift_metric: str = "max_abs", history: dict[tuple[str, str], list[dict]] | None = None) -> str:
    """The whole report as one HTML string. `history` maps (model, flag set) to history points."""
    from markupsafe import Markup

    from harness.report import plots
    from harness.report.pivot import pivot

    if drift_metric not in plots.DRIFT_METRICS:
        raise ValueError(f"unknown drift metric {drift_metric!r}")
    models: dict[str, list[Result]] = {}
    for r in results:
        models.setdefault(r.model, []).append(r)

    def svg(s: str | None):
        return Markup(s) if s else None  # noqa: S704 - matplotlib escapes the text inside

    model_ctx = [{"name": name, "scatter": svg(plots.latency_drift_scatter(rs, drift_metric)),
                  "boxes": svg(plots.latency_boxes(rs)), "sizes": svg(plots.size_bars(rs))}
                 for name, rs in models.items()]
    p = pivot(results, baseline)
    pivot_ctx = None
    if len(p.columns) > 1:
        pivot_ctx = {"headers": p.headers(), "rows": p.text_rows()}
    hist_ctx = []
    for (model, flag_set), pts in (history or {}).items():
        if len(pts) >= 2:
            hist_ctx.append({"title": f"{model} / {flag_set}", "table": None,
                             "svg": svg(plots.trend(pts))})
    title = f"tflite-harness report: {run.campaign or 'run'} {run.id}" if run else "tflite-harness report"
    return _render(title=title, run=run_context(run), baseline=baseline, table=table_context(results, baseline),
                   pivot=pivot_ctx, failures=failures_context(results), models=model_ctx, history=hist_ctx,
                   drift_label=plots.DRIFT_METRICS[drift_metric])


def render_history(model: str, flag_set: str, points: list[dict]) -> str:
    from markupsafe import Markup

    from harness.report import plots

    trend = plots.trend(points)
    return _render(title=f"tflite-harness history: {model} / {flag_set}",
                   history=[{"title": f"{model} / {flag_set}", "table": history_table(points),
                             "svg": Markup(trend) if trend else None}])  # noqa: S704


__all__ = ["history_points", "history_table", "render_history", "render_report"]
