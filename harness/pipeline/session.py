"""Open a diagnosis session outside a campaign: one model, one flag set, a pool, a prepared model.

The CLI command, the Python API and the pytest fixture all come through here, so they
share the campaign's cache (references, calibrations, artifacts, diagnoses) and its
conversion keys: a search made by `diagnose --budget` is the artifact a campaign with
the same budget flag set reuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import Campaign, Settings, model_from_path
from harness.core.flag_sets import FlagSet, resolve_flag_sets
from harness.pipeline.diagnose import DiagnoseSession, Diagnosis

if TYPE_CHECKING:
    from harness.pipeline.quantize_search import QuantizerSession

# A diagnosis is one long worker job (TensorFlow's NumericVerify pass over every layer): on
# EfficientNetB2 at 160x160 it took over the campaign's 600 s per-job limit on a loaded 2-core
# machine, so diagnose allows an hour unless told otherwise (`--timeout`).
SEARCH_SETTINGS = Settings(runs=20, warmup_runs=2, min_seconds=0.1, eval_samples=200, timeout_s=3600.0)


def open_session(model: str | Path, flag_set: str | FlagSet = "int8", *, samples: str | Path | None = None,
                 cache_dir: str | Path | None = None, out_dir: str | Path | None = None, workers: int = 1,
                 settings: Settings | None = None, user_flag_sets: dict[str, FlagSet] | None = None,
                 backend: str = "auto") -> DiagnoseSession | QuantizerSession:
    """Prepare MODEL (references, evaluation and representative data; cached) and open a session.

    BACKEND: `tf` (TensorFlow's quantizer: denylisted nodes, NumericVerify), `quantizer` (the AI
    Edge Quantizer's per-op rules: int16 activations too, and a given float .tflite), or `auto`:
    the flag set's own tool (`diagnose_backends.py`)."""
    from harness.pipeline.campaign import CampaignRun, RunOptions
    from harness.pipeline.diagnose_backends import choose_backend

    spec = model_from_path(str(model), samples=samples, where=str(model))
    fs = flag_set if isinstance(flag_set, FlagSet) else resolve_flag_sets([flag_set], user_flag_sets or {})[0]
    chosen = choose_backend(fs, backend)
    fs = chosen.adopt(fs, spec, str(model))
    s = settings or SEARCH_SETTINGS
    campaign = Campaign(name="diagnose", models=(spec,), flag_sets=(fs,), devices=("local",), settings=s)
    root = Path(out_dir) if out_dir else Path("results") / "diagnose"
    # the run's own folder: the builder and pools add `logs/` themselves (ROOT/logs/, not ROOT/logs/logs/)
    options = RunOptions(out_dir=root, cache_dir=Path(cache_dir) if cache_dir else None, workers=workers)
    run = CampaignRun(campaign, options)
    prepared = run.builder.prepare_all()[spec.name]
    try:
        return chosen.session(run.builder, spec, fs, prepared, s)
    except BaseException:
        run.builder.close()
        raise


def diagnose(model: str | Path, flag_set: str = "int8", *, samples: str | Path | None = None,
             budget: str | None = None, float_layers: list[str] | None = None, cache_dir: str | Path | None = None,
             out_dir: str | Path | None = None, workers: int = 1, settings: Settings | None = None,
             write: str | Path | None = None, backend: str = "auto") -> Diagnosis:
    """Python API: rank MODEL's layers under FLAG_SET; with BUDGET, search for the cheapest mixed
    precision that meets it (the chosen .tflite is written to WRITE when given).

    FLOAT_LAYERS diagnoses the model with those layers kept float instead (and, with a budget,
    is where the search's step 0 is measured)."""
    session = open_session(model, flag_set, samples=samples, cache_dir=cache_dir, out_dir=out_dir,
                           workers=workers, settings=settings, backend=backend)
    try:
        nodes = session.resolve_layers(float_layers) if float_layers else []
        result = session.diagnosis(nodes)
        if budget is not None:
            from harness.core.budget import parse_budget
            from harness.pipeline.search import run_search

            found = run_search(session, parse_budget(budget), write=Path(write) if write else None)
            result.search = found.to_dict()
        return result
    finally:
        session.close()
