"""Human (rich) output of `tflite-harness check`; the JSON output is the report dict itself."""

from __future__ import annotations

from typing import Any

_STYLE = {"builtin": "green", "flex": "yellow", "unsupported": "red", "unknown": "dim",
          "works": "green", "converts": "green", "unhealthy": "yellow", "risky": "yellow", "fails": "red"}


def print_check(report: dict, console: Any) -> None:
    if report["kind"] == "tflite":
        console.print(f"[bold]{report['path']}[/]: {len(report['ops'])} op kinds, "
                      f"{'quantized' if report['quantized'] else 'float'}")
        _print_tflite(report, console)
        _print_findings(report, console)
        return
    _print_model(report, console)


def _print_tflite(report: dict, console: Any) -> None:
    from rich.table import Table

    size = report["size"]
    console.print(f"size {size['total']:,} bytes: weights {size['weights']:,}, graph {size['graph']:,}, "
                  f"metadata {size['metadata']:,}, associated files {size['associated_files']:,}")
    t = Table(title="operators", header_style="bold")
    for h in ("op", "version", "count", "kind"):
        t.add_column(h)
    for o in report["ops"]:
        t.add_row(o["name"], str(o["version"]), str(o["count"]), o["kind"])
    console.print(t)
    io = Table(title="inputs and outputs", header_style="bold")
    for h in ("side", "name", "shape", "dtype", "quantization"):
        io.add_column(h)
    for side in ("inputs", "outputs"):
        for x in report[side]:
            q = x["quantization"]
            qs = "-" if not q else ("per-channel" if q["per_channel"] else f"scale {q['scales'][0]:.6g}, zero {q['zero_points'][0]}")
            io.add_row(side[:-1], x["name"], str(x["shape"]), x["dtype"], qs)
    console.print(io)
    gpu = report["gpu"]
    verdict = {True: "looks compatible", False: "NOT fully compatible", None: "unknown"}[gpu["compatible"]]
    console.print(f"GPU delegate (LiteRT analyzer): {verdict}")


def _print_model(report: dict, console: Any) -> None:
    from rich.table import Table

    console.print(f"[bold]{report['path']}[/] ({report['kind']})")
    if report.get("error"):
        console.print(f"[red]cannot assess:[/] {report.get('error_category')}: {report['error']}")
        _print_findings(report, console)
        return
    ins = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in report.get("inputs", []))
    console.print(f"inputs: {ins}")
    if report.get("params") is not None:
        console.print(f"parameters: {report['params']:,} ({(report.get('param_bytes') or 0):,} bytes)")
    if report.get("graph_error"):
        console.print(f"[yellow]graph analysis failed:[/] {report['graph_error']}")
    verdicts = report.get("op_verdicts", {})
    counts = report.get("graph_ops", {})
    if verdicts:
        t = Table(title="TensorFlow ops", header_style="bold")
        for h in ("op", "count", "TFLite"):
            t.add_column(h)
        for op, v in verdicts.items():
            style = _STYLE.get(v, "")
            t.add_row(op, str(counts.get(op, "")), f"[{style}]{v}[/]" if style else v)
        console.print(t)
    if report.get("jax_primitives"):
        console.print("JAX primitives: " + ", ".join(f"{k} x{v}" for k, v in report["jax_primitives"].items()))
    fs = report.get("flag_sets", {})
    if fs:
        t = Table(title="flag sets", header_style="bold")
        for h in ("flag set", "verdict", "how", "why"):
            t.add_column(h)
        for name, v in fs.items():
            style = _STYLE.get(v["verdict"], "")
            t.add_row(name, f"[{style}]{v['verdict']}[/]", v["how"], v["why"][:140])
        console.print(t)
    _print_findings(report, console)
    if report.get("recommended"):
        console.print(f"recommended flag set: [bold]{report['recommended']}[/]")


def _print_findings(report: dict, console: Any) -> None:
    for f in report.get("findings", []) + report.get("notes", []):
        console.print(f"- {f}", markup=False)
