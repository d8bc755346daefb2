"""tflite-harness: convert, run and compare TensorFlow Lite (LiteRT) models.

The Python API (harness/api.py; docs in docs/python.md):

    import harness
    run = harness.run_model("models/digits_cnn.keras", ["fp32", "int8"], runs=20)
    harness.rows(run).to_dataframe()           # a run's rows; the DataFrame needs pandas
    harness.compare(base_run_id, run)         # the regression gate between two runs

- `run_campaign(path_or_campaign, **overrides)` and `run_model(model, flag_sets, devices,
  **settings)` run to the end and return a `RunSummary` (run_id, out_dir, results);
- `convert_model(model, flag_sets)` converts only;
- `rows(run, store=...)` reads a run's rows (run id, results.json, run folder or summary);
- `compare(base, new, **thresholds)` returns the `Comparison` the CLI's gate prints;
- `diagnose(model, "int8", budget="top1>=0.99")` ranks the layers where quantization hurts
  and searches for the cheapest mixed precision within the budget.

Importing `harness` is cheap: each call imports what it needs when it runs.
"""

from __future__ import annotations

from typing import Any

from harness.core.version import __version__

API = ("run_campaign", "run_model", "convert_model", "rows", "compare", "diagnose")
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
