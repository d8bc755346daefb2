"""Property tests (issue 22): campaign TOML and sample .npz files from other people.

Whatever the structure, `load_campaign` returns a Campaign or raises one UsageError line,
and `load_arrays` returns arrays or raises one SampleError line: never another exception.
(Mutated bytes of a real .npz are fuzzed in tests/test_bad_inputs.py.)
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import Campaign, Settings, load_campaign
from harness.core.errors import UsageError
from harness.core.samples import SampleError, load_arrays

from .conftest import ROOT

TINY = str(ROOT / "tests" / "data" / "tiny.tflite")
SETTING_KEYS = [f.name for f in Settings.__dataclass_fields__.values()] + ["flag_sets", "devices", "runz"]
MODEL_KEYS = ["name", "path", "kind", "samples", "representative", "input_shapes", "signature", "original",
              "original_kind", "trusted", "bogus"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(),
                    st.text(max_size=12), st.sampled_from([TINY, "local", "fp32", "int8", "keras", "tflite", "x"]))
values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                     st.dictionaries(st.sampled_from(["x", "a", "b"]), kids, max_size=2)),
                      max_leaves=6)


def toml_value(v) -> str:
    """Inline TOML for V (strings as JSON strings, which TOML reads the same way)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or np.isfinite(v) else "inf" if v > 0 else "-inf"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


campaigns = st.fixed_dictionaries({}, optional={
    "name": values,
    "settings": st.dictionaries(st.sampled_from(SETTING_KEYS), values, max_size=4),
    "models": st.lists(st.dictionaries(st.sampled_from(MODEL_KEYS), values, max_size=4)
                       .map(lambda m: {"path": TINY, **m}), max_size=2),
    "flag_sets": st.dictionaries(st.sampled_from(["mine", "fp32"]), st.dictionaries(
        st.sampled_from(["base", "optimizations", "supported_ops", "bogus"]), values, max_size=2), max_size=1),
    "devices": values,
    "extra": values,
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=campaigns)
def test_campaign_toml_gives_a_campaign_or_one_line(tmp_path, doc):
    path = tmp_path / "c.toml"
    path.write_text("\n".join(f"{k} = {toml_value(v)}" for k, v in doc.items()) + "\n", encoding="utf-8")
    try:
        assert isinstance(load_campaign(path), Campaign)
    except UsageError as exc:
        assert "\n" not in str(exc) and str(exc), exc


@FAST
@given(text=st.text(max_size=200))
def test_campaign_text_gives_a_campaign_or_one_line(tmp_path, text):
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_campaign(path)
    except UsageError as exc:
        assert "\n" not in str(exc)


dtypes = st.sampled_from(["<f4", "<f8", "<i4", "|u1", "<i8", "|b1", "<U3", "|V4"])
shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)
huge = st.lists(st.integers(1, 1 << 40), min_size=1, max_size=3).map(tuple)


@st.composite
def npz_files(draw) -> bytes:
    """A zip of .npy members: real arrays, or headers that declare (maybe huge) shapes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as z:
        for name in draw(st.lists(st.sampled_from(["x", "y", "labels", "input_1", "w.npy"]), max_size=3, unique=True)):
            dtype, shape = draw(dtypes), draw(st.one_of(shapes, huge))
            member = io.BytesIO()
            if np.prod(shape, dtype=object) * np.dtype(dtype).itemsize < 1 << 16:
                np.save(member, np.zeros(shape, dtype=dtype))
            else:  # only the header: what it declares must be refused before any allocation
                np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": shape})
                member.write(bytes(draw(st.integers(0, 64))))
            z.writestr(name if name.endswith(".npy") else name + ".npy", member.getvalue())
    return out.getvalue()


@FAST
@given(blob=npz_files(), names=st.sampled_from([["x"], ["x", "y"], ["input_1"]]))
def test_npz_gives_arrays_or_one_line(tmp_path, blob, names):
    path = tmp_path / "s.npz"
    path.write_bytes(blob)
    try:
        arrays, labels = load_arrays(path, names)
        assert len(arrays) == len(names) and all(isinstance(a, np.ndarray) for a in arrays)
    except SampleError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
