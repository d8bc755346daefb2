"""Commands that read the store: report, history, runs (compare: compare.py).

Argument parsing and printing only; like cli.py it imports lazily (no NumPy, SciPy or
matplotlib until a command runs). `register(app)` adds the commands to the main group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.output import (
    console,
    emit,
    md_table,
    open_store,
    print_rich,
    rich_table,
    when,
    write,
)

TEXT_FORMATS = ("table", "md", "csv", "json")


# ------------------------------------------------------------------ report

@click.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--format", "fmt", type=click.Choice([*TEXT_FORMATS, "html"]), default="table", show_default=True,
              help="Output format.")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Output file (default: stdout; for html results/<run>/report.html).")
@click.option("--baseline", default="fp32", show_default=True, help="Flag set that relative columns refer to.")
@click.option("--pivot", is_flag=True, help="Rows model x flag set, a column per device x threads (p50, speed-up).")
@click.option("--drift-metric", type=click.Choice(["max_abs", "1-cosine", "rmse", "1-top1"]), default="max_abs",
              show_default=True, help="Drift axis of the HTML latency-vs-drift plots.")
@click.option("--history", "with_history", is_flag=True, help="HTML: add trend plots over all stored runs.")
@click.option("--wide", is_flag=True, help="Table: every column (default: the ones that fit 120 columns).")
def report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history, wide) -> None:
    """Show the results of RUN (a run id or a unique prefix; default: the latest run)."""
    from harness.store import gc_paused

    with gc_paused():  # 100k rows make millions of acyclic objects: rescanning them tripled the time
        _report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history, wide)


def _report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history, wide=False) -> None:
    from harness.core.errors import UsageError

    s = open_store(store)
    run = s.run(run_id or "latest")
    samples = False
    if fmt == "html":  # raw samples feed only the per-model box plots, drawn for a few models only
        from harness.report.html import PER_MODEL_PLOTS

        samples = s.model_count(run.id) <= PER_MODEL_PLOTS
    results = s.report_rows(run.id, samples=samples)  # real columns: no JSON decoding per row
    if not results:
        raise UsageError(f"run {run.id} has no result rows yet; pick another with `tflite-harness runs`")
    flag_sets = sorted({r.flag_set for r in results})
    source = click.get_current_context().get_parameter_source("baseline")
    if baseline not in flag_sets:
        if source != click.core.ParameterSource.DEFAULT:
            raise UsageError(f"--baseline {baseline}: run {run.id} has no such flag set; "
                             f"choose one of {', '.join(flag_sets)}")
        baseline = None
    if fmt == "html":
        from harness.report.html import history_points, render_report

        history = marks = None
        if with_history:
            history, marks = {}, {}
            for model, flag_set in dict.fromkeys((r.model, r.flag_set) for r in results):
                history[(model, flag_set)] = history_points(s.history(model, flag_set))
                if len(history[(model, flag_set)]) >= 2:
                    marks[(model, flag_set)] = _marks(s, model, flag_set)
        from harness.report.diagnosis import diagnosed_results

        html = render_report(run, results, baseline=baseline, drift_metric=drift_metric, history=history,
                             diagnosed=diagnosed_results(s, run.id, results), history_marks=marks)
        path = out or Path(run.out_dir or Path("results") / run.id) / "report.html"
        write(path, html)
        click.echo(f"wrote {path}")
        return
    if pivot:
        from harness.report.export import report_json
        from harness.report.pivot import pivot as make_pivot
        from harness.report.pivot import pivot_markdown, pivot_plain, pivot_rich
        from harness.report.table import LARGE_TABLE_ROWS

        p = make_pivot(results, baseline)
        if fmt == "table" and len(p.rows) > LARGE_TABLE_ROWS:
            emit(pivot_plain(p, title=f"run {run.id}"), out)
        elif fmt == "table":
            print_rich(pivot_rich(p, title=f"run {run.id}"), out)
        elif fmt == "md":
            emit(pivot_markdown(p), out)
        elif fmt == "json":
            emit(report_json({"run": run.id, "baseline": baseline}, p.as_dicts()), out)
        else:
            import csv
            import io

            rows = p.as_dicts()
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
            emit(buf.getvalue(), out)
        return
    from harness.report.table import LARGE_TABLE_ROWS, comparison_rows, markdown_table

    rows = comparison_rows(results, baseline)
    if fmt == "table":
        from harness.report.table import TERMINAL_WIDTH, plain_comparison_table, rich_table

        title = f"{run.campaign or 'run'}: run {run.id}"
        if len(rows) > LARGE_TABLE_ROWS:
            emit(plain_comparison_table(rows, title=title, wide=wide), out)
        else:
            print_rich(rich_table(rows, title=title, wide=wide), out, max_width=None if wide else TERMINAL_WIDTH)
    elif fmt == "md":
        emit(markdown_table(rows), out)
    elif fmt == "json":
        from harness.report.export import report_json

        emit(report_json({"run": run.id, "campaign": run.campaign, "baseline": baseline},
                           [row.values for row in rows]), out)
    else:
        from harness.report.export import csv_text

        # as the file reads back in text mode: \n line ends (csv writes \r\n)
        emit(csv_text(results, baseline, rows).replace("\r\n", "\n").replace("\r", "\n"), out)


# ------------------------------------------------------------------ history

@click.command()
@click.argument("model")
@click.argument("flag_set", metavar="FLAGSET")
@click.option("--device", help="Only this device (default: all, one series each).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json", "html"]), default="table",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path),
              help="Output file (default: stdout; for html results/history-MODEL-FLAGSET.html).")
def history(model, flag_set, device, store, fmt, out) -> None:
    """One MODEL / FLAGSET over all stored runs: latency, drift and size per run."""
    from harness.core.errors import UsageError
    from harness.report.html import history_points, history_table, render_history

    s = open_store(store)
    points = history_points(s.history(model, flag_set, device))
    if not points:
        where = f" on {device}" if device else ""
        raise UsageError(f"no stored rows for model {model!r} with flag set {flag_set!r}{where}; "
                         "`tflite-harness report` shows the names a run used")
    if fmt == "html":
        import re

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}-{flag_set}")
        path = out or Path("results") / f"history-{safe}.html"
        write(path, render_history(model, flag_set, points, marks=_marks(s, model, flag_set, device)))
        click.echo(f"wrote {path}")
        return
    if fmt == "json":
        keep = ("run", "date", "git_commit", "device", "threads", "xnnpack", "status", "reason", "p50_ms",
                "max_abs", "cosine", "accuracy", "size_kb")
        emit(json.dumps({"model": model, "flag_set": flag_set,
                          "rows": [{k: p[k] for k in keep} for p in points]}, indent=1, default=str), out)
        return
    t = history_table(points)
    if fmt == "md":
        emit(md_table(t["headers"], t["rows"]), out)
    else:
        print_rich(rich_table(t["headers"], t["rows"], title=f"{model} / {flag_set}"), out)


def _marks(s, model: str, flag_set: str, device: str | None = None) -> list[dict]:
    """The change points of one model/flag set, for its trend plot (see `changes`)."""
    from harness.report.changes import analyse
    from harness.report.changes_data import read_series
    from harness.report.changes_render import marks_for

    return marks_for(analyse(read_series(s, model=model, flag_set=flag_set, device=device)), model, flag_set)


# ------------------------------------------------------------------ runs

@click.command()
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Newest N runs.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--changes", "with_changes", is_flag=True,
              help="Add what each run introduced (exact changes, latency change points; see `changes`).")
def runs(store, limit, fmt, with_changes) -> None:
    """List the stored runs, newest first."""
    s = open_store(store)
    introduced: dict[str, list[str]] = {}
    if with_changes and s.runs(1):
        from harness.report.changes import analyse
        from harness.report.changes_data import read_series

        rep = analyse(read_series(s, last=max(limit, 2)))
        introduced = {rep.data.runs[i].id: texts for i, texts in rep.runs_with_changes().items()}
    counts = {run_id: (n, ok or 0) for run_id, n, ok in s.db.execute(
        "SELECT run_id, COUNT(*), SUM(status = 'ok') FROM results GROUP BY run_id")}
    items = []
    for run in s.runs(limit):
        n, ok = counts.get(run.id, (0, 0))
        items.append({"id": run.id, "started": when(run.started_at), "state": run.state,
                      "campaign": run.campaign, "git_commit": run.git_commit, "rows": n, "ok": ok}
                     | ({"changes": introduced.get(run.id, [])} if with_changes else {}))
    if fmt == "json":
        click.echo(json.dumps(items, indent=1))
        return
    headers = ["run", "started", "state", "campaign", "git", "rows", "ok"] + (["changes introduced"] if with_changes
                                                                              else [])
    rows = [[i["id"], i["started"], i["state"], i["campaign"] or "-", (i["git_commit"] or "-")[:10],
             str(i["rows"]), str(i["ok"])] + (["; ".join(i["changes"]) or "-"] if with_changes else [])
            for i in items]
    if fmt == "md":
        click.echo(md_table(headers, rows), nl=False)
    elif not rows:
        click.echo(f"no runs in {s.path} yet; `tflite-harness run` makes one")
    else:
        console().print(rich_table(headers, rows, title=str(s.path)))


def register(app: click.Group) -> None:
    for command in (report, history, runs):
        app.add_command(command)
