"""Make a float `.tflite` fit for the AI Edge Quantizer, and say what a recipe did to it.

Official models are not like our conversions (mediapipe's have no SignatureDef, keep
float16 weights behind DEQUANTIZE ops, and some, like iris_landmark, store their operator
codes in the schema before 3a, where only `deprecated_builtin_code` is set). The quantizer reaches a model only through its
signatures (calibrating one without them raised IndexError) and cannot quantize a weight
it cannot read (a float16 constant behind a DEQUANTIZE is no weight to it, so the file came
back as it was). So before quantizing: add a `serving_default` signature over the subgraph's
inputs and outputs, and turn float16 weights into float32 constants (the quantizer then
quantizes from them). No TensorFlow: LiteRT's flatbuffer object API only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

FLOAT32, FLOAT16 = 0, 1
QUANT_OPS = {"QUANTIZE", "DEQUANTIZE"}


class QuantizerInputError(ValueError):
    """The float model, the recipe or its data cannot be used as given (an input_error row)."""


class QuantizerUnsupported(ValueError):
    """The quantizer cannot apply this recipe to this model (a quantization_unsupported row)."""


@dataclass
class FloatModel:
    """The bytes the quantizer gets, and what was changed to make them."""

    data: bytes
    signature_key: str
    input_names: list[str]  # the signature's input names, in subgraph input order
    notes: list[str] = field(default_factory=list)
    float16_weights: int = 0


def _name(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def prepare(data: bytes, quantize_float16: bool = True) -> FloatModel:
    """Check DATA is a float model and add what the quantizer needs (see the module doc)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(data))
    sg = model.subgraphs[0]
    scaled = [t for t in sg.tensors if t.quantization is not None and t.quantization.scale is not None
              and len(t.quantization.scale)]
    if scaled:
        raise QuantizerInputError(
            f"the model is already quantized ({len(scaled)} tensors carry quantization scales, e.g. "
            f"{_name(scaled[0].name)!r}); give the quantizer its float model")
    notes: list[str] = []
    changed = False
    if not model.signatureDefs:
        sig = schema.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [], []
        for idx, out in ((sg.inputs, sig.inputs), (sg.outputs, sig.outputs)):
            for i in idx:
                m = schema.TensorMapT()
                m.name, m.tensorIndex = sg.tensors[i].name, int(i)
                out.append(m)
        model.signatureDefs = [sig]
        notes.append("the model has no SignatureDef: calibrated and quantized through one added over its inputs")
        changed = True
    old = [c for c in model.operatorCodes if c.deprecatedBuiltinCode > c.builtinCode]
    if old:  # schema before 3a: the quantizer reads builtinCode only, and saw every op as ADD (0)
        for c in old:
            c.builtinCode = c.deprecatedBuiltinCode
        notes.append(f"{len(old)} operator codes in the old schema (deprecated_builtin_code only) upgraded, "
                     "without which the quantizer reads every op as ADD and quantizes none")
        changed = True
    halves = _float16_weights(model, fb)
    if halves and quantize_float16:
        _dequantize_float16(model, halves, fb)
        notes.append(f"{len(halves)} float16 weights (behind DEQUANTIZE) quantized from their float32 values")
        changed = True
    elif halves:
        notes.append(f"{len(halves)} float16 weights left as they were")
    sig = model.signatureDefs[0]
    by_index = {int(m.tensorIndex): _name(m.name) for m in sig.inputs}
    names = [by_index.get(int(i), _name(sg.tensors[i].name)) for i in sg.inputs]
    out = bytes(fb.convert_object_to_bytearray(model)) if changed else bytes(data)
    return FloatModel(out, _name(sig.signatureKey), names, notes, len(halves))


def _float16_weights(model, fb) -> list:
    """DEQUANTIZE ops in subgraph 0 whose input is a float16 constant."""
    sg = model.subgraphs[0]
    found = []
    for op in sg.operators:
        if fb.opcode_to_name(model, op.opcodeIndex) != "DEQUANTIZE":
            continue
        src = sg.tensors[op.inputs[0]]
        buf = model.buffers[src.buffer] if src.buffer else None
        if src.type == FLOAT16 and buf is not None and buf.data is not None and len(buf.data):
            found.append(op)
    return found


def _dequantize_float16(model, ops: list, fb) -> None:
    """Each float16 weight becomes a float32 constant read by its DEQUANTIZE's consumers; the
    op and its output tensor go (a tensor left without data makes calibration fail)."""
    sg = model.subgraphs[0]
    replace: dict[int, int] = {}
    for op in ops:
        src_i, dst_i = int(op.inputs[0]), int(op.outputs[0])
        src = sg.tensors[src_i]
        buf = model.buffers[src.buffer]
        buf.data = np.frombuffer(bytes(buf.data), dtype=np.float16).astype(np.float32).view(np.uint8)
        src.type = FLOAT32
        replace[dst_i] = src_i
        sg.operators.remove(op)
    keep = [i for i in range(len(sg.tensors)) if i not in replace]
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(i) -> int:
        i = int(i)
        return -1 if i < 0 else new_index[replace.get(i, i)]

    for op in sg.operators:
        op.inputs = [remap(i) for i in op.inputs]
        op.outputs = [remap(i) for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [remap(i) for i in op.intermediates]
    sg.inputs = [remap(i) for i in sg.inputs]
    sg.outputs = [remap(i) for i in sg.outputs]
    for sig in model.signatureDefs or []:
        for m in [*sig.inputs, *sig.outputs]:
            m.tensorIndex = remap(m.tensorIndex)
    sg.tensors = [sg.tensors[i] for i in keep]


WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "EMBEDDING_LOOKUP", "BATCH_MATMUL",
            "TRANSPOSE_CONV", "CONV_3D")


def quantized_ops(data: bytes, float_data: bytes) -> tuple[dict[str, list[int]], list[str]]:
    """{op kind: [quantized, of]} for the ops the float model had, and why some were left.

    An op counts as quantized when it computes in integers (an output with scales: static
    recipes) or reads a quantized constant, directly (dynamic) or through a DEQUANTIZE
    (weight-only). An op kept float that reads dequantized activations does not count."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(data))
    floats = fb.read_model_from_bytearray(bytearray(float_data))
    total = Counter(fb.opcode_to_name(floats, op.opcodeIndex) for op in floats.subgraphs[0].operators)
    sg = model.subgraphs[0]

    def scaled(i: int) -> bool:
        q = sg.tensors[i].quantization  # per-tensor/channel scales, or blockwise details (their own tensor)
        return q is not None and (q.details is not None or q.scale is not None and len(q.scale) > 0)

    def constant(i: int) -> bool:
        buf = model.buffers[sg.tensors[i].buffer] if sg.tensors[i].buffer else None
        return buf is not None and buf.data is not None and len(buf.data) > 0

    weights = set()  # quantized constants, and what a DEQUANTIZE makes of them
    for op in sg.operators:
        if fb.opcode_to_name(model, op.opcodeIndex) == "DEQUANTIZE" and constant(op.inputs[0]) and scaled(op.inputs[0]):
            weights.add(int(op.outputs[0]))
    done: Counter = Counter()
    for op in sg.operators:
        kind = fb.opcode_to_name(model, op.opcodeIndex)
        if kind in QUANT_OPS:
            continue
        reads = any(i >= 0 and (int(i) in weights or constant(i) and scaled(i)) for i in op.inputs)
        if reads or any(i >= 0 and scaled(i) for i in op.outputs):
            done[kind] += 1
    counts = {k: [min(done.get(k, 0), n), n] for k, n in sorted(total.items()) if k not in QUANT_OPS}
    return counts, _why_float(floats, fb, counts)


def _why_float(floats, fb, counts: dict[str, list[int]]) -> list[str]:
    """For weighted op kinds left float: how many, and whether their weights were constants."""
    sg = floats.subgraphs[0]
    why = []
    for kind, (q, n) in counts.items():
        if q == n or kind not in WEIGHTED:
            continue
        computed = 0
        for op in sg.operators:
            if fb.opcode_to_name(floats, op.opcodeIndex) != kind or len(op.inputs) < 2:
                continue
            w = sg.tensors[op.inputs[1]]
            buf = floats.buffers[w.buffer] if w.buffer else None
            if buf is None or buf.data is None or not len(buf.data):
                computed += 1
        text = f"{n - q} of {n} {kind} left float"
        if computed:
            text += f" ({computed} take weights that are computed, not constants)"
        why.append(text)
    return why


def summary(counts: dict[str, list[int]]) -> str:
    """'FULLY_CONNECTED 2/2, CONV_2D 1/1, DEPTHWISE_CONV_2D 0/17': quantized kinds and weighted ones."""
    parts = [f"{k} {q}/{n}" for k, (q, n) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
             if q or k in WEIGHTED]
    return ", ".join(parts) if parts else "no op"
