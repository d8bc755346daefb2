"""The AI Edge Quantizer as a tool: a recipe applied to a float `.tflite`, no TensorFlow.

Two jobs, both run in a converter worker started without TensorFlow (`pool.py`, light):
`calibrate` records activation ranges from the representative data once per float model and
data (pipeline/quantize.py keys and shares it), `make` builds the recipe, quantizes and says
what the recipe did (ops quantized per kind, why a row is no smaller than its float model).
Recipes come from the package (`ai_edge_quantizer.recipe`), never a copy of them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.convert.tools.float_model import (
    FloatModel,
    QuantizerInputError,
    QuantizerUnsupported,
    prepare,
    quantized_ops,
    summary,
)

NAME = "quantizer"


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("ai-edge-quantizer")


def warm(job: dict | None = None) -> dict:
    """Import the package now (a worker job, so the first recipe does not pay it)."""
    import ai_edge_quantizer  # noqa: F401

    return {"version": version()}


def recipe_names() -> list[str]:
    """The recipe functions the installed package offers (`recipe.dynamic_wi8_afp32()`, ...)."""
    from ai_edge_quantizer import recipe

    skip = {"AlgorithmName", "QuantGranularity", "TFLOperationName"}
    return sorted(n for n in dir(recipe) if not n.startswith("_") and n not in skip
                  and callable(getattr(recipe, n)) and getattr(recipe, n).__module__ == recipe.__name__)


def _base_recipe(spec: dict[str, Any]) -> list | None:
    from ai_edge_quantizer import recipe

    if spec.get("recipe_json") is not None:
        return spec["recipe_json"]
    name = spec.get("recipe")
    if not name:
        return None
    names = recipe_names()
    if name not in names:
        raise QuantizerInputError(f"unknown quantizer recipe {name!r}; choose from {', '.join(names)} "
                                  "or give a recipe .json file")
    return getattr(recipe, name)()


def _add_rule(q, rule: dict[str, Any]) -> None:
    from ai_edge_quantizer import algorithm_manager, qtyping

    op = rule["operation"]
    op_name = qtyping.TFLOperationName.ALL_SUPPORTED if op == "*" else op
    if rule["mode"] == "float":
        q.update_quantization_recipe(regex=rule["regex"], operation_name=op_name,
                                     algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
        return
    gran = qtyping.QuantGranularity[rule["granularity"]]
    if rule["mode"] == "dynamic":
        q.add_dynamic_config(rule["regex"], op_name, rule["weight_bits"], gran)
    elif rule["mode"] == "weight_only":
        q.add_weight_only_config(rule["regex"], op_name, rule["weight_bits"], gran)
    else:
        q.add_static_config(rule["regex"], op_name, rule["activation_bits"], rule["weight_bits"], gran)


def _check_rules_match(fm: FloatModel, rules: list[dict[str, Any]]) -> None:
    """A rule whose regex names no op is a typo: say so instead of quantizing nothing."""
    from ai_edge_litert.tools import flatbuffer_utils as fb
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tu

    model = fb.read_model_from_bytearray(bytearray(fm.data))
    sg = model.subgraphs[0]
    scopes = [(fb.opcode_to_name(model, op.opcodeIndex), tu.get_op_scope(op, sg.tensors)) for op in sg.operators]
    for i, rule in enumerate(rules):
        try:
            pattern = re.compile(rule["regex"])
        except re.error as exc:
            raise QuantizerInputError(f"quantizer rules[{i}]: regex {rule['regex']!r} does not compile: {exc}") from None
        hit = [s for kind, s in scopes if (rule["operation"] in ("*", kind)) and pattern.search(s)]
        if not hit:
            example = scopes[0][1][:60] if scopes else ""
            raise QuantizerInputError(
                f"quantizer rules[{i}]: regex {rule['regex']!r} on operation {rule['operation']!r} matches "
                f"no op; op names look like {example!r}")


def _quantizer(fm: FloatModel, spec: dict[str, Any]):
    from ai_edge_quantizer import quantizer

    base = _base_recipe(spec)
    q = quantizer.Quantizer(bytearray(fm.data), base)
    if spec.get("rules"):
        _check_rules_match(fm, spec["rules"])
        for rule in spec["rules"]:
            _add_rule(q, rule)
    return q


def _calibration_data(fm: FloatModel, rep_path: str, count: int) -> dict[str, list[dict[str, np.ndarray]]]:
    """Representative samples fed by input name to the model's (or the added) signature."""
    with np.load(rep_path, allow_pickle=False) as data:
        arrays = [data[str(i)] for i in range(len(fm.input_names)) if str(i) in data.files]
    if len(arrays) != len(fm.input_names) or not len(arrays[0]):
        raise QuantizerInputError("a static recipe needs representative data for every input; "
                                  "give the model samples or representative data")
    n = min(len(arrays[0]), count)
    return {fm.signature_key: [{name: a[i:i + 1].astype(np.float32) if a.dtype.kind == "f" else a[i:i + 1]
                                for name, a in zip(fm.input_names, arrays, strict=True)} for i in range(n)]}


def save_qsvs(qsvs: dict[str, dict[str, Any]], path: Path) -> None:
    arrays, index = {}, {}
    for i, (tensor, fields) in enumerate(sorted(qsvs.items())):
        index[tensor] = {}
        for key, value in fields.items():
            arrays[f"{i}:{key}"] = np.asarray(value)
            index[tensor][key] = f"{i}:{key}"
    from harness.convert.cache import savez_atomic

    savez_atomic(  # a unique temporary name: runs may share a cache
        path, __index__=np.frombuffer(json.dumps(index).encode(), dtype=np.uint8), **arrays)


def load_qsvs(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        index = json.loads(bytes(data["__index__"]).decode())
        return {t: {k: data[v] for k, v in fields.items()} for t, fields in index.items()}


def calibrate(job: dict) -> dict:
    """Record the float model's tensor ranges on the representative data (static recipes)."""
    from ai_edge_quantizer import quantizer, recipe

    t0 = time.perf_counter()
    fm = prepare(Path(job["float_path"]).read_bytes())
    q = quantizer.Quantizer(bytearray(fm.data), recipe.static_wi8_ai8())  # records every tensor's min/max
    qsvs = q.calibrate(_calibration_data(fm, job["rep_path"], int(job.get("count", 100))), num_threads=1)
    save_qsvs(qsvs, Path(job["out_path"]))
    return {"calibrate_s": time.perf_counter() - t0, "tensors": len(qsvs)}


def make(job: dict, loaded: Any = None) -> dict:
    """Quantize the float model at job['float_path'] with job['quantizer'] into job['out_path']."""
    from harness.core.quantizer_recipes import describe

    spec = job["quantizer"]
    t0 = time.perf_counter()
    float_data = Path(job["float_path"]).read_bytes()
    fm = prepare(float_data)
    q = _quantizer(fm, spec)
    calibration = None
    if q.need_calibration:
        if job.get("calibration") and Path(job["calibration"]).is_file():
            calibration = load_qsvs(Path(job["calibration"]))
        elif job.get("rep_path"):
            calibration = q.calibrate(_calibration_data(fm, job["rep_path"], int(job.get("count", 100))),
                                      num_threads=1)
        else:
            raise QuantizerInputError("a static recipe needs calibration data; give the model samples or "
                                      "representative data")
    try:
        result = q.quantize(calibration, enable_progress_report=False)
    except (ValueError, AttributeError, KeyError, IndexError, NotImplementedError) as exc:
        raise QuantizerUnsupported(f"the quantizer cannot apply {describe(spec)} to this model: "
                                   f"{type(exc).__name__}: {exc}") from None
    blob = bytes(result.quantized_model)
    convert_s = time.perf_counter() - t0
    Path(job["out_path"]).write_bytes(blob)
    counts, why = quantized_ops(blob, fm.data)
    notes = [*fm.notes, f"quantized: {summary(counts)}"]
    if len(blob) >= len(float_data):
        notes.append(f"no smaller than its float model ({len(blob):,} >= {len(float_data):,} bytes): "
                     + ("; ".join(why) + " (their float32 weights stay, and QUANTIZE/DEQUANTIZE ops are added)"
                        if why else "no op with constant float weights was quantized"
                        if not any(q for q, _ in counts.values())
                        else "scales and QUANTIZE/DEQUANTIZE ops outweigh what the weights saved"))
    return {"convert_s": convert_s, "size_bytes": len(blob), "tf_version": None,
            "tool_version": f"ai-edge-quantizer {version()}", "conversion_path": f"ai_edge_quantizer:{describe(spec)}",
            "notes": notes, "quantized_ops": counts, "float16_weights": fm.float16_weights}
