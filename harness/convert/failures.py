"""Classify conversion failures into categories with a hint the user can act on.

The converter's messages are long and MLIR-flavoured; users need to know which of a
handful of things went wrong and what to try next. The full log stays available with
`--debug` and in the run's log folder.
"""

from __future__ import annotations

import re
import signal as _signal
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    category: str
    reason: str  # one line: what went wrong and what to try


def _signal_name(num: int) -> str:
    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _flex_ops(text: str) -> list[str]:
    found = re.findall(r"\btf\.([A-Z][A-Za-z0-9]+)\b", text)
    found += re.findall(r"\bFlex([A-Z][A-Za-z0-9]+)\b", text)
    return sorted(set(found))


def classify(error: str | None, log: str = "", *, signal: int | None = None,
             timed_out: bool = False, flag_set: str = "") -> Failure:
    text = f"{error or ''}\n{log}"
    low = text.lower()
    if signal is not None:
        return Failure(
            "converter_crashed",
            f"converter crashed ({_signal_name(signal)}); try another flag set"
            + ("; for RNNs unroll them or use a fixed batch" if "lstm" in low or "while" in low else ""),
        )
    if timed_out:
        return Failure("timeout", f"conversion took too long ({error}); raise settings.timeout_s")
    if "representative" in low and any(k in low for k in ("shape", "dtype", "dimension", "incompatible")):
        return Failure("representative_data", f"representative data does not fit the model: {_short(error)}")
    found = _specific(error or "")
    if found is not None:
        return found
    if "select_tf_ops" in low or "flex" in low or "not supported by the native tflite runtime" in low \
            or ("some ops are not supported" in low and "tf." in text):
        ops = _flex_ops(text)
        names = ", ".join(ops) if ops else "TensorFlow ops"
        if "select_tf_ops" in flag_set or "SELECT_TF_OPS" in text and "enable" not in low:
            return Failure("unsupported_op", f"ops have no TFLite kernel even with Select TF ops: {names}")
        return Failure("needs_flex_ops", f"needs Select TF ops: {names}; use flag set select_tf_ops")
    if "tensorlist" in low or "tensor list" in low or "dynamic" in low and "shape" in low:
        return Failure(
            "dynamic_shapes",
            "tensor lists or dynamic shapes block conversion; fix the batch size or unroll the RNN",
        )
    if "quantiz" in low and ("not supported" in low or "unsupported" in low or "failed to quantize" in low
                             or "is not quantizable" in low):
        op = re.search(r"'(tfl\.[a-z_0-9]+)'", text)
        what = op.group(1) if op else "an op"
        return Failure("quantization_unsupported",
                       f"quantization is not supported for {what}; try dynamic_range or float16")
    if "custom op" in low or "allow_custom_ops" in low:
        ops = _flex_ops(text)
        return Failure("unsupported_op", f"unsupported ops {', '.join(ops) or ''}; try select_tf_ops or custom_ops".replace("  ", " "))
    return Failure("conversion_error", _short(error))


# Messages whose meaning does not depend on the rest of the log; matched on the error only,
# since worker logs carry unrelated warnings.
_NOT_FLEX = re.compile(r"'tf\.([A-Za-z0-9_]+)' op is neither a custom op nor a flex op")
_QUANT_OP = re.compile(r"[Qq]uantization (?:to [0-9x-]+bit )?not (?:yet )?supported for op: '([A-Za-z0-9_]+)'")
_CALIBRATION = ("cannot set tensor", "failed to prepare", "dimension mismatch")
_EMPTY_RANGE = re.compile(r"Max and min for dynamic tensors should be recorded during calibration: "
                          r"Failed for tensor (\S+)")


def _specific(error: str) -> Failure | None:
    low = error.lower()
    if any(k in low for k in _CALIBRATION):
        return Failure("representative_data",
                       "representative data does not fit the model's inputs (shape, rank or dtype) during "
                       f"calibration: {_short(error, 160)}; fix the samples or set input_shapes")
    empty = _EMPTY_RANGE.search(error)
    if empty:
        # calibration saw no float values for the tensor: typically integer inputs (token ids)
        # cast to float before an embedding lookup, which the quantizer then cannot range
        return Failure("quantization_unsupported",
                       f"the quantizer recorded no value range for tensor {empty.group(1)} during calibration "
                       "(an integer input cast to float, e.g. token ids); this quantization mode cannot "
                       "quantize it: try int8, int8_float_io or dynamic_range")
    m = _QUANT_OP.search(error)
    if m:
        is16 = "16x8" in error
        hint = "try int8 or dynamic_range" if is16 else "try dynamic_range or float16, or int8_float_io"
        return Failure("quantization_unsupported",
                       f"quantization{' to 16x8' if is16 else ''} is not supported for op {m.group(1)}; {hint}")
    if "tensorlist" in low or "tensor list" in low:
        ops = sorted(set(re.findall(r"'tf\.(TensorList[A-Za-z]*)'", error)))
        return Failure("dynamic_shapes",
                       f"tensor lists{' (' + ', '.join(ops) + ')' if ops else ''} with dynamic shapes block "
                       "conversion; fix the batch size / element shapes, or unroll the RNN (unroll=True)")
    ops = sorted(set(_NOT_FLEX.findall(error)))
    # Without Select TF ops the converter says this of Flex-able ops too, but then it also
    # lists them as "TF Select ops: ..."; only ops outside that list have no kernel at all.
    select = re.search(r"TF Select ops: ([A-Za-z0-9_, ]+?)(?: Details:|$|\.)", error)
    if select:
        flexable = {o.strip() for o in select.group(1).split(",")}
        ops = [o for o in ops if o not in flexable]
    if ops:
        return Failure("unsupported_op",
                       f"ops with neither a TFLite builtin nor a Flex kernel: {', '.join(ops)}; refactor them "
                       "out of the model, or use custom_ops and register your own kernels")
    return None


def _short(error: str | None, limit: int = 240) -> str:
    text = " ".join((error or "unknown error").split())
    # ConverterError messages start with a file:line location; keep the sentence that matters.
    m = re.search(r"error: (.*?)(?:\s+<unknown>|\s+note:|$)", text)
    if m:
        text = m.group(1)
    return text if len(text) <= limit else text[: limit - 3] + "..."
