"""`tflite-harness changes`: the nightly question over the whole store.

Argument parsing and printing only; the analysis is `harness/report/changes.py`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli.compare import fraction
from harness.cli.output import emit, open_store, print_rich, rich_table, write

# trend plots drawn by --format html: the series with changes first, at most this many model/flag sets
HTML_TRENDS = 12


@click.command()
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--last", type=click.IntRange(2), default=None, help="Only the newest N runs (default: all).")
@click.option("--model", help="Only this model.")
@click.option("--flag-set", "flag_set", help="Only this flag set.")
@click.option("--device", help="Only this device.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json", "junit", "html"]), default="table",
              show_default=True, help="md: a CI comment; junit: one test case per row series; html: with trends.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the output here (default: stdout; for html results/changes.html).")
@click.option("--fail-on", "fail_on", type=click.Choice(["regression", "never"]), default="never",
              show_default=True, help="regression: exit 1 when a row's newest change point is a regression "
              "or an exact figure's newest change got worse.")
@click.option("--max-latency-regression", default="5%", show_default=True,
              help="A change point is a regression beyond this slowdown (its 95% interval above 0).")
@click.option("--max-size-increase", default="1%", show_default=True, help="Size growth that is worse, as compare (0% gates every byte; 'none' to not gate).")
@click.option("--max-drift-increase", type=click.FloatRange(0), default=None,
              help="Absolute max_abs increase that is worse (default: not gated).")
@click.option("--max-accuracy-drop", default=None, help="Accuracy drop that is worse, e.g. 1% (default: not gated).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level of the E-Divisive permutation test.")
@click.option("--permutations", type=click.IntRange(19, 9999), default=199, show_default=True,
              help="Permutations per segment length of the test.")
@click.option("--min-runs", type=click.IntRange(2), default=3, show_default=True,
              help="Fewest runs on each side of a latency change point.")
def changes(store, last, model, flag_set, device, fmt, out, fail_on, max_latency_regression, max_size_increase,
            max_drift_increase, max_accuracy_drop, alpha, permutations, min_runs) -> None:
    """Which rows changed across the stored runs, at which run, by how much, and what changed with them.

    Exact figures (artifact bytes, size, ops, status, drift, accuracy) at their exact run; latency
    change points (machine-corrected p50, E-Divisive with a permutation test) with a cause:
    bytes, runtime, settings, tools, device, or 'latency moved with no artifact change';
    steps all unchanged artifacts took together are 'machine'. Exit codes: 0, 1 with
    --fail-on regression when a row regressed, 2 a usage error.
    """
    from harness.report.changes import ChangesOptions, analyse
    from harness.report.changes_data import read_series
    from harness.report.changes_render import (
        CHANGE_COLUMNS,
        RUN_COLUMNS,
        change_rows,
        changes_html,
        changes_json,
        changes_junit,
        changes_markdown,
        run_rows,
    )
    from harness.report.compare import Thresholds

    thresholds = Thresholds(
        max_latency_regression=fraction(max_latency_regression, "--max-latency-regression") or 0.0,
        max_size_increase=fraction(max_size_increase, "--max-size-increase"),
        max_drift_increase=max_drift_increase,
        max_accuracy_drop=fraction(max_accuracy_drop, "--max-accuracy-drop"))
    s = open_store(store)
    data = read_series(s, last, model, flag_set, device)
    report = analyse(data, ChangesOptions(thresholds, alpha=alpha, permutations=permutations, min_size=min_runs))
    if fmt == "md":
        emit(changes_markdown(report), out)
    elif fmt == "json":
        emit(changes_json(report), out)
    elif fmt == "junit":
        emit(changes_junit(report), out)
    elif fmt == "html":
        write(out or Path("results") / "changes.html", changes_html(report, _histories(s, report)))
        click.echo(f"wrote {out or Path('results') / 'changes.html'}")
    else:
        rows = change_rows(report)
        if rows:
            print_rich(rich_table(CHANGE_COLUMNS, rows, title="changes"), out)
        print_rich(rich_table(RUN_COLUMNS, run_rows(report), title="runs"), out)
        click.echo(report.summary())
        for key, why in report.failures().items():
            label = next(x.label for x in data.series if x.key == key)
            click.echo(f"REGRESSED {label}: {'; '.join(why)}")
    if fail_on == "regression" and report.failed:
        sys.exit(1)


def _histories(s, report) -> dict:
    """History points of the model/flag sets with changes (then the rest), within the report's runs."""
    from harness.report.html import history_points

    ids = {r.id for r in report.data.runs}
    changed = [c.key[:2] for c in report.latency] + [e.key[:2] for e in report.exact]
    names = list(dict.fromkeys(changed + [x.key[:2] for x in report.data.series]))[:HTML_TRENDS]
    device = {x.key[2] for x in report.data.series}
    out = {}
    for model, flag_set in names:
        pts = [p for p in history_points(s.history(model, flag_set)) if p["run"] in ids and p["device"] in device]
        if pts:
            out[(model, flag_set)] = pts
    return out


def register(app: click.Group) -> None:
    app.add_command(changes)
