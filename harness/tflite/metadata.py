"""TFLite model metadata, written and read without TensorFlow or tflite-support.

A flag set may carry a `metadata` table (name, description, version, author, license,
labels, mean, std). After conversion we write it the way TFLite's MetadataPopulator does:

* a `TFLITE_METADATA` entry in `Model.metadata` whose buffer is a flatbuffer of the
  metadata schema (`ModelMetadata`, file identifier ``M001``, `min_parser_version`),
  with input tensors carrying `NormalizationOptions(mean, std)` process units and output
  tensors carrying the labels file as a `TENSOR_AXIS_LABELS` associated file;
* associated files (the labels) appended to the model as an uncompressed zip archive,
  so the `.tflite` is also a valid zip (what the TFLite Support/Task libraries read).

The metadata-schema flatbuffer is built by hand with `flatbuffers.Builder`: the field
slots below follow `tensorflow_lite_support/metadata/metadata_schema.fbs` (schema 1.x).
The model itself is re-packed through `ai_edge_litert.schema_py_generated`'s object API
with constant buffers 16-byte aligned, so the graph and weights are unchanged.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

from harness.core.errors import DAMAGED_ZIP_ERRORS
from harness.core.metadata_options import KNOWN_KEYS, TEXT_KEYS, parse_metadata  # noqa: F401 - re-exported

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # NormalizationOptions and TENSOR_AXIS_LABELS are 1.0.0 features

# metadata_schema.fbs field slots (vtable index of each field).
_MM = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4,
       "license": 5, "associated_files": 6, "min_parser_version": 7}
_SG = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3,
       "associated_files": 4}
_TM = {"name": 0, "description": 1, "dimension_names": 2, "content": 3, "process_units": 4,
       "stats": 5, "associated_files": 6}
_AF = {"name": 0, "description": 1, "type": 2, "locale": 3}
_PU_OPTIONS_TYPE, _PU_OPTIONS = 0, 1
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
               4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY", 6: "SCANN_INDEX_FILE"}
TENSOR_AXIS_LABELS = 2


# ---------------------------------------------------------------- writing

def _build_metadata(meta: dict[str, Any], n_inputs: int, n_outputs: int,
                    input_names: list[str], output_names: list[str]) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def table(fields: dict[int, tuple[str, Any]]) -> int:
        b.StartObject(max(fields) + 1 if fields else 0)
        for slot, (kind, value) in sorted(fields.items()):
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                b.PrependInt8Slot(slot, value, 0)
            elif kind == "ubyte":
                b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def offsets_vector(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats_vector(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    labels_name = Path(meta["labels"]).name if meta.get("labels") else None

    def tensor(name: str, is_input: bool) -> int:
        fields: dict[int, tuple[str, Any]] = {_TM["name"]: ("offset", b.CreateString(name))}
        if is_input and "mean" in meta:
            mean, std = floats_vector(meta["mean"]), floats_vector(meta["std"])
            norm = table({0: ("offset", mean), 1: ("offset", std)})
            unit = table({_PU_OPTIONS_TYPE: ("ubyte", _NORMALIZATION_OPTIONS), _PU_OPTIONS: ("offset", norm)})
            fields[_TM["process_units"]] = ("offset", offsets_vector([unit]))
        if not is_input and labels_name:
            af_name = b.CreateString(labels_name)
            af_desc = b.CreateString("Labels for the classes of the output, one a line")
            af = table({_AF["name"]: ("offset", af_name), _AF["description"]: ("offset", af_desc),
                        _AF["type"]: ("byte", TENSOR_AXIS_LABELS)})
            fields[_TM["associated_files"]] = ("offset", offsets_vector([af]))
        return table(fields)

    ins = [tensor(input_names[i] if i < len(input_names) else f"input_{i}", True) for i in range(n_inputs)]
    outs = [tensor(output_names[i] if i < len(output_names) else f"output_{i}", False)
            for i in range(n_outputs)]
    in_vec, out_vec = offsets_vector(ins), offsets_vector(outs)
    sg = table({_SG["input_tensor_metadata"]: ("offset", in_vec), _SG["output_tensor_metadata"]: ("offset", out_vec)})
    sg_vec = offsets_vector([sg])
    fields: dict[int, tuple[str, Any]] = {}
    for key in TEXT_KEYS:
        if meta.get(key):
            fields[_MM[key]] = ("offset", b.CreateString(meta[key]))
    fields[_MM["subgraph_metadata"]] = ("offset", sg_vec)
    fields[_MM["min_parser_version"]] = ("offset", b.CreateString(MIN_PARSER_VERSION))
    root = table(fields)
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _aligned_buffer_class():
    from ai_edge_litert import schema_py_generated as s

    class AlignedBufferT(s.BufferT):
        """BufferT whose data vector is 16-byte aligned, as `force_align: 16` in schema.fbs asks."""

        def Pack(self, builder):  # noqa: N802 - flatbuffers naming
            import numpy as np

            if self.data is None or len(self.data) == 0:
                return super().Pack(builder)
            data = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(data), 16)
            builder.head = builder.head - len(data)
            builder.Bytes[builder.head : builder.head + len(data)] = data
            vec = builder.EndVector()
            s.BufferStart(builder)
            s.BufferAddData(builder, vec)
            return s.BufferEnd(builder)

    return AlignedBufferT


def write_metadata(model: bytes, meta: dict[str, Any]) -> bytes:
    """Return `model` with `meta` written as TFLite metadata (+ labels zipped at the end).

    Existing TFLITE_METADATA entries are replaced; other metadata (min_runtime_version,
    CONVERSION_METADATA) is kept. Operators, tensors and weights are left as they are.
    """
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    model_obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    sub = model_obj.subgraphs[0]
    names_in, names_out = _signature_names(model_obj, sub)
    blob = _build_metadata(meta, len(sub.inputs), len(sub.outputs), names_in, names_out)
    aligned = _aligned_buffer_class()
    buffers = []
    for buf in model_obj.buffers:
        nb = aligned()
        nb.data, nb.offset, nb.size = buf.data, 0, 0
        buffers.append(nb)
    entries = [m for m in (model_obj.metadata or []) if _name(m.name) != METADATA_NAME]
    meta_buf = aligned()
    meta_buf.data = list(blob)
    buffers.append(meta_buf)
    entry = s.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(buffers) - 1
    model_obj.buffers = buffers
    model_obj.metadata = [*entries, entry]
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model_obj))
    if meta.get("labels"):
        out = _append_zip(out, {Path(meta["labels"]).name: Path(meta["labels"]).read_bytes()})
    return out


def _append_zip(model: bytes, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO(model)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _name(raw: Any) -> str:
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)


def _signature_names(model_obj: Any, sub: Any) -> tuple[list[str], list[str]]:
    """Input/output names in subgraph order: signature names when present, else tensor names."""
    by_tensor_in: dict[int, str] = {}
    by_tensor_out: dict[int, str] = {}
    for sig in model_obj.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for m in sig.inputs or []:
                by_tensor_in[m.tensorIndex] = _name(m.name)
            for m in sig.outputs or []:
                by_tensor_out[m.tensorIndex] = _name(m.name)
    ins = [by_tensor_in.get(t) or _name(sub.tensors[t].name) for t in sub.inputs]
    outs = [by_tensor_out.get(t) or _name(sub.tensors[t].name) for t in sub.outputs]
    return ins, outs


# ---------------------------------------------------------------- reading

class _T:
    """Minimal reader over one flatbuffer table."""

    def __init__(self, buf: bytes, pos: int):
        from flatbuffers import table

        self.t = table.Table(bytearray(buf) if not isinstance(buf, bytearray) else buf, pos)

    def _off(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def _vector(self, o: int) -> tuple[int, int]:
        """(length, start) of a vector, refused when the blob cannot hold it (a damaged file)."""
        n, start = self.t.VectorLen(o), self.t.Vector(o)
        if start + 4 * n > len(self.t.Bytes):
            raise ValueError(f"a vector of {n} elements at byte {start} runs past the {len(self.t.Bytes)}-byte metadata")
        return n, start

    def string(self, slot: int) -> str | None:
        o = self._off(slot)
        return self.t.String(o + self.t.Pos).decode("utf-8", "replace") if o else None

    def byte(self, slot: int) -> int:
        import flatbuffers.number_types as N

        o = self._off(slot)
        return self.t.Get(N.Int8Flags, o + self.t.Pos) if o else 0

    def table(self, slot: int) -> _T | None:
        o = self._off(slot)
        if not o:
            return None
        child = _T.__new__(_T)
        from flatbuffers import table

        child.t = table.Table(self.t.Bytes, self.t.Indirect(o + self.t.Pos))
        return child

    def tables(self, slot: int) -> list[_T]:
        from flatbuffers import table

        o = self._off(slot)
        if not o:
            return []
        n, start = self._vector(o)
        out = []
        for i in range(n):
            child = _T.__new__(_T)
            child.t = table.Table(self.t.Bytes, self.t.Indirect(start + 4 * i))
            out.append(child)
        return out

    def floats(self, slot: int) -> list[float]:
        import flatbuffers.number_types as N

        o = self._off(slot)
        if not o:
            return []
        n, start = self._vector(o)
        return [float(self.t.Get(N.Float32Flags, start + 4 * i)) for i in range(n)]


def decode_metadata(blob: bytes) -> dict[str, Any]:
    """Decode a TFLITE_METADATA flatbuffer (ModelMetadata) into a plain dict."""
    if len(blob) < 8 or blob[4:8] != METADATA_IDENTIFIER:
        raise ValueError(f"not a TFLite metadata flatbuffer (identifier {bytes(blob[4:8])!r}, expected b'M001')")
    buf = bytearray(blob)
    root = _T(buf, int.from_bytes(buf[:4], "little"))
    out: dict[str, Any] = {}
    for key in (*TEXT_KEYS, "min_parser_version"):
        v = root.string(_MM[key])
        if v is not None:
            out[key] = v

    def files(t: _T, slot: int) -> list[dict]:
        return [{"name": f.string(_AF["name"]), "description": f.string(_AF["description"]),
                 "type": _FILE_TYPES.get(f.byte(_AF["type"]), str(f.byte(_AF["type"])))}
                for f in t.tables(slot)]

    def tensors(sg: _T, slot: int) -> list[dict]:
        result = []
        for tm in sg.tables(slot):
            d: dict[str, Any] = {"name": tm.string(_TM["name"])}
            for unit in tm.tables(_TM["process_units"]):
                if unit.byte(_PU_OPTIONS_TYPE) == _NORMALIZATION_OPTIONS:
                    norm = unit.table(_PU_OPTIONS)
                    if norm is not None:
                        d["normalization"] = {"mean": norm.floats(0), "std": norm.floats(1)}
            af = files(tm, _TM["associated_files"])
            if af:
                d["associated_files"] = af
            result.append(d)
        return result

    out["subgraphs"] = [
        {"inputs": tensors(sg, _SG["input_tensor_metadata"]), "outputs": tensors(sg, _SG["output_tensor_metadata"])}
        for sg in root.tables(_MM["subgraph_metadata"])
    ]
    af = files(root, _MM["associated_files"])
    if af:
        out["associated_files"] = af
    return out


ASSOCIATED_FILES_LIMIT = 64 << 20  # label files are kilobytes; more is not unpacked


def associated_files(model: Any) -> dict[str, bytes]:
    """Files zipped at the end of a model (empty when there is no zip).

    A zip ends with its end-of-central-directory record in the last 64 KiB: without one the
    model is not copied into memory to ask zipfile (a mapped multi-GiB file stays mapped)."""
    if model.rfind(b"PK\x05\x06", max(0, len(model) - (1 << 16) - 22)) < 0:
        return {}
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            infos = z.infolist()
            if sum(i.file_size for i in infos) > ASSOCIATED_FILES_LIMIT:  # a zip bomb is not unpacked
                return {i.filename: b"" for i in infos}
            return {i.filename: z.read(i) for i in infos}
    except DAMAGED_ZIP_ERRORS:
        return {}  # a damaged zip: no associated files


def read_metadata(model: bytes | str | Path) -> dict[str, Any] | None:
    """The decoded TFLite metadata of a model, with labels read from the zip; None if absent."""
    if isinstance(model, (str, Path)):
        from harness.tflite.verify import mapped

        with mapped(model) as data:  # mapped, not read: a large model's weights stay on disk
            return read_metadata(data)
    from harness.tflite.file import read_tflite

    data = bytes(model) if isinstance(model, (bytearray, memoryview)) else model
    parsed = read_tflite(data)
    blob = parsed.metadata.get(METADATA_NAME)
    if blob is None:
        return None
    try:
        meta = decode_metadata(blob)
    except (ValueError, IndexError, TypeError, struct.error, OverflowError) as exc:  # garbage offsets
        return {"error": f"unreadable {METADATA_NAME}: {' '.join(str(exc).split())[:200]}"}
    files = associated_files(data)
    if files:
        meta["files"] = {name: len(content) for name, content in files.items()}
        for sg in meta.get("subgraphs", []):
            for t in sg.get("outputs", []):
                for f in t.get("associated_files", []):
                    if f["type"] == "TENSOR_AXIS_LABELS" and f["name"] in files:
                        text = files[f["name"]].decode("utf-8", "replace")
                        meta["labels"] = [line for line in text.splitlines() if line.strip()]
    return meta
