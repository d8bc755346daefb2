"""Commands that read the store: report, compare, history, runs.

Argument parsing and printing only; like cli.py it imports lazily (no NumPy, SciPy or
matplotlib until a command runs). `register(app)` adds the commands to the main group.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

TEXT_FORMATS = ("table", "md", "csv", "json")


def _console(file=None):
    import shutil

    from rich.console import Console

    if file is not None:
        return Console(file=file, width=220, highlight=False, color_system=None)
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 0)) or max(
        220, shutil.get_terminal_size((220, 24)).columns)
    return Console(highlight=False, width=width)


def _open_store(path: Path | None):
    from harness.errors import UsageError
    from harness.store import Store, default_store_path

    path = path or default_store_path()
    if not path.is_file():
        raise UsageError(f"no results store at {path}; run `tflite-harness run` first or pass --store PATH")
    return Store(path)


def _emit(text: str, out: Path | None) -> None:
    """Print text, or write it to --out."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    _write(out, text)
    click.echo(f"wrote {out}", err=True)


def _write(path: Path, text: str) -> None:
    from harness.errors import UsageError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); choose another place with --out") from None


def _print_rich(renderable, out: Path | None) -> None:
    if out is None:
        _console().print(renderable)
        return
    import io

    buf = io.StringIO()
    _console(buf).print(renderable)
    _emit(buf.getvalue(), out)


def _when(ts: float | None) -> str:
    import datetime as dt

    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rich_table(headers: list[str], rows: list[list[str]], title: str | None = None):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) if title else None, header_style="bold")
    for h in headers:
        table.add_column(escape(h))
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    return table


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
def report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history) -> None:
    """Show the results of RUN (a run id or a unique prefix; default: the latest run)."""
    from harness.store import gc_paused

    with gc_paused():  # 100k rows make millions of acyclic objects: rescanning them tripled the time
        _report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history)


def _report(run_id, fmt, store, out, baseline, pivot, drift_metric, with_history) -> None:
    from harness.errors import UsageError

    s = _open_store(store)
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

        history = None
        if with_history:
            history = {}
            for model, flag_set in dict.fromkeys((r.model, r.flag_set) for r in results):
                history[(model, flag_set)] = history_points(s.history(model, flag_set))
        html = render_report(run, results, baseline=baseline, drift_metric=drift_metric, history=history)
        path = out or Path(run.out_dir or Path("results") / run.id) / "report.html"
        _write(path, html)
        click.echo(f"wrote {path}")
        return
    if pivot:
        from harness.report.export import report_json
        from harness.report.pivot import pivot as make_pivot
        from harness.report.pivot import pivot_markdown, pivot_plain, pivot_rich
        from harness.report.table import LARGE_TABLE_ROWS

        p = make_pivot(results, baseline)
        if fmt == "table" and len(p.rows) > LARGE_TABLE_ROWS:
            _emit(pivot_plain(p, title=f"run {run.id}"), out)
        elif fmt == "table":
            _print_rich(pivot_rich(p, title=f"run {run.id}"), out)
        elif fmt == "md":
            _emit(pivot_markdown(p), out)
        elif fmt == "json":
            _emit(report_json({"run": run.id, "baseline": baseline}, p.as_dicts()), out)
        else:
            import csv
            import io

            rows = p.as_dicts()
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
            _emit(buf.getvalue(), out)
        return
    from harness.report.table import LARGE_TABLE_ROWS, comparison_rows, markdown_table

    rows = comparison_rows(results, baseline)
    if fmt == "table":
        from harness.report.table import plain_comparison_table, rich_table

        title = f"{run.campaign or 'run'}: run {run.id}"
        if len(rows) > LARGE_TABLE_ROWS:
            _emit(plain_comparison_table(rows, title=title), out)
        else:
            _print_rich(rich_table(rows, title=title), out)
    elif fmt == "md":
        _emit(markdown_table(rows), out)
    elif fmt == "json":
        from harness.report.export import report_json

        _emit(report_json({"run": run.id, "campaign": run.campaign, "baseline": baseline},
                           [row.values for row in rows]), out)
    else:
        from harness.report.export import csv_text

        # as the file reads back in text mode: \n line ends (csv writes \r\n)
        _emit(csv_text(results, baseline, rows).replace("\r\n", "\n").replace("\r", "\n"), out)


# ------------------------------------------------------------------ compare

def _fraction(value: str | None, option: str) -> float | None:
    """'5%' or '5' -> 0.05 (a bare number is a percentage too); 'none' -> None."""
    if value is None or value.strip().lower() in ("none", "off", ""):
        return None
    text = value.strip().rstrip("%")
    try:
        number = float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a percentage like 5% (or none)", param_hint=option) from None
    if number < 0:
        raise click.BadParameter(f"{value!r}: must not be negative", param_hint=option)
    return number / 100


def _load_side(spec: str, store_path: Path | None, which: str):
    """A run id (prefix, or 'latest') in the store, or a results.json file / run folder."""
    from harness.errors import UsageError
    from harness.result import Result

    path = Path(spec)
    if path.is_dir():
        path = path / "results.json"
        if not path.is_file():
            raise UsageError(f"{which} {spec}: folder has no results.json; give a run id or a results.json file")
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("results")
            if not isinstance(data, list):
                raise ValueError("expected a list of result objects")
            return str(spec), [Result.from_dict(d) for d in data]
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{which} {spec}: not a results.json export ({exc}); "
                             "give a run id or the results.json a run wrote") from None
    if spec.endswith(".json"):
        raise UsageError(f"{which} {spec}: no such file; give a run id or an existing results.json")
    s = _open_store(store_path)
    run = s.run(spec)
    # Only what compare reads: the report columns (no JSON decoding per row) and the raw
    # samples as float64 arrays straight from their packed column (no Python float each).
    rows = s.report_rows(run.id)
    samples = s.sample_arrays(run.id)
    for r in rows:
        r.samples_us = samples.get(r.key, [])
    return run.id, rows


@click.command()
@click.argument("base")
@click.argument("new")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the output here instead of stdout.")
@click.option("--max-latency-regression", default="5%", show_default=True,
              help="Largest allowed slowdown of the median (if significant).")
@click.option("--max-drift-increase", type=click.FloatRange(0), default=None,
              help="Largest allowed absolute increase of max_abs drift (default: not gated).")
@click.option("--max-accuracy-drop", default=None, help="Largest allowed accuracy drop, e.g. 1% (default: not gated).")
@click.option("--max-size-increase", default="0%", show_default=True,
              help="Largest allowed artifact size increase ('none' to not gate).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Significance level of the Mann-Whitney U test.")
@click.option("--noise-factor", type=click.FloatRange(0), default=3.0, show_default=True,
              help="Latency changes must also exceed this many times the run-to-run noise (0: off).")
@click.option("--ignore", "ignore", multiple=True, type=click.Choice(["device", "threads", "xnnpack"]),
              help="Match rows without this setting, e.g. --ignore xnnpack to compare delegate on vs off.")
def compare(base, new, store, fmt, out, max_latency_regression, max_drift_increase, max_accuracy_drop,
            max_size_increase, alpha, noise_factor, ignore) -> None:
    """Compare run NEW against run BASE; exit 1 on any regression.

    BASE and NEW are run ids (or unique prefixes, or 'latest') or results.json files.
    """
    from harness.errors import UsageError
    from harness.report.compare import Thresholds, compare_results
    from harness.report.compare_render import (
        comparison_dict,
        comparison_json,
        comparison_markdown,
        comparison_plain,
        comparison_rich,
    )
    from harness.report.table import LARGE_TABLE_ROWS
    from harness.store import gc_paused

    thresholds = Thresholds(
        max_latency_regression=_fraction(max_latency_regression, "--max-latency-regression") or 0.0,
        max_drift_increase=max_drift_increase,
        max_accuracy_drop=_fraction(max_accuracy_drop, "--max-accuracy-drop"),
        max_size_increase=_fraction(max_size_increase, "--max-size-increase"),
        alpha=alpha,
        noise_factor=noise_factor or None,
    )
    with gc_paused():  # 2 x 100k rows are millions of acyclic objects: no cyclic GC rescans
        base_name, base_results = _load_side(base, store, "BASE")
        new_name, new_results = _load_side(new, store, "NEW")
        try:
            c = compare_results(base_results, new_results, thresholds, ignore=tuple(ignore))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not c.rows:
        raise UsageError(f"{base_name} and {new_name} have no result rows to compare")
    large = len(c.rows) > LARGE_TABLE_ROWS
    if fmt == "md":
        _emit(comparison_markdown(c, base_name, new_name), out)
    elif fmt == "json":
        _emit(comparison_json(c, base_name, new_name) if large
              else json.dumps(comparison_dict(c, base_name, new_name), indent=1), out)
    else:
        if large:  # rich lays out 100k rows in minutes: the same table as aligned plain text
            _emit(comparison_plain(c, base_name, new_name), out)
        else:
            _print_rich(comparison_rich(c, base_name, new_name), out)
        click.echo(c.summary())
        for r in c.regressed:
            click.echo(f"REGRESSED {r.label}: {'; '.join(r.regressions)}")
    if c.regressed:
        sys.exit(1)


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
    from harness.errors import UsageError
    from harness.report.html import history_points, history_table, render_history

    s = _open_store(store)
    points = history_points(s.history(model, flag_set, device))
    if not points:
        where = f" on {device}" if device else ""
        raise UsageError(f"no stored rows for model {model!r} with flag set {flag_set!r}{where}; "
                         "`tflite-harness report` shows the names a run used")
    if fmt == "html":
        import re

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}-{flag_set}")
        path = out or Path("results") / f"history-{safe}.html"
        _write(path, render_history(model, flag_set, points))
        click.echo(f"wrote {path}")
        return
    if fmt == "json":
        keep = ("run", "date", "git_commit", "device", "threads", "xnnpack", "status", "reason", "p50_ms",
                "max_abs", "cosine", "accuracy", "size_kb")
        _emit(json.dumps({"model": model, "flag_set": flag_set,
                          "rows": [{k: p[k] for k in keep} for p in points]}, indent=1, default=str), out)
        return
    t = history_table(points)
    if fmt == "md":
        _emit(_md_table(t["headers"], t["rows"]), out)
    else:
        _print_rich(_rich_table(t["headers"], t["rows"], title=f"{model} / {flag_set}"), out)


# ------------------------------------------------------------------ runs

@click.command()
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Newest N runs.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
def runs(store, limit, fmt) -> None:
    """List the stored runs, newest first."""
    s = _open_store(store)
    counts = {run_id: (n, ok or 0) for run_id, n, ok in s.db.execute(
        "SELECT run_id, COUNT(*), SUM(status = 'ok') FROM results GROUP BY run_id")}
    items = []
    for run in s.runs(limit):
        n, ok = counts.get(run.id, (0, 0))
        items.append({"id": run.id, "started": _when(run.started_at), "state": run.state,
                      "campaign": run.campaign, "git_commit": run.git_commit, "rows": n, "ok": ok})
    if fmt == "json":
        click.echo(json.dumps(items, indent=1))
        return
    headers = ["run", "started", "state", "campaign", "git", "rows", "ok"]
    rows = [[i["id"], i["started"], i["state"], i["campaign"] or "-", (i["git_commit"] or "-")[:10],
             str(i["rows"]), str(i["ok"])] for i in items]
    if fmt == "md":
        click.echo(_md_table(headers, rows), nl=False)
    elif not rows:
        click.echo(f"no runs in {s.path} yet; `tflite-harness run` makes one")
    else:
        _console().print(_rich_table(headers, rows, title=str(s.path)))


def register(app: click.Group) -> None:
    for command in (report, compare, history, runs):
        app.add_command(command)
