"""`tflite-harness inspect`: what a .tflite holds, without TensorFlow.

Signatures, input/output and all tensors (shape, dtype, quantization, constant bytes),
operators with versions and kinds, the model's metadata entries, and the TFLite metadata
(`TFLITE_METADATA`, decoded, with labels from the zipped associated files) that flag sets'
`metadata` tables write (harness/tflite/metadata.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import UsageError


def inspect_tflite(path: str | Path, analyzer: bool = True) -> dict[str, Any]:
    """What PATH holds; `analyzer=False` leaves out the LiteRT analyzer's GPU verdict (its child process)."""
    from harness.tflite.check import GPU_NOT_ASKED, gpu_compatibility, size_parts
    from harness.tflite.file import TFLiteFormatError, read_tflite
    from harness.tflite.metadata import METADATA_NAME, read_metadata
    from harness.tflite.verify import mapped

    try:
        m = read_tflite(path)  # verified: only a file that passes reaches the analyzer below
    except TFLiteFormatError as exc:
        raise UsageError(str(exc)) from None
    with mapped(path) as data:
        size, tflite_metadata = size_parts(data, m), read_metadata(data)

    def tensor(t: Any) -> dict:
        q = t.quantization
        return {
            "index": t.index, "name": t.name, "shape": list(t.shape),
            "shape_signature": list(t.shape_signature) if t.shape_signature is not None else None,
            "dtype": t.dtype, "constant_bytes": t.buffer_bytes,
            "quantization": None if q is None else {
                "scales": list(q.scales), "zero_points": list(q.zero_points),
                "quantized_dimension": q.quantized_dimension},
        }

    other_meta = {}
    for key, raw in m.metadata.items():
        if key == METADATA_NAME:
            continue
        text = raw.rstrip(b"\x00")
        printable = text and all(32 <= c < 127 for c in text)
        other_meta[key] = text.decode("ascii") if printable else f"<{len(raw)} bytes>"
    return {
        "path": str(path),
        "size": size,
        "schema_version": m.schema_version,
        "description": m.description,
        "subgraphs": m.num_subgraphs,
        "signatures": [{"key": s.key, "inputs": s.inputs, "outputs": s.outputs, "subgraph": s.subgraph_index}
                       for s in m.signatures],
        "inputs": [tensor(t) for t in m.inputs],
        "outputs": [tensor(t) for t in m.outputs],
        "tensors": [tensor(t) for t in m.tensors],
        "ops": [{"name": o.name, "version": o.version, "count": o.count, "kind": o.kind}
                for o in sorted(m.operators, key=lambda o: (o.kind, o.name, o.version))],
        "operator_sequence": list(m.operator_sequence),
        "quantized": m.is_quantized,
        "float_ops_in_quantized": [{"index": i, "op": n} for i, n in m.float_ops_in_quantized],
        "flex_ops": m.flex_ops, "custom_ops": m.custom_ops,
        "min_runtime_version": m.min_runtime_version,
        "metadata_entries": other_meta,
        "tflite_metadata": tflite_metadata,
        "gpu": gpu_compatibility(path) if analyzer else GPU_NOT_ASKED,
    }


def _shape(s: list) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def _quant(q: dict | None) -> str:
    if not q:
        return "-"
    if len(q["scales"]) == 1:
        return f"scale {q['scales'][0]:.6g}, zero {q['zero_points'][0]}"
    return f"per-channel ({len(q['scales'])} scales, axis {q['quantized_dimension']})"


def print_inspect(info: dict, console: Any, show_tensors: bool = True) -> None:
    from rich.table import Table

    size = info["size"]
    console.print(f"[bold]{info['path']}[/]  {size['total']:,} bytes  (weights {size['weights']:,}, graph "
                  f"{size['graph']:,}, metadata {size['metadata']:,}, associated files {size['associated_files']:,})")
    console.print(f"schema v{info['schema_version']}, {info['subgraphs']} subgraph(s), "
                  f"min runtime {info['min_runtime_version'] or '?'}, "
                  f"{'quantized' if info['quantized'] else 'float'}")
    for sig in info["signatures"]:
        console.print(f"signature [bold]{sig['key']}[/] (subgraph {sig['subgraph']}): inputs "
                      f"{', '.join(sig['inputs'])} -> outputs {', '.join(sig['outputs'])}")
    io = Table(title="inputs and outputs", header_style="bold")
    for h in ("side", "name", "shape", "dtype", "quantization"):
        io.add_column(h)
    for side in ("inputs", "outputs"):
        for t in info[side]:
            io.add_row(side[:-1], t["name"], _shape(t["shape"]), t["dtype"], _quant(t["quantization"]))
    console.print(io)
    ops = Table(title="operators", header_style="bold")
    for h in ("op", "version", "count", "kind"):
        ops.add_column(h)
    for o in info["ops"]:
        ops.add_row(o["name"], str(o["version"]), str(o["count"]), o["kind"])
    console.print(ops)
    if show_tensors:
        t = Table(title="tensors", header_style="bold")
        for h in ("#", "name", "shape", "dtype", "const bytes", "quantization"):
            t.add_column(h)
        for x in info["tensors"]:
            t.add_row(str(x["index"]), x["name"][:70], _shape(x["shape"]), x["dtype"],
                      str(x["constant_bytes"] or ""), _quant(x["quantization"]))
        console.print(t)
    if info["float_ops_in_quantized"]:
        console.print("[yellow]float ops in a quantized model:[/] " + ", ".join(
            f"#{f['index']} {f['op']}" for f in info["float_ops_in_quantized"]))
    if info["flex_ops"] or info["custom_ops"]:
        console.print(f"[yellow]needs:[/] Flex {info['flex_ops'] or '-'}, custom {info['custom_ops'] or '-'}")
    for k, v in info["metadata_entries"].items():
        console.print(f"metadata {k}: {v}")
    meta = info["tflite_metadata"]
    if meta:
        console.print("[bold]TFLite metadata[/]")
        for key in ("name", "description", "version", "author", "license", "min_parser_version"):
            if meta.get(key):
                console.print(f"  {key}: {meta[key]}")
        for sg in meta.get("subgraphs", []):
            for t in sg.get("inputs", []):
                if "normalization" in t:
                    n = t["normalization"]
                    console.print(f"  input {t['name']}: normalize (x - {n['mean']}) / {n['std']}")
            for t in sg.get("outputs", []):
                for f in t.get("associated_files", []):
                    console.print(f"  output {t['name']}: {f['type']} file {f['name']}")
        if meta.get("labels"):
            labels = meta["labels"]
            console.print(f"  labels ({len(labels)}): {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}")
    gpu = info["gpu"]
    verdict = {True: "looks compatible", False: "NOT fully compatible", None: "unknown"}[gpu["compatible"]]
    console.print(f"GPU delegate (LiteRT analyzer): {verdict}")
    for line in gpu["messages"][:10]:
        if "looks compatible" not in line:
            console.print(f"  {line}", markup=False)
