"""Check a `.tflite` before any native code sees it: a bounded, pure-Python flatbuffers verifier.

LiteRT's C++ code (the Interpreter, the model analyzer, the quantizer) trusts the offsets
in a file once the flatbuffers verifier passed it, and the Python bindings do not always
run that verifier: a zeroed region made the analyzer segfault inside `inspect`. Python
flatbuffers has no verifier, so this module does what the generated C++ `Verify()` methods
do, driven by the schema's layouts (`schema_layout.py`):

- the buffer is smaller than 2 GiB (flatbuffers' limit), or larger only when its weights
  live outside the flatbuffer (large-model format), and the flatbuffer part is then checked
  within its first 2 GiB;
- every table's soffset and vtable lie in the file, aligned; every field lies in the file,
  aligned to its width; every offset is positive and lands in the file;
- every vector's length fits the file; strings are NUL-terminated inside the file;
- union members are verified as the table their type names (unknown types are skipped, as
  the C++ verifier does);
- nesting depth is capped at 64 and tables visited at 1,000,000 (the C++ defaults), so a
  crafted DAG cannot make the check run for minutes;

then the TFLite-level indices that the C++ loader would follow: opcode indices, tensor
indices of every subgraph's inputs, outputs and operators, tensor buffer indices, signature
subgraph indices, and buffers stored outside the flatbuffer lying inside the file.

It reads with `struct.unpack_from` on a `memoryview` or `mmap`, so a sparse 4 GiB file is
answered from the few pages the structure occupies.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.tflite.schema_layout import (
    SCALAR,
    STRING,
    TABLE,
    UNION,
    VEC_SCALAR,
    VEC_STRING,
    VEC_TABLE,
    SchemaLayout,
    tflite_layout,
)

MAX_FLATBUFFER = (1 << 31) - 1  # FLATBUFFERS_MAX_BUFFER_SIZE
MAX_DEPTH = 64
MAX_TABLES = 1_000_000
_U32, _I32, _U16, _I64 = struct.Struct("<I"), struct.Struct("<i"), struct.Struct("<H"), struct.Struct("<q")


class VerifyError(ValueError):
    """The file would fail the flatbuffers verifier; the message says where and why, `fix` what to do."""

    def __init__(self, what: str, fix: str = "re-export the model") -> None:
        super().__init__(what)
        self.fix = fix


def gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


class _Verifier:
    def __init__(self, buf: Any, size: int, layout: SchemaLayout) -> None:
        self.buf, self.size, self.layout = buf, size, layout
        self.tables = 0

    def need(self, pos: int, n: int, align: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise VerifyError(f"{what} at byte {pos} (+{n}) lies outside the {self.size}-byte flatbuffer")
        if align > 1 and pos % align:
            raise VerifyError(f"{what} at byte {pos} is not {align}-byte aligned")

    def offset(self, pos: int, what: str) -> int:
        """The target of the uoffset stored at `pos`."""
        self.need(pos, 4, 4, what)
        o = _U32.unpack_from(self.buf, pos)[0]
        if o == 0 or o >= 1 << 31:
            raise VerifyError(f"{what} at byte {pos} has offset {o}")
        target = pos + o
        self.need(target, 1, 1, what)
        return target

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        """(first element position, length) of the vector at `pos`."""
        self.need(pos, 4, 4, f"{what} length")
        n = _U32.unpack_from(self.buf, pos)[0]
        if n * elem > self.size:
            raise VerifyError(f"{what} has {n} elements, more than the {self.size}-byte file can hold")
        self.need(pos + 4, n * elem, 1, what)  # like the C++ verifier: elements are not alignment-checked
        return pos + 4, n

    def string(self, pos: int, what: str) -> None:
        start, n = self.vector(pos, 1, what)
        self.need(start + n, 1, 1, f"{what} terminator")
        if self.buf[start + n] != 0:
            raise VerifyError(f"{what} at byte {pos} is not NUL-terminated")

    def table(self, pos: int, cls: str, depth: int) -> dict[str, int]:
        """Verify the table at `pos`; return the positions of its present fields by name."""
        self.tables += 1
        if depth > MAX_DEPTH:
            raise VerifyError(f"tables nest deeper than {MAX_DEPTH} levels")
        if self.tables > MAX_TABLES:
            raise VerifyError(f"more than {MAX_TABLES:,} tables (a crafted or corrupt file)")
        self.need(pos, 4, 4, f"{cls} table")
        vt = pos - _I32.unpack_from(self.buf, pos)[0]
        self.need(vt, 2, 2, f"{cls} vtable")
        vsize = _U16.unpack_from(self.buf, vt)[0]
        if vsize & 1:
            raise VerifyError(f"{cls} vtable at byte {vt} has odd size {vsize}")
        self.need(vt, vsize, 2, f"{cls} vtable")  # fields past vsize are absent, as in C++
        present: dict[str, int] = {}
        for f in self.layout.tables.get(cls, ()):
            if f.slot + 2 > vsize:
                continue
            fo = _U16.unpack_from(self.buf, vt + f.slot)[0]
            if fo == 0:
                continue
            at, what = pos + fo, f"{cls}.{f.name}"
            present[f.name] = at
            if f.kind == SCALAR:
                self.need(at, f.size, f.size, what)
                continue
            target = self.offset(at, what)
            if f.kind == TABLE:
                self.table(target, f.target, depth + 1)
            elif f.kind == STRING:
                self.string(target, what)
            elif f.kind == VEC_SCALAR:
                self.vector(target, f.size, what)
            elif f.kind == VEC_STRING:
                start, n = self.vector(target, 4, what)
                for i in range(n):
                    self.string(self.offset(start + 4 * i, f"{what}[{i}]"), f"{what}[{i}]")
            elif f.kind == VEC_TABLE:
                start, n = self.vector(target, 4, what)
                for i in range(n):
                    self.table(self.offset(start + 4 * i, f"{what}[{i}]"), f.target, depth + 1)
            elif f.kind == UNION:
                member = self.union_member(pos, vt, vsize, f)
                if member:
                    self.table(target, member, depth + 1)
        return present

    def union_member(self, pos: int, vt: int, vsize: int, f: Any) -> str:
        if f.type_slot + 2 > vsize:
            return ""
        to = _U16.unpack_from(self.buf, vt + f.type_slot)[0]
        if to == 0:
            return ""
        self.need(pos + to, 1, 1, f"{f.name} type")
        return self.layout.unions.get(f.target, {}).get(self.buf[pos + to], "")


class _Walk:
    """Typed reads of fields that `_Verifier.table` has already checked."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf

    def u32(self, fields: dict[str, int], name: str, default: int = 0) -> int:
        return _U32.unpack_from(self.buf, fields[name])[0] if name in fields else default

    def i64(self, fields: dict[str, int], name: str) -> int:
        return _I64.unpack_from(self.buf, fields[name])[0] if name in fields else 0

    def vec(self, fields: dict[str, int], name: str) -> tuple[int, int]:
        if name not in fields:
            return 0, 0
        at = fields[name] + _U32.unpack_from(self.buf, fields[name])[0]
        return at + 4, _U32.unpack_from(self.buf, at)[0]

    def ints(self, fields: dict[str, int], name: str) -> memoryview:
        start, n = self.vec(fields, name)
        return memoryview(self.buf)[start : start + 4 * n].cast("B").cast("i") if n else memoryview(b"").cast("i")

    def tables(self, fields: dict[str, int], name: str) -> Iterator[int]:
        start, n = self.vec(fields, name)
        for i in range(n):
            p = start + 4 * i
            yield p + _U32.unpack_from(self.buf, p)[0]


def _check_indices(buf: Any, file_size: int, v: _Verifier, model: dict[str, int]) -> bool:
    """The TFLite indices the loader follows; True when a buffer lies outside the flatbuffer."""
    w = _Walk(buf)
    n_codes = w.vec(model, "OperatorCodes")[1]
    n_buffers = w.vec(model, "Buffers")[1]
    external = False
    for i, b in enumerate(w.tables(model, "Buffers")):
        f = v.table(b, "Buffer", 1)
        offset, length = w.i64(f, "Offset"), w.i64(f, "Size")
        if offset > 1:
            external = True
            if length < 0 or offset + length > file_size:
                raise VerifyError(f"buffer {i} data ({length} bytes at byte {offset}) lies past the end of the "
                                  f"{file_size}-byte file (truncated?)")
    subgraphs = list(w.tables(model, "Subgraphs"))
    if not subgraphs:
        raise VerifyError("the model has no subgraphs")
    for g, sp in enumerate(subgraphs):
        sub = v.table(sp, "SubGraph", 1)
        tensors = list(w.tables(sub, "Tensors"))
        n = len(tensors)
        for t, tp in enumerate(tensors):
            bi = w.u32(v.table(tp, "Tensor", 2), "Buffer")
            if bi >= max(n_buffers, 1):
                raise VerifyError(f"subgraph {g} tensor {t} refers to buffer {bi} of {n_buffers}")
        for side in ("Inputs", "Outputs"):
            bad = [i for i in w.ints(sub, side) if not 0 <= i < n]
            if bad:
                raise VerifyError(f"subgraph {g} {side.lower()} refer to tensor {bad[0]} of {n}")
        for k, op in enumerate(w.tables(sub, "Operators")):
            of = v.table(op, "Operator", 2)
            code = w.u32(of, "OpcodeIndex")
            if code >= n_codes:
                raise VerifyError(f"subgraph {g} operator {k} uses opcode {code} of {n_codes}")
            for side in ("Inputs", "Outputs", "Intermediates"):
                bad = [i for i in w.ints(of, side) if not -1 <= i < n]
                if bad:
                    raise VerifyError(f"subgraph {g} operator {k} {side.lower()} refer to tensor {bad[0]} of {n}")
    for i, sp in enumerate(w.tables(model, "SignatureDefs")):
        graph = w.u32(v.table(sp, "SignatureDef", 1), "SubgraphIndex")
        if graph >= len(subgraphs):
            raise VerifyError(f"signature {i} refers to subgraph {graph} of {len(subgraphs)}")
    for i, mp in enumerate(w.tables(model, "Metadata")):
        bi = w.u32(v.table(mp, "Metadata", 1), "Buffer")
        if bi >= n_buffers:
            raise VerifyError(f"metadata {i} refers to buffer {bi} of {n_buffers}")
    return external


def verify_buffer(buf: Any, file_size: int | None = None) -> None:
    """Raise VerifyError unless `buf` (bytes, memoryview or mmap) is a verifiable TFLite model."""
    total = len(buf) if file_size is None else file_size
    size = min(total, MAX_FLATBUFFER)
    if size < 16:
        raise VerifyError(f"the file is {total} bytes, too small for a TFLite flatbuffer")
    if bytes(buf[4:8]) != b"TFL3":
        raise VerifyError(f"not a TFLite flatbuffer (file identifier is {bytes(buf[4:8])!r}, expected b'TFL3')")
    v = _Verifier(buf, size, tflite_layout())
    try:
        root = v.offset(0, "root table")
        model = v.table(root, "Model", 0)
        version = _Walk(buf).u32(model, "Version")
        if version != 3:
            raise VerifyError(f"schema version is {version}, expected 3")
        external = _check_indices(buf, total, v, model)
    except VerifyError as exc:
        raise VerifyError(f"corrupt TFLite flatbuffer ({exc})", exc.fix) from None
    if total > MAX_FLATBUFFER and not external:
        raise VerifyError(f"the file is {gib(total)} ({total:,} bytes), over the {gib(MAX_FLATBUFFER + 1)} limit "
                          "of a flatbuffer, and it stores no buffer outside the flatbuffer (large-model format)",
                          "trim what follows the model, or re-export it with its weights outside the flatbuffer")


@contextmanager
def mapped(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The file's bytes as a read-only mmap (b"" for an empty file); pages load on touch."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm
        finally:
            try:
                mm.close()
            except BufferError:  # a view into it is still alive somewhere: the GC closes it
                pass


def verify_file(path: str | os.PathLike[str]) -> None:
    """Raise VerifyError (message without the path) unless the file passes `verify_buffer`."""
    with mapped(path) as buf:
        try:
            verify_buffer(buf)
        except (struct.error, IndexError, ValueError, TypeError) as exc:
            if isinstance(exc, VerifyError):
                raise
            raise VerifyError(f"corrupt flatbuffer ({type(exc).__name__})") from None
