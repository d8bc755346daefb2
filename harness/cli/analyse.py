"""CLI commands `check` and `inspect` (registered on the main group by `register(app)`).

Printing only: the work is in harness/pipeline/check.py and harness/tflite/inspect.py. Imports are
lazy so that `tflite-harness --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _console():
    import os
    import shutil

    from rich.console import Console

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 0)) or max(
        160, shutil.get_terminal_size((160, 24)).columns)
    return Console(highlight=False, width=width)


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the assessment as JSON.")
@click.option("--kind", type=click.Choice(["keras", "saved_model", "concrete_function", "jax", "tflite"]),
              help="Model kind when the path does not tell (e.g. jax for file.py:function).")
@click.option("--samples", type=click.Path(path_type=Path), help="Samples (.npy/.npz) for representative data.")
@click.option("--flag-sets", help="Comma-separated flag sets to judge (default: all built-in ones).")
@click.option("--verify/--no-verify", default=None,
              help="Convert every flag set to verify it (default: when the model has <= 5M parameters).")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the trial artifacts and logs in this folder.")
@click.option("--timeout", type=click.FloatRange(1), default=300, show_default=True, help="Per-job timeout (s).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Converter processes (each imports TensorFlow; 1 on a small machine or a small model).")
def check(model, as_json, kind, samples, flag_sets, verify, keep, timeout, workers) -> None:
    """Assess MODEL before conversion: ops (builtin / Flex / unsupported), shapes, flag sets.

    For a .tflite: ops with versions, tensors and quantization, float ops left in a
    quantized model, Flex/custom ops, GPU delegate compatibility, size by part.
    """
    from harness.config import model_from_path
    from harness.core.flag_sets import resolve_flag_sets
    from harness.pipeline.check import check_model

    spec = model_from_path(model, kind=kind, samples=samples, where=model)
    chosen = None
    if flag_sets:
        chosen = resolve_flag_sets([x.strip() for x in flag_sets.split(",") if x.strip()], {})
    report = check_model(spec, flag_sets=chosen, verify=verify, work_dir=keep, timeout_s=timeout,
                          workers=workers)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        from harness.cli.check_render import print_check

        print_check(report, _console())
    if report.get("error"):
        sys.exit(1)


@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--tensors/--no-tensors", default=True, help="List every tensor (human output).")
def inspect(file, as_json, tensors) -> None:
    """Show a .tflite's signatures, tensors, ops and metadata (no TensorFlow needed)."""
    from harness.tflite.inspect import inspect_tflite, print_inspect

    info = inspect_tflite(file)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        print_inspect(info, _console(), show_tensors=tensors)


def register(app: click.Group) -> None:
    """Add `check` and `inspect` to the main command group."""
    app.add_command(check)
    app.add_command(inspect)
