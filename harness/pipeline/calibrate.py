"""Where a model's shared calibration lives in the cache, and which flag sets use it.

The key covers what decides the calibrated model: the model's bytes, its entry and
signature, the sample and representative files (their bytes) and the seed of random
representative data, the input shapes, the options that reach calibration
(`convert/calibration.py: calibration_fields`: representative_count, allow_float, ...)
and the TensorFlow and Keras versions. A flag set outside the int8 family gets None and
converts standalone, as before.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from harness.convert.cache import hash_json, hash_path
from harness.convert.calibration import calibration_fields, in_family

if TYPE_CHECKING:
    from harness.config import ModelSpec
    from harness.core.flag_sets import FlagSet
    from harness.pipeline.build import Builder

CALIBRATION_FORMAT = 1
OFF_ENV = "TFLITE_HARNESS_CALIBRATE_ONCE"  # "0": every flag set converts standalone


@lru_cache(maxsize=256)
def _file_hash(path: str, stamp: tuple[int, int]) -> str:
    return hash_path(Path(path))


def _data_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    st = path.stat()
    return _file_hash(str(path), (st.st_mtime_ns, st.st_size))


def calibration_key(b: Builder, m: ModelSpec, fs: FlagSet) -> str:
    """Not the reference key: the number of evaluation samples does not change the calibration,
    so `diagnose` (200 samples) and a campaign (32) share one."""
    return hash_json({
        "format": CALIBRATION_FORMAT, "model": b.model_hash(m), "entry": m.entry, "signature": m.signature,
        "samples": _data_hash(m.samples), "representative": _data_hash(m.representative),
        "seed": b.campaign.settings.seed, "options": calibration_fields(fs.converter_options()),
        "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
        "tf": b.versions.get("tensorflow"), "keras": b.versions.get("keras"),
    })


def calibration_path(b: Builder, m: ModelSpec, fs: FlagSet) -> Path | None:
    """The calibrated .tflite that FS quantizes from, or None when FS converts standalone."""
    if m.kind == "tflite" or not in_family(fs.converter_options(), fs.needs_representative_data):
        return None
    if os.environ.get(OFF_ENV) == "0":  # bench/calibrate_once.py --standalone: the old way, for comparison
        return None
    folder = b.cache.root / "calibrations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{calibration_key(b, m, fs)}.tflite"
