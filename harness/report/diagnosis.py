"""Diagnosis on the graph and in the report: Model Explorer node data and a per-layer error chart.

Model Explorer (`pip install ai-edge-model-explorer`, optional, never imported here)
overlays "node data" on a graph it opens: a JSON object per graph,
`{"results": {KEY: {"value": N}}, "gradient": [{"stop": 0..1, "bgColor": ...}], ...}`,
where KEY is a node's output tensor name (the TFLite adapter matches it against each
node's `tensor_name` output metadata). That is the format of its own
`node_data_builder.GraphNodeData`; we write it with the standard library, so the extra
stays optional: `model-explorer model.tflite --node_data_paths=isolated.json,...`.

The HTML chart reads only what a result row stores (`Result.diagnosis`): the ranked
layers with their isolated and accumulated rmse/scale, and which layers the budget
search kept in float.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path
from typing import Any

# green (small error) -> yellow -> red (large): the colours Model Explorer's own examples use
GRADIENT = [{"stop": 0, "bgColor": "#00c853"}, {"stop": 0.5, "bgColor": "#ffd600"}, {"stop": 1, "bgColor": "#d50000"}]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def node_data(values: dict[str, float]) -> dict[str, Any]:
    """One graph's node data: VALUES by output tensor name, coloured on a gradient."""
    results = {name: {"value": float(v)} for name, v in values.items() if _finite(v)}
    return {"results": results, "gradient": GRADIENT}


def write_model_explorer(diagnosis: dict, folder: Path, op_latency_us: dict[str, float] | None = None) -> list[Path]:
    """Write isolated_error.json, accumulated_error.json and (with a profile) op_latency_us.json."""
    folder.mkdir(parents=True, exist_ok=True)
    layers = diagnosis.get("layers", [])
    files = {
        "isolated_error.json": {x["tensor"]: (x.get("isolated") or {}).get("rmse_scale") for x in layers},
        "accumulated_error.json": {x["tensor"]: (x.get("accumulated") or {}).get("rmse_scale") for x in layers},
    }
    if op_latency_us:
        files["op_latency_us.json"] = op_latency_us
    written = []
    model = Path(str(diagnosis.get("quantized_model", "")))
    if model.is_file():  # the graph the node data belongs to, beside it
        shutil.copyfile(model, folder / "quantized.tflite")
    for name, values in files.items():
        path = folder / name
        path.write_text(json.dumps(node_data(values), indent=1), encoding="utf-8")
        written.append(path)
    return written


def op_latency_by_tensor(rows: list) -> tuple[dict[str, float], int]:
    """benchmark_model op-profile rows -> ({output tensor name: avg us}, rows that name no tensor).

    Builtin kernels are profiled as `[TENSOR]:INDEX`; ops run inside the XNNPACK delegate show as
    `Delegate/Convolution (NHWC, QC8) IGEMM:N` (N is XNNPACK's node, not the model's), which
    name no tensor: profile with `--use_xnnpack=false` to see every op on the graph."""
    import re

    out: dict[str, float] = {}
    skipped = 0
    for r in rows:
        m = re.fullmatch(r"\[(.*)\]:(\d+)", r.name)
        if m is None:
            skipped += 1
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + r.avg_ms * 1000.0
    return out, skipped


def _bars(layers: list[dict], limit: int) -> str:
    """A horizontal bar chart (inline SVG, log scale) of isolated and accumulated rmse/scale."""
    shown = layers[:limit]
    values = [v for x in shown for v in (x.get("isolated"), x.get("accumulated")) if _finite(v) and v > 0]
    if not values:
        return ""
    lo, hi = min(min(values), 0.1), max(values)
    span = math.log10(hi) - math.log10(lo) or 1.0
    label_w, bar_w, row_h = 260, 420, 18

    def width(v: Any) -> float:
        return 0.0 if not _finite(v) or v <= 0 else max(1.0, bar_w * (math.log10(v) - math.log10(lo)) / span)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
             f'height="{row_h * len(shown) + 24}" role="img" aria-label="per-layer quantization error">']
    for i, x in enumerate(shown):
        y = i * row_h + 4
        name = html.escape(str(x.get("label") or x.get("tensor"))[:40])
        mark = " (float)" if x.get("float") else ""
        parts.append(f'<text x="0" y="{y + 11}" font-size="11">{name}{mark}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{width(x.get("isolated")):.1f}" height="7" fill="#d50000">'
                     f'<title>isolated {x.get("isolated")}</title></rect>')
        parts.append(f'<rect x="{label_w}" y="{y + 8}" width="{width(x.get("accumulated")):.1f}" height="7" '
                     f'fill="#2962ff"><title>accumulated {x.get("accumulated")}</title></rect>')
        iso = x.get("isolated")
        parts.append(f'<text x="{label_w + bar_w + 4}" y="{y + 11}" font-size="10">'
                     f'{iso:.3g}</text>' if _finite(iso) else "")
    parts.append(f'<text x="{label_w}" y="{row_h * len(shown) + 20}" font-size="10">red: isolated, blue: accumulated '
                 f'rmse/scale (log scale, {lo:.2g} to {hi:.3g})</text></svg>')
    return "".join(parts)


def diagnosis_sections(results: list, limit: int = 25) -> list[dict[str, Any]]:
    """One section per diagnosed artifact (a budget flag set's row): title, float layers, chart SVG."""
    seen, out = set(), []
    for r in results:
        d = getattr(r, "diagnosis", None)
        if not d or (r.model, r.flag_set) in seen:
            continue
        seen.add((r.model, r.flag_set))
        chosen = ((d.get("search") or {}).get("chosen") or {})
        floats = set(chosen.get("float_tensors") or [])
        layers = [dict(x, float=x.get("tensor") in floats) for x in d.get("layers", [])]
        out.append({"title": f"{r.model} / {r.flag_set}", "float_layers": chosen.get("float_layers") or [],
                    "message": (d.get("search") or {}).get("message", ""), "svg": _bars(layers, limit),
                    "steps": len((d.get("search") or {}).get("steps", []))})
    return out


def diagnosis_html(results: list) -> str:
    """The report's per-layer section as HTML (names escaped; the SVG is built here, escaped too)."""
    sections = diagnosis_sections(results)
    if not sections:
        return ""
    parts = ['<h2 id="diagnosis">Where quantization hurts</h2>']
    for s in sections:
        floats = ", ".join(html.escape(x) for x in s["float_layers"]) or "none"
        parts.append(f"<h3>{html.escape(s['title'])}</h3><p>{html.escape(s['message'])}. Kept float: {floats}; "
                     f"{s['steps']} search step(s).</p>{s['svg']}")
    return "\n".join(parts)


FLOAT_NOTE = "float layers: "  # the start of a budget row's reason (pipeline/budgeted.py writes it)


def diagnosed_results(store, run_id: str, rows: list) -> list:
    """Full rows (with `diagnosis`) of a run's budget flag sets; none loaded when no row has one."""
    if not any(str(getattr(r, "reason", "") or "").startswith(FLOAT_NOTE) for r in rows):
        return []
    return [r for r in store.results(run_id) if getattr(r, "diagnosis", None)]
