"""Read a `.tflite` flatbuffer without TensorFlow.

The CLI and the reports need a model's ops, tensors, signatures and metadata, and must start
fast, so this module imports only the stdlib, and on the first read the flatbuffer schema that
ships in the `ai-edge-litert` wheel (`ai_edge_litert.schema_py_generated`, which pulls in
`flatbuffers` and numpy). TensorFlow is never imported.

Files reach this module from users and from fuzzing tests, so every kind of bad input (empty,
truncated, random, wrong identifier, garbage offsets) ends as one `TFLiteFormatError` naming
the file and the problem. The generated accessors do no bounds checking, so every vector
length is checked against the file size and the total number of elements read is capped:
garbage lengths can neither allocate huge arrays nor loop for minutes.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from collections.abc import Callable
from typing import Any

from harness.tflite.model import (  # noqa: F401 - re-exported: the public names of a read model
    OperatorUse,
    Quantization,
    SignatureInfo,
    TensorInfo,
    TFLiteModel,
)

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3


class TFLiteFormatError(ValueError):
    """A file is not a readable TFLite model; the message is one line naming file and fault."""


@functools.cache
def _schema() -> Any:
    """Import the generated schema on first use, so importing this module stays cheap."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise ImportError(
            "reading .tflite files needs ai_edge_litert.schema_py_generated from the "
            "'ai-edge-litert' package (tflite_runtime does not ship the schema); "
            "pip install ai-edge-litert"
        ) from exc
    return schema_py_generated


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if k.isupper() and isinstance(v, int)}


class _Bad(Exception):
    """A specific, already-worded structural fault found while parsing."""


class _Reader:
    """Parses one model, checking every length the generated accessors would trust."""

    def __init__(self, data: bytes) -> None:
        self.s = _schema()
        self.data = data
        # Elements we are willing to read: a valid file stores each element in >= 1 byte.
        self.budget = len(data) + 4096
        self.builtin_names = _enum_names(self.s.BuiltinOperator)
        self.dtype_names = _enum_names(self.s.TensorType)

    def count(self, obj: Any, field_name: str, elem_size: int = 4) -> int:
        """A vector's length, refused if the file cannot hold it or the budget is spent.

        Byte vectors (elem_size 1) are only viewed, never walked, so they cost no budget.
        """
        n = getattr(obj, field_name + "Length")()
        if n < 0 or n * elem_size > len(self.data):
            raise _Bad(f"{field_name} vector length {n} exceeds the file size")
        self.budget -= n + 1 if elem_size > 1 else 1
        if self.budget < 0:
            raise _Bad("vectors are larger than the file could hold (corrupt offsets)")
        return n

    def ints(self, obj: Any, field_name: str, cast: Callable[[Any], Any] = int) -> tuple:
        if getattr(obj, field_name + "IsNone")():
            return ()
        self.count(obj, field_name)
        return tuple(cast(x) for x in getattr(obj, field_name + "AsNumpy")())

    def buffer_view(self, buf: Any, index: int) -> Any:
        """The bytes of one buffer, inline or (large-model style) at an offset in the file."""
        offset, size = buf.Offset(), buf.Size()
        if offset > 1:  # 0 = inline data, 1 = placeholder the serializer leaves
            if offset + size > len(self.data):
                raise _Bad(f"buffer {index} data lies past the end of the file (truncated?)")
            return memoryview(self.data)[offset : offset + size]
        if buf.DataIsNone():
            return memoryview(b"")
        self.count(buf, "Data", 1)
        return buf.DataAsNumpy()  # a bounds-checked view, no copy

    def op_code(self, code: Any) -> tuple[str, int, str]:
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == self.s.BuiltinOperator.CUSTOM:
            custom = _text(code.CustomCode()) or "CUSTOM"
            return custom, code.Version(), "flex" if custom.startswith("Flex") else "custom"
        return (
            self.builtin_names.get(builtin, f"UNKNOWN_BUILTIN_{builtin}"),
            code.Version(),
            "builtin",
        )

    def tensor(self, index: int, t: Any, buffer_sizes: list[int]) -> TensorInfo:
        q = t.Quantization()
        quant = None
        if q is not None and not q.ScaleIsNone() and q.ScaleLength() > 0:
            quant = Quantization(
                self.ints(q, "Scale", float), self.ints(q, "ZeroPoint"), int(q.QuantizedDimension())
            )
        buffer_index = t.Buffer()
        if not 0 <= buffer_index < max(len(buffer_sizes), 1):
            raise _Bad(f"tensor {index} refers to buffer {buffer_index} of {len(buffer_sizes)}")
        type_code = t.Type()
        return TensorInfo(
            index=index,
            name=_text(t.Name()),
            shape=self.ints(t, "Shape"),
            shape_signature=None if t.ShapeSignatureIsNone() else self.ints(t, "ShapeSignature"),
            dtype=self.dtype_names.get(type_code, f"unknown{type_code}").lower(),
            quantization=quant,
            buffer_bytes=buffer_sizes[buffer_index] if buffer_sizes else 0,
        )

    def tensor_indices(
        self, obj: Any, field_name: str, n_tensors: int, where: str
    ) -> tuple[int, ...]:
        indices = self.ints(obj, field_name)
        for i in indices:
            if not -1 <= i < n_tensors:
                raise _Bad(f"{where} refers to tensor {i} of {n_tensors}")
        return indices

    def parse(self, path: str | None) -> TFLiteModel:
        s = self.s
        model = s.Model.GetRootAs(self.data, 0)
        version = model.Version()
        if version != SCHEMA_VERSION:
            raise _Bad(f"schema version is {version}, expected {SCHEMA_VERSION}")

        buffers = [model.Buffers(i) for i in range(self.count(model, "Buffers"))]
        views = [self.buffer_view(b, i) for i, b in enumerate(buffers)]
        buffer_sizes = [len(v) for v in views]

        codes = [
            self.op_code(model.OperatorCodes(i)) for i in range(self.count(model, "OperatorCodes"))
        ]
        num_subgraphs = self.count(model, "Subgraphs")
        if num_subgraphs == 0:
            raise _Bad("model has no subgraphs")

        uses: dict[tuple[str, int], list[Any]] = {}
        sequence: list[str] = []
        operator_io: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        tensors: tuple[TensorInfo, ...] = ()
        main_inputs: tuple[int, ...] = ()
        main_outputs: tuple[int, ...] = ()
        for g in range(num_subgraphs):
            sub = model.Subgraphs(g)
            if g == 0:
                tensors = tuple(
                    self.tensor(i, sub.Tensors(i), buffer_sizes)
                    for i in range(self.count(sub, "Tensors"))
                )
                main_inputs = self.tensor_indices(sub, "Inputs", len(tensors), "subgraph 0 input")
                main_outputs = self.tensor_indices(
                    sub, "Outputs", len(tensors), "subgraph 0 output"
                )
            for k in range(self.count(sub, "Operators")):
                op = sub.Operators(k)
                opcode = op.OpcodeIndex()
                if not 0 <= opcode < len(codes):
                    raise _Bad(f"subgraph {g} operator {k} uses opcode {opcode} of {len(codes)}")
                name, op_version, kind = codes[opcode]
                uses.setdefault((name, op_version), [kind, 0])[1] += 1
                if g == 0:
                    sequence.append(name)
                    where = f"operator {k} ({name})"
                    operator_io.append(
                        (
                            self.tensor_indices(op, "Inputs", len(tensors), where),
                            self.tensor_indices(op, "Outputs", len(tensors), where),
                        )
                    )
        if any(i < 0 for i in main_inputs + main_outputs):
            raise _Bad("subgraph 0 lists tensor -1 as an input or output")

        signatures = []
        for i in range(self.count(model, "SignatureDefs")):
            sig = model.SignatureDefs(i)
            maps = []
            for side in ("Inputs", "Outputs"):
                get = getattr(sig, side)
                entries = (get(j) for j in range(self.count(sig, side)))
                maps.append({_text(m.Name()): int(m.TensorIndex()) for m in entries})
            graph = int(sig.SubgraphIndex())
            if not 0 <= graph < num_subgraphs:
                raise _Bad(f"signature {i} refers to subgraph {graph} of {num_subgraphs}")
            if graph == 0 and any(not 0 <= t < len(tensors) for m in maps for t in m.values()):
                raise _Bad(f"signature {i} refers to a tensor outside subgraph 0")
            signatures.append(SignatureInfo(_text(sig.SignatureKey()), maps[0], maps[1], graph))

        metadata, metadata_buffers = {}, set()
        for i in range(self.count(model, "Metadata")):
            entry = model.Metadata(i)
            index = entry.Buffer()
            if not 0 <= index < len(views):
                raise _Bad(f"metadata {i} refers to buffer {index} of {len(views)}")
            metadata[_text(entry.Name())] = bytes(views[index])
            metadata_buffers.add(index)

        return TFLiteModel(
            path=path,
            size_bytes=len(self.data),
            schema_version=version,
            description=_text(model.Description()),
            inputs=tuple(tensors[i] for i in main_inputs),
            outputs=tuple(tensors[i] for i in main_outputs),
            tensors=tensors,
            operators=tuple(OperatorUse(n, v, c, k) for (n, v), (k, c) in uses.items()),
            operator_sequence=tuple(sequence),
            signatures=tuple(signatures),
            metadata=metadata,
            num_subgraphs=num_subgraphs,
            weights_bytes=sum(n for i, n in enumerate(buffer_sizes) if i not in metadata_buffers),
            operator_io=tuple(operator_io),
        )


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", errors="replace")


def read_tflite(source: str | os.PathLike[str] | bytes | bytearray | memoryview | mmap.mmap) -> TFLiteModel:
    """Parse a `.tflite` file (path) or its bytes, after `verify.py` has checked its structure.

    A path is mapped, not read: only the pages the structure occupies are loaded, so a large
    file costs what its graph costs. Raises TFLiteFormatError for any content that is not a
    readable model (the verifier's finding, naming the file); a missing or unreadable path
    raises the usual OSError, as that is not a fault of the content.
    """
    from harness.tflite.verify import mapped

    if isinstance(source, (bytes, mmap.mmap)):
        return _read(source, None, "<bytes>")
    if isinstance(source, (bytearray, memoryview)):
        return _read(bytes(source), None, "<bytes>")
    path = os.fspath(source)
    with mapped(path) as data:
        return _read(data, path, path)


def _read(data: Any, path: str | None, label: str) -> TFLiteModel:
    from harness.tflite.verify import VerifyError, verify_buffer

    def fail(what: str, fix: str = "re-export the model") -> TFLiteFormatError:
        return TFLiteFormatError(f"{label}: {what}; {fix}")

    if not len(data):
        raise fail("file is empty, not a TFLite flatbuffer")
    try:
        verify_buffer(data)
    except VerifyError as exc:
        raise fail(str(exc), exc.fix) from None
    reader = _Reader(data)
    try:
        return reader.parse(path)
    except _Bad as exc:
        raise fail(f"corrupt TFLite flatbuffer ({exc})") from None
    except (struct.error, IndexError, OverflowError) as exc:
        raise fail("corrupt TFLite flatbuffer (an offset points outside the file)") from exc
    except Exception as exc:  # noqa: BLE001 - any accessor failure means garbage offsets
        # The accessors report bad offsets as TypeError ("bad number") or ValueError (numpy).
        detail = " ".join(str(exc).split())[:120]
        raise fail(f"corrupt TFLite flatbuffer ({type(exc).__name__}: {detail})") from exc


def op_names(source: str | os.PathLike[str] | bytes) -> list[str]:
    """Sorted distinct operator names of a model (builtin names and custom codes)."""
    return read_tflite(source).op_names
