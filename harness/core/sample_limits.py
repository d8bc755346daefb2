"""How much memory a sample file may ask for, checked before NumPy allocates any of it.

A `.npz` is a zip: a few kilobytes can declare members that decompress to terabytes, and a
`.npy` header can declare a shape far larger than the data behind it (NumPy allocates the
whole array before reading). Both are read from the zip directory and the `.npy` headers,
without decompressing anything, and refused past the limit: 4 GiB, or the memory the machine
has available when that is less.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from harness.core.errors import DAMAGED_ZIP_ERRORS

LIMIT_BYTES = 4 << 30


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def sample_limit() -> tuple[int, str]:
    """(bytes, how it was chosen) for the arrays of one sample file."""
    free = available_memory()
    if free is not None and free < LIMIT_BYTES:
        return free, f"the {_gib(free)} of memory available"
    return LIMIT_BYTES, f"the {_gib(LIMIT_BYTES)} limit"


def _header_bytes(fp) -> int | None:
    """The bytes a .npy header says its array holds, or None when it is no .npy header."""
    try:
        version = np.lib.format.read_magic(fp)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fp, max_header_size=10_000)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        return None  # not ours to judge: np.load gives its own, worded error
    return math.prod(shape) * dtype.itemsize


def declared_bytes(path: Path) -> int:
    """What loading PATH would allocate: the larger of the zip's uncompressed sizes and the headers' arrays."""
    if zipfile.is_zipfile(path):
        total = 0
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                declared = info.file_size
                if info.filename.endswith(".npy"):
                    with z.open(info) as fp:
                        declared = max(declared, _header_bytes(fp) or 0)
                total += declared
        return total
    with open(path, "rb") as fp:
        return _header_bytes(fp) or 0


def check_sample_size(path: Path) -> str | None:
    """The one-line reason PATH is refused, or None when its arrays fit the limit."""
    try:
        need = declared_bytes(path)
    except DAMAGED_ZIP_ERRORS:
        return None  # unreadable: load_arrays words that
    limit, why = sample_limit()
    if need > limit:
        return (f"{path}: its arrays would take {_gib(need)} ({need:,} bytes) in memory, over {why} "
                f"({limit:,} bytes); use fewer or smaller samples")
    return None
