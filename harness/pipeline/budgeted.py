"""A flag set with a budget, in a campaign: its artifact is the budget search's choice.

The campaign's builder hands such a flag set here instead of to a converter worker. The
search (`search.py`) runs in a thread of the parent: each step is a `quantize` job in
the same worker pool (from the model's shared calibration) and a short measurement on
the local runtime. The outcome looks like a worker's answer, so the builder caches it
under the flag set's conversion key, which holds the budget and the data, like any
artifact: a second run searches nothing. The row keeps the ranking and every step
(`Result.diagnosis`), which `report` and the HTML report show.

Step latencies are indicative: other conversions may share the CPU while the search
runs. The chosen artifact is then measured like every other row, after conversions end.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from harness.convert.pool import WorkerAnswer
from harness.core.flag_sets import FlagSet
from harness.pipeline.artifacts import Prepared
from harness.pipeline.quantize import quantizer_version

FLOAT_NOTE = "float layers: "  # how a budget row's reason starts (report/diagnosis.py looks for it)
STEP_SETTINGS = {"runs": 20, "warmup_runs": 2, "min_seconds": 0.1, "repeat": 1}


def plain_flag_set(fs: FlagSet) -> FlagSet:
    """FS without its budget: the quantization every search step starts from."""
    return FlagSet(fs.name, {k: v for k, v in fs.options.items() if k not in ("budget", "base")})


def search_artifact(builder, m, fs: FlagSet, p: Prepared, out_path: Path) -> WorkerAnswer:
    """Run the search for M under FS; the chosen .tflite is written to OUT_PATH."""
    from harness.core.budget import parse_budget
    from harness.core.errors import HarnessError
    from harness.pipeline.diagnose import DiagnoseSession
    from harness.pipeline.search import run_search

    t0 = time.perf_counter()
    try:
        settings = replace(builder.campaign.settings, **STEP_SETTINGS)
        if fs.quantizer:  # int16 activations and the rest of the quantizer's recipes: its per-op rules
            from harness.pipeline.quantize_search import QuantizerSession

            session = QuantizerSession(builder, m, plain_flag_set(fs), p, settings)
        else:
            session = DiagnoseSession(builder, m, plain_flag_set(fs), p, settings)
        diagnosis = session.diagnosis()
        found = run_search(session, parse_budget(fs.budget, f"flag_sets.{fs.name}.budget"), write=out_path,
                           events=builder.events)
    except HarnessError as exc:
        return WorkerAnswer(ok=False, error=str(exc), error_type=type(exc).__name__, usage=True)
    except Exception as exc:  # noqa: BLE001 - a failed search is a row with a reason, like a failed conversion
        return WorkerAnswer(ok=False, error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
    if not found.met:
        builder.events.note(f"{m.name}/{fs.name}: {found.message}")
    size = out_path.stat().st_size if out_path.is_file() else 0
    return WorkerAnswer(ok=True, data={
        "size_bytes": size, "convert_s": time.perf_counter() - t0, "tf_version": builder.versions.get("tensorflow"),
        "diagnosis": {**diagnosis.compact(), "search": found.to_dict()},
        **({"conversion_path": f"ai_edge_quantizer:{fs.quantizer.get('recipe') or 'rules'}+budget",
            "tool_version": f"ai-edge-quantizer {quantizer_version()}"} if fs.quantizer else {}),
    })


def start_search(builder, m, fs: FlagSet, p: Prepared, out_path: Path) -> Future:
    """`search_artifact` in a thread; the Future resolves to its WorkerAnswer (as a pool job's does)."""
    future: Future = Future()
    future.set_running_or_notify_cancel()

    def work() -> None:
        started = time.time()
        answer = search_artifact(builder, m, fs, p, out_path)
        answer.started_at, answer.finished_at = started, time.time()
        future.set_result(answer)

    threading.Thread(target=work, name=f"search-{m.name}-{fs.name}", daemon=True).start()
    return future


def float_note(diagnosis: dict) -> str:
    """A budget row's reason: which layers stayed float and whether the budget was met."""
    search = diagnosis.get("search") or {}
    chosen = search.get("chosen") or {}
    names = chosen.get("float_layers") or []
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    verdict = f"meets {search.get('budget')}" if search.get("met") else \
        f"budget {search.get('budget')} NOT met, best step kept"
    return f"{FLOAT_NOTE}{shown or 'none'}; {verdict} ({len(search.get('steps', []))} search steps)"
