"""Content-addressed cache of reference data and converted artifacts.

Keys hash what decides the output: the model's bytes, the flag set, the sample data and
the tool versions, so a second run converts nothing and an edited model converts again.
Artifacts are stored under their own content hash; entries are written to a temporary
name and renamed, so a killed run never leaves a half-written file behind a valid key.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness.core.hashing import hash_json, hash_path  # noqa: F401 - re-exported

CACHE_FORMAT = 3  # bump when worker output for the same inputs would change
# 3: multi-input models calibrate with representative data by input name (2 cached their
#    int8 failures), samples that kept a batch-1 axis are read, older SavedModels convert
#    through the tf.compat.v1 graph path, and rows carry the conversion path and notes
# 2: Keras models with unknown dimensions convert through a fixed-shape wrapper (1 left their
#    weights as resource variables: wrong fp32 outputs, int8 crashed), and every Keras model
#    from a SavedModel exported once per pool (same outputs; the conversion metadata differs)


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def savez_atomic(path: Path, **arrays) -> None:
    """`np.savez` by way of a temporary name: two runs sharing a cache (CI jobs, parallel test
    workers) that compute the same reference write the same file, and a reader never opens a
    half-written one."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


class Cache:
    def __init__(self, root: Path):
        self.root = root
        for sub in ("references", "conversions", "artifacts", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # references: one folder per key with eval.npz, reference.npz, representative.npz, meta.json
    def reference_dir(self, key: str) -> Path:
        return self.root / "references" / key

    def reference_meta(self, key: str) -> dict | None:
        meta = self.reference_dir(key) / "meta.json"
        return json.loads(meta.read_text()) if meta.is_file() else None

    def store_reference_meta(self, key: str, meta: dict) -> None:
        atomic_write(self.reference_dir(key) / "meta.json", json.dumps(meta, indent=1).encode())

    # conversions: key -> metadata including the artifact's content hash
    def conversion(self, key: str) -> dict | None:
        path = self.root / "conversions" / f"{key}.json"
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        if meta.get("artifact") and not self.artifact_path(meta["artifact"]).is_file():
            return None
        return meta

    def store_conversion(self, key: str, meta: dict) -> None:
        atomic_write(self.root / "conversions" / f"{key}.json", json.dumps(meta, indent=1).encode())

    def artifact_path(self, sha: str) -> Path:
        return self.root / "artifacts" / f"{sha}.tflite"

    def adopt_artifact(self, tmp_file: Path) -> tuple[str, Path]:
        """Move a freshly written .tflite into the store under its content hash."""
        sha = hash_path(tmp_file)
        dest = self.artifact_path(sha)
        if dest.exists():
            tmp_file.unlink(missing_ok=True)
        else:
            os.replace(tmp_file, dest)
        return sha, dest

    def tmp_path(self, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", suffix=suffix)
        os.close(fd)
        return Path(name)
