"""Where a model's shared calibration lives in the cache, and which flag sets use it.

The key covers what decides the calibrated model: the model's bytes, its entry and
signature, the sample data (through the reference key, which hashes the sample and
representative files), the input shapes, the options that reach calibration
(`convert/calibration.py: calibration_fields`: representative_count, allow_float, ...)
and the TensorFlow and Keras versions. A flag set outside the int8 family gets None and
converts standalone, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.convert.cache import hash_json
from harness.convert.calibration import calibration_fields, in_family

if TYPE_CHECKING:
    from harness.config import ModelSpec
    from harness.core.flag_sets import FlagSet
    from harness.pipeline.build import Builder

CALIBRATION_FORMAT = 1


def calibration_key(b: Builder, m: ModelSpec, fs: FlagSet) -> str:
    return hash_json({
        "format": CALIBRATION_FORMAT, "model": b.model_hash(m), "entry": m.entry, "signature": m.signature,
        "data": b.reference_key(m), "options": calibration_fields(fs.converter_options()),
        "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
        "tf": b.versions.get("tensorflow"), "keras": b.versions.get("keras"),
    })


def calibration_path(b: Builder, m: ModelSpec, fs: FlagSet) -> Path | None:
    """The calibrated .tflite that FS quantizes from, or None when FS converts standalone."""
    if m.kind == "tflite" or not in_family(fs.converter_options(), fs.needs_representative_data):
        return None
    folder = b.cache.root / "calibrations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{calibration_key(b, m, fs)}.tflite"
