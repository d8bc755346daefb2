"""The TFLite schema's table layouts, read from the generated Python code that LiteRT ships.

Python flatbuffers has no verifier, and the `.fbs` schema is not in any installed wheel. The
generated accessors (`ai_edge_litert.schema_py_generated`) do say, method by method, which
vtable slot holds what: a scalar of some width, a string, a table of some class, a union, or
a vector of scalars, strings or tables. `verify.py` walks a file with these layouts the way
the C++ verifier walks it with its generated `Verify()` methods, so the whole schema
(every builtin option table included) is checked without copying it by hand, and a newer
LiteRT wheel brings its schema along.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Byte widths of the flatbuffers number types the accessors name ("Int32Flags" -> 4).
_WIDTHS = {"Bool": 1, "Uint8": 1, "Int8": 1, "Uint16": 2, "Int16": 2, "Uint32": 4, "Int32": 4,
           "Uint64": 8, "Int64": 8, "Float32": 4, "Float64": 8, "UOffsetT": 4, "SOffsetT": 4,
           "VOffsetT": 2}

SCALAR, STRING, TABLE, UNION, VEC_SCALAR, VEC_STRING, VEC_TABLE = (
    "scalar", "string", "table", "union", "vec_scalar", "vec_string", "vec_table")


@dataclass(frozen=True)
class FieldLayout:
    """One field of a table: its vtable slot, what it holds, and (tables, unions) of what type.

    `size` is the scalar's or the vector element's byte width; `target` is a table class name
    (TABLE, VEC_TABLE) or, for a UNION, the union's enum class name; `type_slot` is the
    vtable slot of a union's type field.
    """

    name: str
    slot: int
    kind: str
    size: int = 0
    target: str = ""
    type_slot: int = 0


@dataclass(frozen=True)
class SchemaLayout:
    """Every table's fields, and every union's member tables by type code."""

    tables: dict[str, tuple[FieldLayout, ...]]
    unions: dict[str, dict[int, str]]


_HEAD = re.compile(r"^(?=class |def )", re.M)
_CLASS = re.compile(r"class (\w+)\(object\):\n")
_METHOD = re.compile(r"def (\w+)\(self(?:, j)?\):\n")
_SLOT = re.compile(r"self\._tab\.Offset\((\d+)\)")
_GET = re.compile(r"self\._tab\.Get\(flatbuffers\.number_types\.(\w+)Flags")
_OBJ = re.compile(r"obj = (\w+)\(\)")
_CREATOR = re.compile(r"self\.(\w+) = (\w+)Creator\(self\.\w+Type, \w+\.(\w+)\(\)\)")


def _field(name: str, body: str) -> FieldLayout | None:
    slot = _SLOT.search(body)
    if slot is None or name.endswith(("Length", "IsNone", "AsNumpy")):
        return None
    n = int(slot.group(1))
    get, obj = _GET.search(body), _OBJ.search(body)
    if "self._tab.Union(" in body:
        return FieldLayout(name, n, UNION)
    if "self._tab.Vector(o)" in body:
        if obj and "Indirect(x)" in body:
            return FieldLayout(name, n, VEC_TABLE, 4, obj.group(1))
        if "self._tab.String(a" in body:
            return FieldLayout(name, n, VEC_STRING, 4)
        if get:
            return FieldLayout(name, n, VEC_SCALAR, _WIDTHS[get.group(1)])
        return None
    if obj and "Indirect(o + self._tab.Pos)" in body:
        return FieldLayout(name, n, TABLE, 4, obj.group(1))
    if "self._tab.String(o + self._tab.Pos)" in body:
        return FieldLayout(name, n, STRING, 4)
    if get:
        return FieldLayout(name, n, SCALAR, _WIDTHS[get.group(1)])
    return None


def layout_from_source(source: str) -> SchemaLayout:
    """Parse generated flatbuffers Python code into table layouts (see the module doc)."""
    classes = {}
    for chunk in _HEAD.split(source):
        m = _CLASS.match(chunk)
        if m:
            classes[m.group(1)] = chunk[m.end():]
    creators = {(m.group(3)): m.group(2) for m in _CREATOR.finditer(source)}
    tables: dict[str, tuple[FieldLayout, ...]] = {}
    enums: dict[str, dict[int, str]] = {}
    for cls, body in classes.items():
        if "flatbuffers.table.Table(buf, pos)" not in body:
            enums[cls] = {int(v): k for k, v in re.findall(r"^    (\w+) = (-?\d+)$", body, re.M)}
            continue
        if cls.endswith("T") and cls[:-1] in classes:
            continue  # the object API's mirror class
        methods = (_METHOD.match(part) for part in body.split("\n    # " + cls + "\n    "))
        fields = [f for f in (_field(m.group(1), m.string[m.end():]) for m in methods if m) if f]
        slots = {f.name: f.slot for f in fields}
        tables[cls] = tuple(
            FieldLayout(f.name, f.slot, UNION, 4, creators.get(f.name, f.name), slots.get(f.name + "Type", f.slot - 2))
            if f.kind == UNION else f for f in fields)
    unions = {}
    for f in (f for fs in tables.values() for f in fs if f.kind == UNION):
        members = enums.get(f.target, {})
        unions[f.target] = {code: name for code, name in members.items() if name in tables}
    return SchemaLayout(tables, unions)


@functools.cache
def tflite_layout() -> SchemaLayout:
    """The layouts of the TFLite schema that the installed `ai-edge-litert` wheel ships.

    Read as text, not imported: executing the 20,000-line module costs most of a second,
    which a refusal (a 4 GiB file, a damaged one) need not pay."""
    import importlib.util

    spec = importlib.util.find_spec("ai_edge_litert.schema_py_generated")
    if spec is None or not spec.origin:
        raise ImportError("checking .tflite files needs ai_edge_litert.schema_py_generated from the "
                          "'ai-edge-litert' package; pip install ai-edge-litert")
    with open(spec.origin, encoding="utf-8") as f:
        return layout_from_source(f.read())
