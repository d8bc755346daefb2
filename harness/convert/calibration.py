"""Calibrate once, quantize many times: the int8 family shares one calibration per model and data.

A full-integer conversion is three steps: TF -> float TFLite (MLIR), calibration (run the
float model on the representative data, record every tensor's min/max), quantization.
The first two do not depend on which int8-family flag set asked (checked: the calibrated
models of `int8` and `int16x8` differ only in the CONVERSION_METADATA byte that names
the optimization mode), so they run once per model and data, are cached as a calibrated
`.tflite` (`Cache.calibration_path`), and every flag set of the family and every step of
the budget search only quantizes it (~1-5% of a conversion).

We use TensorFlow's own calibrate-only path, as `QuantizationDebugger` does
(`converter._experimental_calibrate_only`), then the same quantizers `TFLiteConverter`
calls: the MLIR quantizer (`convert.mlir_quantize`) for int8 and the calibration
wrapper's `QuantizeModel` for int16 activations (TF's own choice, lite.py `_quantize`),
then the same read-only buffer deduplication. That gives the same tensors, weights and
outputs as a standalone conversion (tests/test_diagnose.py); only the metadata buffers
differ. LiteRT's quantizer over a float `.tflite` would need its own recipe format and
gives different numbers from the `int8` rows users compare against (see the notes).

Module level is plain Python: the parent imports `in_family` and `calibration_fields`;
TensorFlow is imported only inside the worker-side functions.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INT16_OPS = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
_FAMILY_OPS = {"TFLITE_BUILTINS", "TFLITE_BUILTINS_INT8", INT16_OPS}
# experimental options the quantize step honours itself; any other one sends the flag set
# through a standalone conversion, since it might change what calibration sees
_QUANTIZE_OPTIONS = {
    "_experimental_disable_per_channel",
    "_experimental_disable_per_channel_quantization_for_dense_layers",
}
# options that change only the quantize step, never the calibrated model
_NOT_CALIBRATION = {"inference_input_type", "inference_output_type", "metadata", "description",
                    "budget", "base", "representative_data", *_QUANTIZE_OPTIONS}


def in_family(options: dict[str, Any], calibrates: bool) -> bool:
    """True when a flag set's artifact can be quantized from a shared calibration.

    CALIBRATES: the flag set uses representative data (`FlagSet.needs_representative_data`)."""
    if not calibrates or not options.get("optimizations"):
        return False
    ops = set(options.get("supported_ops", ["TFLITE_BUILTINS"]))
    if not ops <= _FAMILY_OPS or set(options.get("supported_types", [])) - {"int8"}:
        return False
    if any(k.startswith(("experimental_", "_experimental_")) and k not in _QUANTIZE_OPTIONS for k in options):
        return False
    if INT16_OPS in ops:  # TF converts int16 model I/O in a later pass we do not repeat
        return {options.get("inference_input_type", "float32"), options.get("inference_output_type", "float32")} \
            <= {"float32"}
    return True


def why_not_diagnosable(options: dict[str, Any]) -> str | None:
    """Why diagnose and budgets cannot handle a family flag set, or None when they can.

    Keeping layers float and the NumericVerify model both need the MLIR quantizer. In its int16
    mode (TF 2.21) it makes models LiteRT refuses (`input->params.zero_point != 0 (-1 != 0)` in
    FULLY_CONNECTED, with or without float layers): that is why TFLiteConverter itself sends
    int16x8 to the older quantizer, which has no per-node denylist."""
    if QuantizeSpec.of(options).activations == "int16":
        return ("int16 activations: TensorFlow's quantizer can keep no layer float in int16 mode (its MLIR int16 "
                "path makes models LiteRT refuses), so diagnose and budgets cover int8 flag sets; "
                "diagnose int8 or int8_float_io")
    return None


def calibration_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The options that decide the calibrated model, for its cache key (int8 vs int16 do not)."""
    fields = {k: v for k, v in sorted(options.items()) if k not in _NOT_CALIBRATION}
    fields.pop("supported_ops", None)  # within the family the calibrated graph is the same (module doc)
    fields["allow_float"] = _allow_float(options)
    return fields


def _allow_float(options: dict[str, Any]) -> bool:
    return "TFLITE_BUILTINS" in set(options.get("supported_ops", ["TFLITE_BUILTINS"]))


@dataclass(frozen=True)
class QuantizeSpec:
    """What the quantize step needs from a flag set (plain data)."""

    activations: str  # int8 | int16
    input_type: str
    output_type: str
    allow_float: bool
    disable_per_channel: bool
    disable_per_channel_dense: bool

    @classmethod
    def of(cls, options: dict[str, Any]) -> QuantizeSpec:
        int16 = INT16_OPS in set(options.get("supported_ops", []))
        return cls("int16" if int16 else "int8", options.get("inference_input_type", "float32"),
                   options.get("inference_output_type", "float32"), _allow_float(options),
                   bool(options.get("_experimental_disable_per_channel", False)),
                   bool(options.get("_experimental_disable_per_channel_quantization_for_dense_layers", False)))


# ---------------------------------------------------------------- worker side (TensorFlow)
def calibrate(converter: Any) -> bytes:
    """The calibrated float model (min/max recorded) from a converter set up with a family flag
    set's options and representative data (its inference I/O types left float)."""
    converter._experimental_calibrate_only = True  # noqa: SLF001 - TF's documented debugger path
    return converter.convert()


def quantize(calibrated: bytes, options: dict[str, Any], float_nodes: list[str] | tuple = (),
             numeric_verify: bool = False) -> bytes:
    """Quantize a calibrated model as TFLiteConverter would; FLOAT_NODES (output tensor names) stay float.

    NUMERIC_VERIFY adds TF's NumericVerify ops (the QuantizationDebugger model): each
    quantized op also runs in float from the same inputs, so its own error is visible."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert
    from tensorflow.lite.python import lite as tf_lite

    spec = QuantizeSpec.of(options)
    if spec.activations == "int16":
        if float_nodes or numeric_verify:
            raise ValueError(why_not_diagnosable(options))
        from tensorflow.lite.python.optimize import calibrator

        wrapper = calibrator.Calibrator(calibrated)
        # no data fed: the wrapper keeps the min/max the calibrated model already carries
        blob = wrapper._calibrator.QuantizeModel(  # noqa: SLF001 - the call lite.py makes for int16
            np.dtype(np.float32).num, np.dtype(np.float32).num, spec.allow_float,
            np.dtype(np.int16).num, np.dtype(np.int64).num, spec.disable_per_channel, spec.disable_per_channel_dense)
    else:
        blob = tf_convert.mlir_quantize(
            calibrated, spec.disable_per_channel, input_data_type=tf.as_dtype(spec.input_type),
            output_data_type=tf.as_dtype(spec.output_type), enable_numeric_verify=numeric_verify,
            denylisted_nodes=list(float_nodes) or None,
            disable_per_channel_for_dense_layers=spec.disable_per_channel_dense)
    return bytes(tf_lite._deduplicate_readonly_buffers(blob))  # noqa: SLF001 - as lite.py does after quantizing


def calibrated_model(path: Path, make: Any) -> tuple[bytes, bool, float]:
    """The calibration at PATH, made by MAKE() under a file lock when missing; (bytes, made_now,
    seconds spent waiting for the lock).

    The lock lets two workers that need the same calibration at once make it once. The wait
    is reported because a worker waiting here is a worker not converting: the campaign's
    schedule holds such jobs back instead (`pipeline/schedule.py`), and the wait shows
    whether it did (`logs/build-timeline.json`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size > 0:  # made earlier: no lock to wait for
        return path.read_bytes(), False, 0.0
    with open(path.with_suffix(".lock"), "w") as lock:
        t0 = time.perf_counter()
        fcntl.flock(lock, fcntl.LOCK_EX)
        waited = time.perf_counter() - t0
        if path.is_file() and path.stat().st_size > 0:
            return path.read_bytes(), False, waited
        blob = make()
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return blob, True, waited
