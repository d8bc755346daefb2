"""`tflite-harness compare BASE NEW`: the regression gate's command.

Argument parsing and printing only; the verdicts are `harness/report/compare.py`'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.cli.output import emit, print_rich


def fraction(value: str | None, option: str) -> float | None:
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


@click.command()
@click.argument("base")
@click.argument("new")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json", "junit"]), default="table",
              show_default=True, help="md: a pull-request comment; junit: one test case per row, for CI.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the output here instead of stdout.")
@click.option("--max-latency-regression", default="5%", show_default=True,
              help="Largest allowed slowdown of the median (if confirmed).")
@click.option("--max-drift-increase", type=click.FloatRange(0), default=None,
              help="Largest allowed absolute increase of max_abs drift (default: not gated).")
@click.option("--max-accuracy-drop", default=None, help="Largest allowed accuracy drop, e.g. 1% (default: not gated).")
@click.option("--max-size-increase", default="1%", show_default=True,
              help="Largest allowed artifact size increase (0% gates every byte; 'none' to not gate).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Significance level of the Mann-Whitney U test on stored samples.")
@click.option("--noise-factor", type=click.FloatRange(0), default=3.0, show_default=True,
              help="Stored latency changes must also exceed this many times the run-to-run noise (0: off).")
@click.option("--confirm/--no-confirm", default=True, show_default=True,
              help="Re-measure both artifacts of a latency change now, interleaved, on the row's device.")
@click.option("--confirm-rounds", type=click.IntRange(2, 100), default=6, show_default=True,
              help="Rounds of the confirmation (each: base and new in fresh processes, order alternating).")
@click.option("--unconfirmed", type=click.Choice(["warn", "fail"]), default="warn", show_default=True,
              help="What a slowdown that could not be confirmed does to the exit code.")
@click.option("--cache-dir", "cache_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Where confirmation finds artifacts by hash (default results/cache; repeatable).")
@click.option("--ignore", "ignore", multiple=True, type=click.Choice(["device", "threads", "xnnpack", "runtime"]),
              help="Match rows without this setting, e.g. --ignore xnnpack to compare delegate on vs off, "
              "--ignore runtime to compare the Interpreter against CompiledModel.")
def compare(base, new, store, fmt, out, max_latency_regression, max_drift_increase, max_accuracy_drop,
            max_size_increase, alpha, noise_factor, confirm, confirm_rounds, unconfirmed, cache_dirs,
            ignore) -> None:
    """Compare run NEW against run BASE: the regression gate.

    BASE and NEW are run ids (or unique prefixes, or 'latest') or results.json files.
    Exit codes: 0 clean (unconfirmed changes only warn by default), 1 a regression (or an
    unconfirmed slowdown with --unconfirmed fail), 2 a usage error.
    """
    from harness.api import read_run
    from harness.core.errors import UsageError
    from harness.pipeline.confirm import DEFAULT_CACHE_DIRS, gate
    from harness.report.compare import Thresholds
    from harness.report.compare_markdown import comparison_markdown
    from harness.report.compare_render import (
        comparison_dict,
        comparison_json,
        comparison_junit,
        comparison_plain,
        comparison_rich,
    )
    from harness.report.table import LARGE_TABLE_ROWS
    from harness.store import gc_paused

    thresholds = Thresholds(
        max_latency_regression=fraction(max_latency_regression, "--max-latency-regression") or 0.0,
        max_drift_increase=max_drift_increase,
        max_accuracy_drop=fraction(max_accuracy_drop, "--max-accuracy-drop"),
        max_size_increase=fraction(max_size_increase, "--max-size-increase"),
        alpha=alpha,
        noise_factor=noise_factor or None,
        unconfirmed=unconfirmed,
    )
    progress = (lambda msg: click.echo(msg, err=True)) if confirm else None
    with gc_paused():  # 2 x 100k rows are millions of acyclic objects: no cyclic GC rescans
        base_name, base_results = read_run(base, store, which="BASE", for_compare=True)
        new_name, new_results = read_run(new, store, which="NEW", for_compare=True)
        try:
            c = gate(base_results, new_results, thresholds, ignore=tuple(ignore), confirm=confirm,
                     rounds=confirm_rounds, cache_dirs=tuple(cache_dirs) or DEFAULT_CACHE_DIRS, progress=progress)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not c.rows:
        raise UsageError(f"{base_name} and {new_name} have no result rows to compare")
    large = len(c.rows) > LARGE_TABLE_ROWS
    if fmt == "md":
        emit(comparison_markdown(c, base_name, new_name), out)
    elif fmt == "junit":
        emit(comparison_junit(c, base_name, new_name), out)
    elif fmt == "json":
        emit(comparison_json(c, base_name, new_name) if large
             else json.dumps(comparison_dict(c, base_name, new_name), indent=1), out)
    else:
        if large:  # rich lays out 100k rows in minutes: the same table as aligned plain text
            emit(comparison_plain(c, base_name, new_name), out)
        else:
            print_rich(comparison_rich(c, base_name, new_name), out)
        click.echo(c.summary())
        for r in c.regressed:
            click.echo(f"REGRESSED {r.label}: {r.why}")
        for r in c.unconfirmed:
            click.echo(f"UNCONFIRMED {r.label}: {r.why}")
    if c.failed:
        sys.exit(1)


def register(app: click.Group) -> None:
    app.add_command(compare)
