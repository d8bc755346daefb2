"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no URLs).

Built from a jinja2 template with autoescape on: every name that came from a user (model,
flag set, device, reason) is escaped. The only unescaped insertions are matplotlib's SVG
strings, whose text matplotlib XML-escapes itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from harness.core import statuses
from harness.core.result import Result
from harness.report.table import NUMERIC, Row, comparison_rows, text_columns, visible_columns
from harness.store import RunInfo

TEMPLATES = Path(__file__).parent / "templates"
# Runs with more models than this get plots aggregated by flag set instead of three plots per
# model: a thousand models would mean three thousand matplotlib figures (minutes).
PER_MODEL_PLOTS = 12


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _status_class(status: str | None) -> str:
    return {statuses.OK: "ok", statuses.UNHEALTHY: "warn", statuses.UNSUPPORTED: "warn", statuses.LATENCY_ONLY: "warn", None: "warn"}.get(status, "bad")


def run_context(run: RunInfo | None) -> dict | None:
    if run is None:
        return None
    tools = ", ".join(f"{k} {v}" for k, v in sorted((run.tool_versions or {}).items()))
    return {"id": run.id, "campaign": run.campaign, "started": _when(run.started_at), "state": run.state,
            "git_commit": (run.git_commit or "")[:12] or None, "host": run.host, "tools": tools}


def _escaper():
    """html.escape with a cache: model, device and status names repeat across 100k rows."""
    import html

    from harness.report.table import memo

    return memo(html.escape)


_HTML_SPECIAL = "<>&\"'"


def table_context(results: list[Result], baseline: str | None, rows: list[Row] | None = None) -> dict:
    """Headers, plus the table body pre-rendered: a template loop over 100k x 20 cells took a minute."""
    from markupsafe import Markup

    rows = comparison_rows(results, baseline) if rows is None else rows
    cols = visible_columns(rows)
    keys = [k for k, _, _ in cols]
    headers = [{"text": h, "desc": d} for _, h, d in cols]
    columns = text_columns(rows, keys)
    esc = _escaper()
    for i, key in enumerate(keys):
        if key == "reason":
            columns[i] = ["" if t == "-" else esc(t) for t in columns[i]]
        elif key not in NUMERIC or any(c in "".join(columns[i]) for c in _HTML_SPECIAL):
            columns[i] = list(map(esc, columns[i]))  # names, or numbers column that holds odd text
    # Only the status cell carries a class; numeric columns are aligned by one CSS rule on their
    # positions (`css`), which keeps 100k rows x 20 cells from repeating class="num" 2M times.
    td = "".join('<td class="status">{}</td>' if k == "status" else "<td>{}</td>" for k in keys)
    row_html = '<tr class="st-{}">' + td + "</tr>"
    classes = [_status_class(r.values["status"]) for r in rows]
    body = "\n".join(map(row_html.format, classes, *columns))
    numeric = ", ".join(f"#results-table td:nth-child({i + 1})" for i, k in enumerate(keys) if k in NUMERIC)
    css = numeric + " { text-align: right; font-variant-numeric: tabular-nums; }" if numeric else ""
    # Cells stay on one line (the box scrolls when the table is wider than the page); the long
    # texts wrap, but never narrower than a readable line (`valid` once wrapped to six lines).
    prose = ", ".join(f"#results-table td:nth-child({i + 1})" for i, k in enumerate(keys) if k in ("reason", "valid"))
    if prose:
        css += "\n  " + prose + " { white-space: normal; min-width: 16em; max-width: 40em; }"
    return {"headers": headers, "body": Markup(body), "css": css}  # noqa: S704 - every cell escaped or checked above


def failures_context(results: list[Result]):
    """The failures list, pre-rendered as HTML (tens of thousands of items in a large run)."""
    from markupsafe import Markup

    esc = _escaper()
    items = []
    for r in results:
        if r.status == statuses.OK:
            continue
        category = f" [{esc(r.failure_category)}]" if r.failure_category else ""
        reason = f"&mdash; {esc(r.reason)}" if r.reason else ""
        items.append(f"<li><strong>{esc(r.model)}</strong> / {esc(r.flag_set)} on {esc(r.device)} ({esc(str(r.threads))} thr):"
                     f'\n      <span class="status">{esc(r.status)}</span>{category}{reason}</li>')
    return Markup("\n".join(items)) if items else None  # noqa: S704 - every field escaped above


def pivot_context(results: list[Result], baseline: str | None) -> dict | None:
    from markupsafe import Markup

    from harness.report.pivot import pivot

    p = pivot(results, baseline)
    if len(p.columns) <= 1:
        return None
    esc = _escaper()
    lines = ["<tr>" + "".join(f"<td>{esc(c)}</td>" if i < 2 else f'<td class="num">{esc(c)}</td>'
                              for i, c in enumerate(row)) + "</tr>" for row in p.text_rows()]
    return {"headers": p.headers(), "body": Markup("\n".join(lines))}  # noqa: S704 - cells escaped above


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
        series = f"{r.device} {r.threads}thr" + ("" if r.xnnpack else " no-xnn") + (
            "" if (r.runtime_api, r.accelerator) == ("interpreter", "cpu") else f" {r.runtime_api}/{r.accelerator}")
        pts.append({
            "series": series, "when": run.started_at, "run": run.id, "date": _when(run.started_at),
            "git_commit": (run.git_commit or "")[:10] or "-", "device": r.device, "threads": r.threads,
            "xnnpack": r.xnnpack, "status": r.status, "reason": r.reason,
            "p50_ms": lat["p50"] / 1000 if r.status in statuses.MEASURED and lat.get("p50") is not None else None,
            "q1_ms": q1, "q3_ms": q3,
            "max_abs": drift.get("max_abs") if isinstance(drift.get("max_abs"), (int, float)) else None,
            "cosine": drift.get("cosine") if isinstance(drift.get("cosine"), (int, float)) else None,
            "accuracy": drift.get("accuracy"),
            "size_kb": r.size_bytes / 1024 if r.size_bytes else None,
        })
    return pts


HISTORY_HEADERS = ["run", "date", "git", "device", "thr", "xnn", "status", "p50", "max abs", "cosine", "acc",
                   "size KB"]


def history_table(points: list[dict]) -> dict:
    from harness.report.table import duration, fmt

    rows = []
    for p in points:
        rows.append([p["run"], p["date"], p["git_commit"], p["device"], str(p["threads"]),
                     "yes" if p["xnnpack"] else "no",
                     p["status"] + (f" ({p['reason']})" if p["status"] != statuses.OK and p["reason"] else ""),
                     duration(p["p50_ms"]), fmt(p["max_abs"], 4), fmt(p["cosine"], 4), fmt(p["accuracy"], 3),
                     fmt(p["size_kb"], 1)])
    return {"headers": HISTORY_HEADERS, "rows": rows}


def _render(**ctx) -> str:
    from harness.core.version import __version__

    base = {"version": __version__, "generated": _when(dt.datetime.now().timestamp()), "run": None, "table": None,
            "pivot": None, "failures": None, "models": [], "overview": None, "history": [], "baseline": None, "drift_label": "",
            "diagnosis": None, "changes": None}
    return _env().get_template("report.html.j2").render(**{**base, **ctx})


def render_report(run: RunInfo | None, results: list[Result], *, baseline: str | None = "fp32",
                  drift_metric: str = "max_abs", history: dict[tuple[str, str], list[dict]] | None = None,
                  diagnosed: list[Result] | None = None,
                  history_marks: dict[tuple[str, str], list[dict]] | None = None) -> str:
    """The whole report as one HTML string. `history` maps (model, flag set) to history points,
    `history_marks` to the change points its trend plot marks;
    `diagnosed`: full rows of budget flag sets (their per-layer chart; default: from `results`)."""
    from markupsafe import Markup

    from harness.report import plots
    from harness.report.diagnosis import diagnosis_html

    if drift_metric not in plots.DRIFT_METRICS:
        raise ValueError(f"unknown drift metric {drift_metric!r}")
    models: dict[str, list[Result]] = {}
    for r in results:
        models.setdefault(r.model, []).append(r)

    def svg(s: str | None):
        return Markup(s) if s else None  # noqa: S704 - matplotlib escapes the text inside

    rows = comparison_rows(results, baseline)
    model_ctx, overview_ctx = [], None
    if len(models) <= PER_MODEL_PLOTS:
        model_ctx = [{"name": name, "scatter": svg(plots.latency_drift_scatter(rs, drift_metric)),
                      "boxes": svg(plots.latency_boxes(rs)), "sizes": svg(plots.size_bars(rs))}
                     for name, rs in models.items()]
    else:
        from harness.report.overview import overview

        overview_ctx = {k: svg(v) if k in ("scatter", "boxes", "sizes") else v
                        for k, v in overview(results, rows, baseline, drift_metric, len(models),
                                                          PER_MODEL_PLOTS).items()}
    hist_ctx = []
    for (model, flag_set), pts in (history or {}).items():
        if len(pts) >= 2:
            hist_ctx.append({"title": f"{model} / {flag_set}", "table": None,
                             "svg": svg(plots.trend(pts, marks=(history_marks or {}).get((model, flag_set))))})
    title = f"tflite-harness report: {run.campaign or 'run'} {run.id}" if run else "tflite-harness report"
    return _render(title=title, run=run_context(run), baseline=baseline, table=table_context(results, baseline, rows),
                   pivot=pivot_context(results, baseline), failures=failures_context(results), models=model_ctx,
                   overview=overview_ctx, history=hist_ctx, drift_label=plots.DRIFT_METRICS[drift_metric],
                   diagnosis=Markup(diagnosis_html(diagnosed if diagnosed is not None else results)) or None)  # noqa: S704 - escaped in diagnosis.py


def render_history(model: str, flag_set: str, points: list[dict], marks: list[dict] | None = None) -> str:
    """`marks`: change points to draw on the trend ({"when", "text"}, see report/changes_render.py)."""
    from markupsafe import Markup

    from harness.report import plots

    trend = plots.trend(points, marks=marks)
    return _render(title=f"tflite-harness history: {model} / {flag_set}",
                   history=[{"title": f"{model} / {flag_set}", "table": history_table(points),
                             "svg": Markup(trend) if trend else None}])  # noqa: S704


def render_page(title: str, **ctx) -> str:
    """Another page in the report's style (e.g. `changes --format html`): title plus template blocks."""
    return _render(title=title, **ctx)


__all__ = ["history_points", "history_table", "render_history", "render_page", "render_report"]
