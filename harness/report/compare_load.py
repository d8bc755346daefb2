"""The two sides of a compare: rows of a stored run, or of a results.json export.

Shared by the `compare` command and the Python API (harness.pipeline.confirm.compare_runs).
From the store only what compare reads is loaded: the report columns, the raw samples as
float64 arrays from their packed column, and the identity fields (artifact path, settings,
inputs folder) from the row JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.errors import UsageError
from harness.core.result import Result
from harness.store import Store, default_store_path


def load_rows(spec: str | Path, store_path: Path | None = None, which: str = "BASE") -> tuple[str, list]:
    """(name, rows) of a run id (prefix, or 'latest') in the store, or a results.json file / run folder."""
    path = Path(spec)
    spec = str(spec)
    if path.is_dir():
        path = path / "results.json"
        if not path.is_file():
            raise UsageError(f"{which} {spec}: folder has no results.json; give a run id or a results.json file")
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("results")
            if not isinstance(data, list):
                raise ValueError("expected a list of result objects")
            return str(spec), [Result.from_dict(d) for d in data]
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{which} {spec}: not a results.json export ({exc}); "
                             "give a run id or the results.json a run wrote") from None
    if spec.endswith(".json"):
        raise UsageError(f"{which} {spec}: no such file; give a run id or an existing results.json")
    store_path = store_path or default_store_path()
    if not store_path.is_file():
        raise UsageError(f"no results store at {store_path}; run `tflite-harness run` first or pass --store PATH")
    s = Store(store_path)
    try:
        run = s.run(spec)
        # Only what compare reads: the report columns (no JSON decoding per row) and the raw
        # samples as float64 arrays straight from their packed column (no Python float each).
        rows = s.report_rows(run.id)
        samples = s.sample_arrays(run.id)
        for r in rows:
            r.samples_us = samples.get(r.key, [])
        s.fill_identity(run.id, rows)  # artifact path, settings, inputs: identity and confirmation
    finally:
        s.close()
    return run.id, rows
