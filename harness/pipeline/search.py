"""The budget search: keep the worst layers in float until an artifact meets the budget.

Layers are taken worst first by the diagnosis's ranking (isolated error, `diagnose.py`, or the
quantizer backend's added cosine loss, `quantize_search.py`), a few more at each step
(1, 2, 3, 5, 8, ...), each step quantized from the shared calibration (no conversion)
and measured on the local runtime: drift against the original on the evaluation
samples, size, p50 latency. The first step within the budget is then pruned: each of
its float layers, least harmful first, is quantized again if the budget still holds
without it. Every step is reported; a budget that no step meets ends with the best
step found and a line saying so.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.core.budget import Budget

MAX_STEPS = 16  # growing steps: with 1,2,3,5,8,... growth that covers ~1500 layers


@dataclass
class Step:
    float_layers: list[str]  # short labels, worst first
    float_tensors: list[str]  # the tensor names kept float (denylisted_nodes)
    drift: dict[str, Any] | None
    size_bytes: int | None
    p50_us: float | None
    meets_budget: bool
    failures: list[str] = field(default_factory=list)
    shortfall: float = math.inf
    top1_ci: list[float] | None = None
    quantize_s: float | None = None
    phase: str = "grow"  # base | grow | prune
    status: str = "ok"
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("path", "float_tensors", "shortfall")} | {
            "float_tensors": self.float_tensors}


@dataclass
class SearchResult:
    budget: str
    steps: list[Step]
    chosen: Step | None
    met: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "met": self.met, "message": self.message,
                "steps": [s.to_dict() for s in self.steps],
                "chosen": self.chosen.to_dict() if self.chosen else None}


def growth(n: int) -> list[int]:
    """How many of the N ranked layers each growing step keeps float: 1, 2, 3, 5, 8, ... N."""
    sizes, k = [], 1
    while k < n and len(sizes) < MAX_STEPS - 1:
        sizes.append(k)
        k = k + 1 if k < 3 else math.ceil(k * 1.6)
    return sizes + [n] if n else sizes


def measure_step(session, tensors: list[str], labels: list[str], budget: Budget, phase: str) -> Step:
    """Quantize with TENSORS float, measure it on the local runtime, judge it against BUDGET."""
    from harness.core import statuses
    from harness.core.result import Result
    from harness.core.runtimes import CPU_INTERPRETER, variants
    from harness.devices.local import LocalDevice
    from harness.pipeline.artifacts import Artifact
    from harness.pipeline.evaluate import measure_on

    if hasattr(session, "quantized"):  # TensorFlow's quantizer: steps cached (pipeline/diagnose.py)
        data, sha, path = session.quantized(tensors)
    else:
        cache = session.builder.cache
        out = cache.tmp_path(".tflite")
        data = session.run_job(session.job("quantize", out, tensors))
        sha, path = cache.adopt_artifact(out)
    art = Artifact(session.model, session.flag_set.name, True, sha, path, {"size_bytes": data["size_bytes"]})
    # p50 on the runtime the flag set's row uses: the campaign's first (runtime API, accelerator)
    api, accel = (variants(session.settings.runtimes, session.settings.accelerators) or [CPU_INTERPRETER])[0]
    row = Result(model=session.model.name, flag_set=session.flag_set.name, device="local", threads=1,
                 status=statuses.OK, runtime_api=api, accelerator=accel)
    row, _m = measure_on(LocalDevice(), art, session.prepared, 1, session.settings, row)
    ok = row.status in (statuses.OK, statuses.UNHEALTHY)
    verdict = budget.check(row.drift if ok else None)
    return Step(labels, tensors, row.drift, data["size_bytes"], (row.latency_us or {}).get("p50"),
                verdict.meets and row.status == statuses.OK, verdict.failures if ok else [row.reason],
                verdict.shortfall, list(verdict.top1_ci) if verdict.top1_ci else None, data.get("quantize_s"),
                phase, row.status, str(path))


def run_search(session, budget: Budget, write: Path | None = None, events=None) -> SearchResult:
    """The search for SESSION's model and flag set; WRITE receives the chosen .tflite."""
    note = getattr(events, "note", None) or (lambda text: None)
    layers = session.diagnosis().layers
    tensors = [x.tensor for x in layers]
    label = {x.tensor: x.label for x in layers}
    steps: list[Step] = []

    def step(chosen: list[str], phase: str) -> Step:
        s = measure_step(session, chosen, [label[t] for t in chosen], budget, phase)
        steps.append(s)
        note(f"{session.model.name}/{session.flag_set.name}: {len(chosen)} float layer(s) -> "
             f"{'meets' if s.meets_budget else 'misses'} {budget.text}")
        return s

    chosen = step([], "base")
    if not chosen.meets_budget:
        chosen = None
        for k in growth(len(tensors)):
            s = step(tensors[:k], "grow")
            if s.meets_budget:
                chosen = s
                break
    if chosen is not None and chosen.float_tensors:
        for t in list(reversed(chosen.float_tensors)):  # least harmful first
            rest = [x for x in chosen.float_tensors if x != t]
            if not rest:
                continue  # no float layer at all is the base step, already measured
            s = step(rest, "prune")
            if s.meets_budget:
                chosen = s
    met = chosen is not None
    if chosen is None:
        chosen = min(steps, key=lambda s: (s.status != "ok", s.shortfall, len(s.float_tensors)))
        message = (f"budget {budget.text} cannot be met: even {len(steps[-1].float_tensors)} float layer(s) miss it; "
                   f"best step keeps {len(chosen.float_tensors)} float ({'; '.join(chosen.failures)})")
    elif not chosen.float_tensors:
        message = f"{session.flag_set.name} already meets {budget.text}: no layer needs to stay float"
    else:
        message = (f"meets {budget.text} with {len(chosen.float_tensors)} layer(s) kept float: "
                   f"{', '.join(chosen.float_layers)}")
    if write is not None and chosen.path:
        write.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chosen.path, write)
    return SearchResult(budget.text, steps, chosen, met, message)
