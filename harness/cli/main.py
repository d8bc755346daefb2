"""Command line: argument parsing and printing only.

Imports are lazy: `tflite-harness --help` must not pay for TensorFlow (6 s, 570 MB) or
even NumPy; each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.core.version import __version__


def _split_csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give a comma-separated list, e.g. fp32,int8")
    return items


def _threads(value: str | None) -> tuple[int, ...] | None:
    items = _split_csv(value)
    if items is None:
        return None
    try:
        out = tuple(int(v) for v in items)
    except ValueError:
        raise click.BadParameter(f"{value!r}: threads are positive integers, e.g. 1,2") from None
    if any(t < 1 for t in out):
        raise click.BadParameter(f"{value!r}: threads are positive integers, e.g. 1,2")
    return out


class _State:
    debug = False
    executor = "local"  # run --executor
    wide = False  # run --wide
    ray_address: str | None = None  # run --ray-address


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tflite-harness")
@click.option("--debug", is_flag=True, help="Show tracebacks, full converter logs and the runtime's native log lines.")
def app(debug: bool) -> None:
    """Convert TensorFlow models under many flag sets, run them on LiteRT, compare the results."""
    _State.debug = _State.debug or debug


def _console(max_width: int | None = None):
    from harness.cli.output import console

    return console(max_width=max_width)


class _ProgressEvents:
    """Draws a progress bar from the campaign's events."""

    def __init__(self, console, debug: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.debug = debug
        self.progress = Progress(
            TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[label]}"), console=console, transient=True,
        )
        self.conv = self.meas = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def planned(self, conversions: int, measurements: int) -> None:
        self.conv = self.progress.add_task("convert", total=conversions, label="")
        self.meas = self.progress.add_task("measure", total=measurements, label="")

    def converted(self, artifact) -> None:
        self.progress.advance(self.conv)
        label = f"{artifact.model.name}/{artifact.flag_set}" + ("" if artifact.ok else f" failed: {artifact.reason}")
        self.progress.update(self.conv, label=label[:70])
        if self.debug and not artifact.ok and artifact.log:
            self.console.print(f"[dim]{artifact.model.name}/{artifact.flag_set}: full log in {artifact.log}[/]")
            self.console.print(Path(artifact.log).read_text(errors="replace")[-6000:], markup=False)

    def measuring(self, label: str) -> None:
        self.progress.update(self.meas, label=label[:70])

    def measured(self, result) -> None:
        self.progress.advance(self.meas)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {text}", markup=True)


@app.command()
@click.argument("campaign", required=False, type=click.Path(path_type=Path))
@click.option("--model", "models", multiple=True, metavar="PATH",
              help="Model to run instead of the campaign's (.keras, .h5, SavedModel dir, file.py:function, .tflite). Repeatable.")
@click.option("--samples", type=click.Path(path_type=Path), help="Evaluation samples (.npy/.npz) for the --model models.")
@click.option("--flag-sets", help="Comma-separated flag sets, e.g. fp32,int8 (default: the campaign's).")
@click.option("--threads", help="Comma-separated thread counts, e.g. 1,2.")
@click.option("--devices", help="Comma-separated devices, e.g. local.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default results/<run-id>/).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default results/harness.sqlite).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Conversion cache (default results/cache).")
@click.option("--workers", type=click.IntRange(1, 64), help="Converter processes (default: number of cores).")
@click.option("--runs", type=click.IntRange(1), help="Minimum timed runs per measurement.")
@click.option("--warmup-runs", type=click.IntRange(0), help="Warm-up runs before timing.")
@click.option("--min-seconds", type=click.FloatRange(0), help="Minimum seconds of timed runs.")
@click.option("--eval-samples", type=click.IntRange(1), help="Evaluation samples for drift (default 32).")
@click.option("--xnnpack/--no-xnnpack", default=None, help="Use the XNNPACK delegate (default on).")
@click.option("--runtimes", help="Comma-separated runtime APIs: interpreter, compiled_model (default: interpreter).")
@click.option("--accelerators", help="Comma-separated accelerators for compiled_model: cpu, gpu, npu, or a fallback "
              "chain such as gpu+cpu (default: cpu). See docs/runtimes.md.")
@click.option("--timeout", type=click.FloatRange(1), help="Per-job timeout in seconds.")
@click.option("--repeat", type=click.IntRange(1), help="Fresh measuring processes per job, samples combined.")
@click.option("--pin-cpu", type=click.IntRange(0), help="Pin the measuring process to CPUs from this one on.")
@click.option("--baseline", default="fp32", show_default=True, help="Flag set that speed-up and size ratios refer to.")
@click.option("--resume", "resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN]",
              help="Finish an interrupted run (default: the latest): only the missing rows are run.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where jobs run: this host, or a Ray cluster (device lab; see docs/lab.md).")
@click.option("--ray-address", metavar="ADDR|auto",
              help="Ray cluster to join with --executor ray (default: start a local Ray instance).")
@click.option("--wide", is_flag=True, help="Show every column of the table (default: the ones that fit 120 columns).")
@click.option("--debug", is_flag=True, help="Show tracebacks, full converter logs and the runtime's native log lines.")
def run(campaign, models, samples, flag_sets, threads, devices, out, store, cache_dir, workers, runs, warmup_runs,
        min_seconds, eval_samples, xnnpack, runtimes, accelerators, timeout, repeat, pin_cpu, baseline, resume, executor, ray_address,
        wide, debug) -> None:
    """Convert, measure and compare: the whole campaign, one table.

    With no CAMPAIGN and no --model, runs the bundled default campaign.
    """
    _State.debug = _State.debug or debug
    _State.wide = wide
    _executor_options(executor, ray_address)
    if resume is not None:
        if campaign or models:
            from harness.core.errors import UsageError

            raise UsageError("--resume takes the stored run's campaign; drop CAMPAIGN and --model")
        _resume(resume, store, cache_dir, workers, baseline)
        return
    from harness.api import make_campaign

    c = make_campaign(campaign, models=models, samples=samples, flag_sets=_split_csv(flag_sets),
                      devices=_split_csv(devices), threads=_threads(threads), runs=runs, warmup_runs=warmup_runs,
                      min_seconds=min_seconds, eval_samples=eval_samples, xnnpack=xnnpack, timeout_s=timeout,
                      runtimes=runtimes, accelerators=accelerators,
                      repeat=repeat, pin_cpu=pin_cpu)
    from harness.cli.checks import check_input_shapes

    check_input_shapes(c)
    _run_campaign(c, out, store, cache_dir, workers, baseline)


def _executor_options(executor: str, ray_address: str | None) -> None:
    from harness.core.errors import UsageError

    if ray_address and executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    if executor == "ray":
        from harness.executors import require_ray

        require_ray()
    _State.executor, _State.ray_address = executor, ray_address


def _resume(run_id, store, cache_dir, workers, baseline) -> None:
    from harness.cli.checks import run_in_folder
    from harness.pipeline.campaign import campaign_from_config
    from harness.store import TRANSIENT_STATUSES, Store, default_store_path

    db = Store(store or default_store_path())
    try:
        info = db.run(run_in_folder(db, run_id))
        done = db.result_keys(info.id, exclude_statuses=TRANSIENT_STATUSES)  # device_lost/timeout run again
    finally:
        db.close()
    c = campaign_from_config(info.config)
    _run_campaign(c, Path(info.out_dir) if info.out_dir else None, store, cache_dir, workers, baseline,
                  run_id=info.id, resume_keys=done)


def _run_campaign(c, out, store, cache_dir, workers, baseline, run_id=None, resume_keys=None) -> None:
    from harness.api import open_run
    from harness.report.table import comparison_rows, rich_table

    runner = open_run(c, out=out, store=store, cache_dir=cache_dir, workers=workers, baseline=baseline,
                      executor=_State.executor, ray_address=_State.ray_address, run_id=run_id, debug=_State.debug)
    from harness.report.table import TERMINAL_WIDTH

    console = _console(None if _State.wide else TERMINAL_WIDTH)
    if resume_keys is not None:
        console.print(f"resuming run [bold]{runner.run_id}[/]: {len(resume_keys)} row(s) already stored")
    console.print(f"run [bold]{runner.run_id}[/]: {len(c.models)} model(s) x {len(c.flag_sets)} flag set(s) x "
                  f"{len(c.devices)} device(s), threads {','.join(map(str, c.settings.threads))}")
    with _ProgressEvents(console, _State.debug) as events:
        runner.events = events
        summary = runner.execute(resume_keys)
    rows = comparison_rows(summary.results, baseline)
    console.print(rich_table(rows, title=f"{c.name}: run {summary.run_id}", wide=_State.wide))
    if summary.conversions_performed == 0:
        console.print(f"converted nothing: all {summary.conversions_cached} artifact(s) came from the cache")
    else:
        console.print(f"converted {summary.conversions_performed}, {summary.conversions_cached} from the cache")
    counts: dict[str, int] = {}
    for r in summary.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print("rows: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    console.print(f"results: {summary.out_dir}/results.json, results.md, results.csv; store {summary.store_path}")
    if summary.interrupted:
        console.print(f"[yellow]interrupted[/]: {len(summary.results)} completed row(s) are stored; "
                      f"finish with: tflite-harness run --resume {summary.run_id}"
                      + (f" --store {store}" if store else ""))
        sys.exit(130)


@app.command()
@click.argument("model")
@click.option("--flag-sets", default="fp32", show_default=True, help="Comma-separated flag sets.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the .tflite files.")
@click.option("--samples", type=click.Path(path_type=Path), help="Samples (.npy/.npz) for representative data.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Conversion cache (default results/cache).")
@click.option("--workers", type=click.IntRange(1, 64), help="Converter processes (default: number of cores).")
@click.option("--debug", is_flag=True, help="Show tracebacks, full converter logs and the runtime's native log lines.")
def convert(model, flag_sets, out, samples, cache_dir, workers, debug) -> None:
    """Convert MODEL under each flag set and write MODEL-FLAGSET.tflite files to --out."""
    _State.debug = _State.debug or debug
    import shutil

    from harness import api

    done = api.convert_model(model, _split_csv(flag_sets), samples=samples, out=out / ".logs", cache_dir=cache_dir,
                       workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    from rich.table import Table

    table = Table(header_style="bold")
    for h in ("flag set", "status", "file", "size KB", "convert s", "ops / reason"):
        table.add_column(h)
    for a in done.artifacts:
        if a.ok:
            dest = out / f"{a.model.name}-{a.flag_set}.tflite"
            shutil.copyfile(a.path, dest)
            table.add_row(a.flag_set, "ok", str(dest), f"{(a.meta.size_bytes or 0) / 1024:.1f}",
                          f"{a.meta.convert_s or 0:.2f}" + ("" if a.converted else " (cached)"),
                          ", ".join(a.meta.ops))
        else:
            table.add_row(a.flag_set, f"[red]{a.status}[/]", "-", "-", "-", f"{a.failure_category}: {a.reason}")
    _console().print(table)


def _register_commands() -> None:
    """Commands live in small modules of their own; each adds itself to `app`."""
    from harness.cli import analyse as cli_convert
    from harness.cli import changes as cli_changes
    from harness.cli import compare as cli_compare
    from harness.cli import devices as cli_devices
    from harness.cli import diagnose as cli_diagnose
    from harness.cli import lab as cli_lab
    from harness.cli import report as cli_report

    cli_convert.register(app)
    cli_report.register(app)
    cli_compare.register(app)
    cli_changes.register(app)
    cli_devices.register(app)
    cli_lab.register(app)
    cli_diagnose.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors are one line and exit 2; tracebacks only with --debug."""
    from harness.core.errors import HarnessError
    from harness.core.native_log import set_verbose

    args = list(sys.argv[1:] if argv is None else argv)
    _State.debug = "--debug" in args
    set_verbose(_State.debug)  # --debug: the runtime's native log lines reach the terminal too
    try:
        app.main(args=args, prog_name="tflite-harness", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) or exc.exit_code == 2 else exc.exit_code)
    except HarnessError as exc:
        if _State.debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if _State.debug:
            raise
        from harness.cli.errors import as_usage_error

        usage = as_usage_error(exc)  # the one place that knows which errors are the user's
        if usage is not None:
            click.echo(f"error: {' '.join(str(usage).split())}", err=True)
            sys.exit(2)
        msg = " ".join(str(exc).split())
        click.echo(f"error: {type(exc).__name__}: {msg} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
