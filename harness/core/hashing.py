"""Content hashes: what the conversion cache keys and artifact names are made of."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def hash_path(path: Path, h: Any = None) -> str:
    """sha256 of a file, or of a directory's relative names and contents."""
    h = h or hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode())
                _hash_file(p, h)
    else:
        _hash_file(path, h)
    return h.hexdigest()


def _hash_file(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


