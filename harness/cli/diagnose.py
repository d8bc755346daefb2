"""`tflite-harness diagnose MODEL`: where quantization hurts, and (with --budget) the cheapest fix.

Parsing and printing only; the work is `pipeline/session.py` (diagnose), `pipeline/diagnose.py` and `pipeline/search.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click


def _fmt(v, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


def layer_table(diagnosis, top: int):
    """The ranked layers. The columns are what the backend measured: TF's isolated and accumulated
    figures, or the quantizer's added cosine loss (its ranking) and the accumulated ones."""
    from rich.table import Table

    quantizer = diagnosis.metric == "added_cosine_loss"
    what = ("added cosine loss: 1 - cosine an op adds over its inputs" if quantizer
            else "isolated rmse/scale; ~0.29 is rounding alone")
    t = Table(header_style="bold", title=f"{diagnosis.model}/{diagnosis.flag_set}: layers, worst first ({what})")
    own = ("added cosine loss",) if quantizer else ("isolated rmse/scale", "cosine", "SNR dB")
    for h in ("#", "op", "layer", *own, "accumulated rmse/scale", "cosine", "SNR dB"):
        t.add_column(h, justify="left" if h in ("op", "layer") else "right")
    for x in diagnosis.layers[:top]:
        a = x.accumulated or {}
        cells = ((_fmt(x.added_cosine_loss, ".3g"),) if quantizer else
                 (_fmt(x.isolated.get("rmse_scale")), _fmt(x.isolated.get("cosine"), ".4f"),
                  _fmt(x.isolated.get("snr_db"), ".1f")))
        t.add_row(str(x.index), x.op, x.label, *cells, _fmt(a.get("rmse_scale")), _fmt(a.get("cosine"), ".4f"),
                  _fmt(a.get("snr_db"), ".1f"))
    return t


def search_table(search: dict):
    from rich.table import Table

    t = Table(header_style="bold", title=f"search for {search['budget']}")
    for h in ("step", "phase", "float layers", "top-1", "95% CI", "cosine", "max abs", "acc drop", "size KB",
              "p50 us", "budget"):
        t.add_column(h, justify="left" if h in ("phase", "float layers", "budget") else "right")
    for i, s in enumerate(search["steps"]):
        d = s.get("drift") or {}
        drop = (d["reference_accuracy"] - d["accuracy"]) if d.get("accuracy") is not None and \
            d.get("reference_accuracy") is not None else None
        ci = s.get("top1_ci")
        names = ", ".join(s["float_layers"]) or "(none)"
        t.add_row(str(i), s["phase"], names if len(names) < 60 else f"{len(s['float_layers'])} layers",
                  _fmt(d.get("top1_agreement"), ".3f"), f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
                  _fmt(d.get("cosine"), ".4f"), _fmt(d.get("max_abs")), _fmt(drop, ".3f"),
                  _fmt((s.get("size_bytes") or 0) / 1024, ".1f"), _fmt(s.get("p50_us"), ".1f"),
                  "[green]meets[/]" if s["meets_budget"] else "[red]misses[/]: " + "; ".join(s.get("failures", [])))
    return t


def _op_latency(path: Path | None, binary: Path | None, model: str) -> dict[str, float] | None:
    """Per-op average latency (us) by output tensor name, from a saved op profile or a local run."""
    if path is None and binary is None:
        return None
    from harness.core.errors import UsageError
    from harness.devices.benchmark_model.output import parse_output
    from harness.report.diagnosis import op_latency_by_tensor

    if binary is not None:
        from harness.pipeline.diagnose import op_profile_text

        text, where = op_profile_text(binary, Path(model)), f"--benchmark-model {binary}"
    else:
        text, where = path.read_text(encoding="utf-8", errors="replace"), f"--op-profile {path}"
    rows = parse_output(text).op_profile
    latency, skipped = op_latency_by_tensor(rows)
    if not latency:
        hint = ("its ops ran in the XNNPACK delegate, whose rows name no tensor; profile with --use_xnnpack=false"
                if skipped else "run benchmark_model with --enable_op_profiling=true and save its output")
        raise UsageError(f"{where}: no per-op latency by tensor found; {hint}")
    return latency


def register(app: click.Group) -> None:
    @app.command()
    @click.argument("model")
    @click.option("--flag-set", default="int8", show_default=True, help="The int8-family flag set to diagnose.")
    @click.option("--backend", type=click.Choice(["auto", "tf", "quantizer"]), default="auto", show_default=True,
                  help="What quantizes: TensorFlow's quantizer, the AI Edge Quantizer (int16 activations, a "
                       "float .tflite), or the flag set's own tool.")
    @click.option("--samples", type=click.Path(path_type=Path), help="Evaluation samples (.npz with labels for accuracy).")
    @click.option("--budget", help="What the fix must keep, e.g. 'top1>=0.99' (also cosine>=, accuracy_drop<=, max_abs<=).")
    @click.option("--float-layers", help="Comma-separated layers (names from this table) to keep float and re-diagnose.")
    @click.option("--out", "out", type=click.Path(path_type=Path), help="Write the chosen .tflite here (with --budget).")
    @click.option("--model-explorer", "explorer", type=click.Path(path_type=Path),
                  help="Write Model Explorer node-data JSON (per-node error, per-op latency) to this folder.")
    @click.option("--op-profile", type=click.Path(exists=True, path_type=Path),
                  help="benchmark_model --enable_op_profiling output of the quantized model, for per-op latency.")
    @click.option("--benchmark-model", "benchmark_model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="A benchmark_model binary: profile the quantized model's ops here (builtin kernels) for --model-explorer.")
    @click.option("--top", type=click.IntRange(1), default=15, show_default=True, help="Layers to print.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
    @click.option("--cache-dir", type=click.Path(path_type=Path), help="Conversion cache (default results/cache).")
    @click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Converter processes.")
    @click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True,
                  help="Seconds one worker job (the conversion, the per-layer pass) may take before it is stopped.")
    @click.option("--debug", is_flag=True, help="Show tracebacks and the runtime's native log lines.")
    def diagnose(model, flag_set, backend, samples, budget, float_layers, out, explorer, op_profile, benchmark_model,
                 top, as_json, cache_dir, workers, timeout, debug) -> None:
        """Rank MODEL's quantized layers by their error against float; with --budget, keep the worst
        in float until the artifact meets it, and report every step."""
        from dataclasses import replace

        from harness.api import diagnose as run_diagnose
        from harness.core.budget import parse_budget
        from harness.core.errors import UsageError
        from harness.pipeline.session import SEARCH_SETTINGS

        if budget is not None:
            parse_budget(budget)  # a bad budget fails before any worker starts
        if out is not None and budget is None:
            raise UsageError("--out writes the search's chosen .tflite; give --budget too")
        if (op_profile or benchmark_model) and explorer is None:
            raise UsageError("--op-profile and --benchmark-model feed --model-explorer; give --model-explorer DIR too")
        result = run_diagnose(model, flag_set, samples=samples, budget=budget,
                              float_layers=[x.strip() for x in float_layers.split(",") if x.strip()] if float_layers else None,
                              cache_dir=cache_dir, workers=workers, write=out, backend=backend,
                              settings=replace(SEARCH_SETTINGS, timeout_s=float(timeout)))
        written = []
        if explorer is not None:
            from harness.report.diagnosis import write_model_explorer

            written = write_model_explorer(result.to_dict(), explorer,
                                           _op_latency(op_profile, benchmark_model, result.quantized_path))
        if as_json:
            click.echo(json.dumps(result.to_dict(), indent=1))
            return
        from harness.cli.output import console

        c = console()
        c.print(f"backend: {result.backend}" + (" (AI Edge Quantizer per-op rules; layers ranked by the cosine "
                                                "loss each op adds, accumulated on LiteRT)" if result.backend == "quantizer" else ""))
        c.print(layer_table(result, top))
        if result.search:
            c.print(search_table(result.search))
            colour = "green" if result.search["met"] else "red"
            c.print(f"[{colour}]{result.search['message']}[/]")
            if out is not None:
                c.print(f"chosen .tflite: {out}")
        for path in written:
            c.print(f"Model Explorer node data: {path}")
        if written:
            graph = explorer / "quantized.tflite"
            c.print(f"open with: model-explorer {graph} --node_data_paths={','.join(map(str, written))}")
