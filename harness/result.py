"""One result row: model x flag set x device x settings -> status, latency, memory, drift.

Rows cross every boundary (store, reports, compare), so they are plain data classes that
serialize to JSON; raw latency samples travel with them so statistics can be recomputed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    model: str
    flag_set: str
    device: str
    threads: int
    status: str
    reason: str = ""
    xnnpack: bool = True
    runner: str = "python"
    runtime: str | None = None
    runtime_version: str | None = None
    artifact: str | None = None  # sha256 of the .tflite
    artifact_path: str | None = None
    size_bytes: int | None = None
    convert_s: float | None = None
    converted: bool = False  # False when the artifact came from the cache
    failure_category: str | None = None
    ops: list[str] = field(default_factory=list)
    init_us: float | None = None
    first_us: float | None = None
    warmup_us: float | None = None  # mean of warm-up runs
    latency_us: dict[str, float] | None = None  # mean std min p50 p90 p99 max n
    samples_us: list[float] = field(default_factory=list)
    peak_rss_mb: float | None = None
    drift: dict[str, Any] | None = None
    representative: str | None = None  # samples | random | none
    eval_source: str | None = None  # samples | random
    tool_versions: dict[str, str] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    validity: str | None = None  # "valid", or why the measurement should not be trusted
    log: str | None = None  # path of the full log for this job, when kept
    plan_index: int | None = None  # position in the campaign's plan, for stable table order
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def key(self) -> tuple:
        return (self.model, self.flag_set, self.device, self.threads, self.xnnpack)

    def to_dict(self) -> dict:
        d = asdict(self)
        return _json_safe(d)

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        known = cls.__dataclass_fields__
        data = d if all(k in known for k in d) else {k: v for k, v in d.items() if k in known}
        drift = data.get("drift")
        if drift and ("inf" in drift.values() or "-inf" in drift.values()):
            data = {**data, "drift": {k: _from_json_number(v) for k, v in drift.items()}}
        return cls(**data)


def _json_safe(obj: Any) -> Any:
    """JSON has no Infinity: write +/-inf as the strings 'inf'/'-inf', NaN as null."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _from_json_number(v: Any) -> Any:
    if v == "inf":
        return math.inf
    if v == "-inf":
        return -math.inf
    return v
