"""What a read `.tflite` holds, as frozen dataclasses (`file.py` reads them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Ops that convert between float and quantized by design; listing them as "float ops in a
# quantized model" would flag every model with float inputs or outputs.
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
_QUANTIZED_DTYPES = frozenset({"int8", "uint8", "int16"})
_DERIVED = (
    "op_names",
    "custom_ops",
    "flex_ops",
    "is_quantized",
    "float_ops_in_quantized",
    "min_runtime_version",
)


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples serialize as lists)."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Quantization(_Record):
    """Affine quantization of a tensor (per-tensor when there is a single scale)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int


@dataclass(frozen=True)
class TensorInfo(_Record):
    """One tensor of subgraph 0; `buffer_bytes` is its constant data size (0 for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    dtype: str
    quantization: Quantization | None
    buffer_bytes: int


@dataclass(frozen=True)
class OperatorUse(_Record):
    """How often one operator (name, version) occurs; kind is builtin, custom or flex."""

    name: str
    version: int
    count: int
    kind: str


@dataclass(frozen=True)
class SignatureInfo(_Record):
    """A signature: input/output names mapped to tensor indices of `subgraph_index`."""

    key: str
    inputs: dict[str, int]
    outputs: dict[str, int]
    subgraph_index: int


@dataclass(frozen=True)
class TFLiteModel:
    """What a `.tflite` file holds; tensor-level fields describe subgraph 0 (the main one)."""

    path: str | None
    size_bytes: int
    schema_version: int
    description: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorUse, ...]
    operator_sequence: tuple[str, ...]
    signatures: tuple[SignatureInfo, ...]
    metadata: dict[str, bytes]
    num_subgraphs: int
    weights_bytes: int
    # Per operator of subgraph 0: (input tensor indices, output tensor indices); -1 = absent.
    operator_io: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = field(default=(), repr=False)

    @property
    def op_names(self) -> list[str]:
        return sorted({op.name for op in self.operators})

    @property
    def custom_ops(self) -> list[str]:
        """Custom ops other than Flex ones: they need a registered kernel to run at all."""
        return sorted({op.name for op in self.operators if op.kind == "custom"})

    @property
    def flex_ops(self) -> list[str]:
        """Flex (select TF) ops: they need the Flex delegate, absent from plain runtimes."""
        return sorted({op.name for op in self.operators if op.kind == "flex"})

    @property
    def is_quantized(self) -> bool:
        return any(
            t.dtype in _QUANTIZED_DTYPES and t.quantization is not None for t in self.tensors
        )

    @property
    def float_ops_in_quantized(self) -> list[tuple[int, str]]:
        """Ops of subgraph 0 touching float32 tensors in a quantized model, as (index, name).

        These are the ops that stayed float (or hybrid) after quantization, which is where
        latency and accuracy surprises come from. QUANTIZE/DEQUANTIZE are left out: they
        are float on one side by definition. Empty for models without quantized tensors.
        """
        if not self.is_quantized:
            return []
        found = []
        for i, (name, (ins, outs)) in enumerate(
            zip(self.operator_sequence, self.operator_io, strict=False)
        ):
            if name in _BOUNDARY_OPS:
                continue
            if any(t >= 0 and self.tensors[t].dtype == "float32" for t in ins + outs):
                found.append((i, name))
        return found

    @property
    def min_runtime_version(self) -> str | None:
        raw = self.metadata.get("min_runtime_version")
        if raw is None:
            return None
        return raw.rstrip(b"\x00").decode("utf-8", errors="replace") or None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary plus the derived properties; metadata values become sizes."""
        d = asdict(self)
        del d["operator_io"]
        d["metadata"] = {k: len(v) for k, v in self.metadata.items()}
        for name in _DERIVED:
            d[name] = getattr(self, name)
        return d
