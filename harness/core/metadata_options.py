"""A flag set's `metadata` table: validated when the campaign is read, written into the
artifact later by `harness/tflite/metadata.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import UsageError

TEXT_KEYS = ("name", "description", "version", "author", "license")
KNOWN_KEYS = (*TEXT_KEYS, "labels", "mean", "std")


def parse_metadata(raw: Any, where: str, base: Path | None = None) -> dict[str, Any]:
    """Validate a flag set's `metadata` table; labels paths resolve against `base`."""
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: metadata must be a table like {{ name = \"digits\", labels = \"labels.txt\" }}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KNOWN_KEYS:
            raise UsageError(f"{where}: metadata has unknown key {key!r}; use one of {', '.join(KNOWN_KEYS)}")
        if key in TEXT_KEYS:
            if not isinstance(value, str):
                raise UsageError(f"{where}: metadata.{key} must be a string, got {value!r}")
            out[key] = value
        elif key == "labels":
            if not isinstance(value, str) or not value:
                raise UsageError(f"{where}: metadata.labels must be a path to a text file, one label a line")
            p = Path(value)
            if base is not None and not p.is_absolute():
                p = base / p
            if not p.is_file():
                raise UsageError(f"{where}: metadata.labels file {p} does not exist")
            out[key] = str(p.resolve())
        else:
            if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise UsageError(f"{where}: metadata.{key} must be a non-empty list of numbers, e.g. [127.5]")
            if key == "std" and any(v == 0 for v in value):
                raise UsageError(f"{where}: metadata.std must not contain 0 (values are divided by it)")
            out[key] = [float(v) for v in value]
    if ("mean" in out) != ("std" in out):
        raise UsageError(f"{where}: metadata needs both mean and std for normalization, or neither")
    if "mean" in out and len(out["mean"]) != len(out["std"]) and 1 not in (len(out["mean"]), len(out["std"])):
        raise UsageError(f"{where}: metadata.mean and metadata.std must have the same length (or one value)")
    return out
