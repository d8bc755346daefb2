"""Diagnosis on the graph and in the report: Model Explorer node data and a per-layer error chart.

Model Explorer (`pip install ai-edge-model-explorer`, optional, never imported here)
overlays "node data" on a graph it opens: a JSON object per graph,
`{"results": {KEY: {"value": N}}, "gradient": [{"stop": 0..1, "bgColor": ...}], ...}`,
where KEY is a node's output tensor name (the TFLite adapter matches it against each
node's `tensor_name` output metadata). That is the format of its own
`node_data_builder.GraphNodeData`; we write it with the standard library, so the extra
stays optional: `model-explorer model.tflite --node_data_paths=isolated_error.json,...`.

The HTML chart reads only what a result row stores (`Result.diagnosis`): the ranked
layers with their ranking figure (TF: isolated rmse/scale; the quantizer backend, which
says so in `ranking`: added cosine loss) and accumulated rmse/scale, and which layers the
budget search kept in float.
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
    """Write the ranking metric's node data, accumulated_error.json and (with a profile) op_latency_us.json.

    The ranking file is what the backend measured: isolated_error.json (TF's NumericVerify
    rmse/scale) or added_cosine_loss.json (the quantizer backend, `diagnosis["ranking"]`)."""
    folder.mkdir(parents=True, exist_ok=True)
    layers = diagnosis.get("layers", [])
    if metric(diagnosis) == ADDED_COSINE_LOSS:
        ranking = {f"{ADDED_COSINE_LOSS}.json": {x["tensor"]: x.get(ADDED_COSINE_LOSS) for x in layers}}
    else:
        ranking = {"isolated_error.json": {x["tensor"]: (x.get("isolated") or {}).get("rmse_scale") for x in layers}}
    files = {
        **ranking,
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


ADDED_COSINE_LOSS = "added_cosine_loss"  # pipeline/diagnose.py RANKING: the quantizer backend's metric


def metric(diagnosis: dict) -> str:
    """What ranks a diagnosis's layers (a `to_dict()` or a row's compact form): `isolated` unless it says."""
    return (diagnosis.get("ranking") or {}).get("metric") or "isolated"


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


def _log_scale(values: list, floor: float | None) -> tuple[float, float, float] | None:
    """(lo, hi, decades) of the positive finite VALUES, lo no higher than FLOOR when given."""
    values = [v for v in values if _finite(v) and v > 0]
    if not values:
        return None
    lo, hi = min(values) if floor is None else min(min(values), floor), max(values)
    return lo, hi, math.log10(hi) - math.log10(lo) or 1.0


def _bars(layers: list[dict], limit: int, ranked_by: str = "isolated") -> str:
    """A horizontal bar chart (inline SVG, log scale) of each layer's ranking figure (red) and
    accumulated rmse/scale (blue). TF's isolated and accumulated rmse/scale share one scale; the
    quantizer's added cosine loss is another unit, so it gets its own."""
    shown = layers[:limit]
    red_key, red_name = ((ADDED_COSINE_LOSS, "added cosine loss") if ranked_by == ADDED_COSINE_LOSS
                         else ("isolated", "isolated"))
    if red_key == "isolated":
        both = _log_scale([v for x in shown for v in (x.get("isolated"), x.get("accumulated"))], 0.1)
        red = blue = both
    else:
        red = _log_scale([x.get(red_key) for x in shown], None)
        blue = _log_scale([x.get("accumulated") for x in shown], 0.1)
    if red is None and blue is None:
        return ""
    label_w, bar_w, row_h = 260, 420, 18

    def width(v: Any, scale: tuple[float, float, float] | None) -> float:
        if scale is None or not _finite(v) or v <= 0:
            return 0.0
        return max(1.0, bar_w * (math.log10(v) - math.log10(scale[0])) / scale[2])

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
             f'height="{row_h * len(shown) + 24}" role="img" aria-label="per-layer quantization error">']
    for i, x in enumerate(shown):
        y = i * row_h + 4
        name = html.escape(str(x.get("label") or x.get("tensor"))[:40])
        mark = " (float)" if x.get("float") else ""
        parts.append(f'<text x="0" y="{y + 11}" font-size="11">{name}{mark}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{width(x.get(red_key), red):.1f}" height="7" '
                     f'fill="#d50000"><title>{red_name} {x.get(red_key)}</title></rect>')
        parts.append(f'<rect x="{label_w}" y="{y + 8}" width="{width(x.get("accumulated"), blue):.1f}" height="7" '
                     f'fill="#2962ff"><title>accumulated {x.get("accumulated")}</title></rect>')
        own = x.get(red_key)
        parts.append(f'<text x="{label_w + bar_w + 4}" y="{y + 11}" font-size="10">'
                     f'{own:.3g}</text>' if _finite(own) else "")
    if red is blue:
        legend = f"red: isolated, blue: accumulated rmse/scale (log scale, {red[0]:.2g} to {red[1]:.3g})"
    else:
        legend = "; ".join(f"{colour}: {what} (log scale, {sc[0]:.2g} to {sc[1]:.3g})" for colour, what, sc in
                           (("red", red_name, red), ("blue", "accumulated rmse/scale", blue)) if sc is not None)
    parts.append(f'<text x="{label_w}" y="{row_h * len(shown) + 20}" font-size="10">{legend}</text></svg>')
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
                    "message": (d.get("search") or {}).get("message", ""), "svg": _bars(layers, limit, metric(d)),
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
