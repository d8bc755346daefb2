"""Which tool diagnoses a flag set: one entry per backend of `diagnose` and budget searches.

`session.open_session` asks this registry instead of branching on the flag set's tool at
every step. An entry says how its tool takes a flag set (the flag set as the tool runs it, or
a one-line UsageError saying why it cannot), which session it opens on the prepared model,
and where `--backend auto` sends a flag set of its own that it cannot diagnose itself
(TensorFlow's int16x8 output, which LiteRT refuses, goes to the quantizer). Adding a tool is
adding an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.config import ModelSpec
from harness.convert.calibration import in_family, why_not_diagnosable
from harness.core.errors import UsageError
from harness.core.flag_sets import FlagSet


@dataclass(frozen=True)
class DiagnoseBackend:
    name: str  # what `--backend` calls it
    adopt: Callable[[FlagSet, ModelSpec, str], FlagSet]  # (FS, model, as given) -> FS as this backend runs it
    session: Callable[..., Any]  # (builder, model, flag set, prepared, settings) -> a session search.py drives
    fallback: Callable[[FlagSet], str | None]  # for `auto`: another backend for FS, None to keep this one


def _tf_adopt(fs: FlagSet, spec: ModelSpec, given: str) -> FlagSet:
    if fs.quantizer:
        raise UsageError(f"flag set {fs.name!r} is an AI Edge Quantizer recipe; use --backend quantizer or auto")
    if spec.kind == "tflite":
        raise UsageError(f"{given}: diagnose needs the original model (float reference and calibration), not a "
                         ".tflite; give the .keras, SavedModel or file.py:function")
    if not in_family(fs.converter_options(), fs.needs_representative_data):
        raise UsageError(f"flag set {fs.name!r} is not full-integer quantization from representative data; "
                         "diagnose one of int8, int8_float_io, int16x8 or a flag set like them")
    why = why_not_diagnosable(fs.converter_options())
    if why:
        raise UsageError(f"flag set {fs.name!r}: {why}; or diagnose it through --backend quantizer")
    return fs


def _tf_session(*args: Any) -> Any:
    from harness.pipeline.diagnose import DiagnoseSession

    return DiagnoseSession(*args)


def _quantizer_adopt(fs: FlagSet, spec: ModelSpec, given: str) -> FlagSet:
    from harness.pipeline.quantize_search import as_quantizer_flag_set

    qfs = as_quantizer_flag_set(fs)
    if qfs is None or not qfs.needs_representative_data:
        raise UsageError(f"flag set {fs.name!r} is not full-integer quantization; diagnose a static recipe "
                         "(aeq_static_int8, aeq_static_int16x8) or int8, int16x8")
    return qfs


def _quantizer_session(*args: Any) -> Any:
    from harness.pipeline.quantize_search import QuantizerSession

    return QuantizerSession(*args)


BACKENDS: dict[str, DiagnoseBackend] = {
    "tf": DiagnoseBackend("tf", _tf_adopt, _tf_session,
                          # int16 activations: TensorFlow's quantizer cannot keep layers float there
                          lambda fs: "quantizer" if why_not_diagnosable(fs.converter_options()) else None),
    "quantizer": DiagnoseBackend("quantizer", _quantizer_adopt, _quantizer_session, lambda fs: None),
}
# the tool a flag set names (FlagSet.tool) -> the backend that diagnoses it by default
TOOL_BACKEND = {"quantizer": "quantizer", "tf_converter": "tf", "tflite_convert": "tf"}


def choose_backend(fs: FlagSet, backend: str) -> DiagnoseBackend:
    """The backend BACKEND names, or for `auto` the one FS's own tool goes to."""
    if backend != "auto" and backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r}: choose auto, {' or '.join(BACKENDS)}")
    if backend == "auto":
        own = TOOL_BACKEND.get(fs.tool, "tf")
        backend = BACKENDS[own].fallback(fs) or own
    return BACKENDS[backend]
