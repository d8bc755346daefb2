"""The budget search with the AI Edge Quantizer as its backend (int16 activations included).

TF 2.21's own int16x8 output is refused by LiteRT, so a budget on int16 activations cannot
use the converter's denylist. The quantizer can keep chosen ops float in a `static_wi8_ai16`
model: a `float` rule per op. `QuantizerSession` has the shape `search.run_search` drives
(`diagnosis()`, `job()`, `run_job()`, like `diagnose.DiagnoseSession`): the ranking is the
accumulated error of every op of the quantized model against the float model on LiteRT
(`tflite/tensors.py`), each op scored by how much error it adds over its inputs; each step is
a quantizer job with the chosen ops' float rules, from the one shared calibration.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError
from harness.core.flag_sets import FlagSet
from harness.pipeline.diagnose import Diagnosis, Layer, short_labels
from harness.pipeline.quantize import calibration_file, float_artifact, rep_path, state

SKIP = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "SQUEEZE", "EXPAND_DIMS"}


def float_rule(tensor: str) -> dict:
    """Keep the op whose output is TENSOR float (the quantizer matches an op's outputs + ';')."""
    return {"mode": "float", "regex": f"^{re.escape(tensor)};$", "operation": "*"}


class QuantizerSession:
    """One model under one quantizer flag set: the ranking of its ops and the search steps."""

    def __init__(self, builder, m, fs: FlagSet, p, settings):
        if not p.ok:
            raise HarnessError(f"{m.name}: preparing the model failed: {p.reason}")
        self.builder, self.model, self.flag_set, self.prepared, self.settings = builder, m, fs, p, settings
        self.state = state(builder)
        self.float_path = float_artifact(builder, self.state, m, p)
        self.rep = rep_path(m, p)
        self.calibration = (calibration_file(builder, self.state, m, fs, self.float_path, self.rep)
                            if fs.needs_representative_data and self.rep is not None else None)
        self.input_names = p.meta.input_names
        self._diagnosis: Diagnosis | None = None

    def job(self, op: str, out_path: Path, float_nodes: list[str] | tuple = (), **extra) -> dict:
        spec = dict(self.flag_set.quantizer or {})
        spec["rules"] = [*spec.get("rules", []), *(float_rule(t) for t in float_nodes)]
        return {"op": "tool", "tool": "quantizer", "float_path": str(self.float_path), "quantizer": spec,
                "calibration": str(self.calibration) if self.calibration else None,
                "rep_path": str(self.rep) if self.rep else None, "out_path": str(out_path)}

    def run_job(self, job: dict) -> dict:
        answer = self.state.pool.submit(job).result()
        if not answer.ok:
            raise HarnessError(f"{self.model.name}/{self.flag_set.name}: the quantizer failed: {answer.error}")
        return {**answer.data, "quantize_s": answer.data.get("convert_s")}

    def diagnosis(self, float_nodes: list[str] | tuple = ()) -> Diagnosis:
        if self._diagnosis is not None and not float_nodes:
            return self._diagnosis
        from ai_edge_litert.tools import flatbuffer_utils as fb

        from harness.tflite.tensors import accumulated_error

        t0 = time.perf_counter()
        out = self.builder.cache.tmp_path(".tflite")
        self.run_job(self.job("quantize", out, float_nodes))
        model = fb.read_model_from_bytearray(bytearray(out.read_bytes()))
        sg = model.subgraphs[0]

        def name(i: int) -> str:
            raw = sg.tensors[i].name
            return raw.decode() if isinstance(raw, bytes) else str(raw)

        ops = []  # (index, kind, output name, input names)
        for k, op in enumerate(sg.operators):
            kind = fb.opcode_to_name(model, op.opcodeIndex)
            if kind in SKIP or not len(op.outputs):
                continue
            ops.append((k, kind, name(op.outputs[0]), [name(i) for i in op.inputs if i >= 0]))
        wanted = {t for _, _, o, ins in ops for t in (o, *ins)}
        with np.load(self.prepared.dir / "eval.npz", allow_pickle=False) as data:
            arrays = [data[str(i)] for i in range(len(self.input_names))]
        acc = accumulated_error(self.float_path, out, wanted, self.input_names, arrays, len(arrays[0]))

        def loss(t: str) -> float:
            return 1.0 - acc[t]["cosine"] if t in acc else 0.0

        labels = short_labels([o for _, _, o, _ in ops])
        layers = [Layer(k, o, labels.get(o, o), kind, {}, acc.get(o),
                        added_cosine_loss=loss(o) - max([loss(i) for i in ins] + [0.0]))
                  for k, kind, o, ins in ops if o in acc]
        layers.sort(key=lambda x: -x.added_cosine_loss)
        diagnosis = Diagnosis(self.model.name, self.flag_set.name, layers, 0, len(arrays[0]), str(out),
                              str(self.float_path), list(float_nodes),
                              timings={"accumulated_s": time.perf_counter() - t0}, backend="quantizer")
        if not float_nodes:
            self._diagnosis = diagnosis
        return diagnosis

    def resolve_layers(self, names: list[str]) -> list[str]:
        """Tensor names for NAMES given as tensor names or short labels; a one-line error otherwise."""
        from harness.core.errors import UsageError

        layers = self.diagnosis().layers
        by_label = {x.label: x.tensor for x in layers} | {x.tensor: x.tensor for x in layers}
        missing = [n for n in names if n not in by_label]
        if missing:
            raise UsageError(f"--float-layers: {', '.join(missing)} is not an op of {self.model.name}; use a name "
                             f"from `diagnose` (worst first: {', '.join(x.label for x in layers[:8])})")
        return [by_label[n] for n in names]

    def close(self) -> None:
        self.builder.close()


# The quantizer's recipe for a converter flag set of the int8 family, for `diagnose --backend quantizer`.
EQUIVALENT = {"int8": "static_wi8_ai8", "int8_float_io": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}


def as_quantizer_flag_set(fs: FlagSet) -> FlagSet | None:
    """FS itself when it is a quantizer flag set; the quantizer's static recipe for the same
    activations (int8 or int16) when it is a full-integer converter flag set; None otherwise."""
    if fs.quantizer:
        return fs
    from harness.convert.calibration import QuantizeSpec, in_family

    if not in_family(fs.converter_options(), fs.needs_representative_data):
        return None
    recipe = "static_wi8_ai16" if QuantizeSpec.of(fs.converter_options()).activations == "int16" else "static_wi8_ai8"
    spec = {"recipe": recipe, "recipe_json": None, "recipe_file": None, "rules": []}
    return FlagSet(fs.name, {"description": f"{fs.name} through the AI Edge Quantizer ({recipe})", "quantizer": spec})
