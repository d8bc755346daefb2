"""One result row: model x flag set x device x settings -> status, latency, memory, drift.

Rows cross every boundary (store, reports, compare), so they are plain data classes that
serialize to JSON; raw latency samples travel with them so statistics can be recomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    runtime_api: str = "interpreter"  # interpreter | compiled_model (part of the key: harness/core/runtimes.py)
    accelerator: str = "cpu"  # cpu | gpu | npu | a fallback chain such as gpu+cpu (part of the key)
    fully_accelerated: bool | None = None  # CompiledModel's is_fully_accelerated(); None for the Interpreter
    roundtrip_us: dict[str, float] | None = None  # CompiledModel: write + run + read per inference (p50 mean min n)
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
    peak_rss_mb: float | None = None  # the model's peak memory above the runner's baseline
    init_memory_mb: float | None = None  # memory above the baseline once the interpreter is allocated
    drift: dict[str, Any] | None = None
    representative: str | None = None  # samples | random | none
    conversion_path: str | None = None  # how the artifact was made: keras, saved_model, tf_compat_v1_graph, jax:...
    eval_source: str | None = None  # samples | random
    tool_versions: dict[str, str] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    validity: str | None = None  # "valid", or why the measurement should not be trusted
    settings: dict[str, Any] | None = None  # how it was measured (warmup, runs, seconds, repeat): compare's identity
    inputs_dir: str | None = None  # folder of the eval.npz it was measured on: compare re-measures with it
    log: str | None = None  # path of the full log for this job, when kept
    diagnosis: dict[str, Any] | None = None  # budget flag sets: ranked layers and the search (pipeline/search.py)
    plan_index: int | None = None  # position in the campaign's plan, for stable table order
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def key(self) -> tuple:
        return (self.model, self.flag_set, self.device, self.threads, self.xnnpack, self.runtime_api,
                self.accelerator)

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it deep-copies element by element, and a row carries up to
        # ~10^5 raw samples; json_safe already builds new containers (it is the copy).
        return json_safe({name: getattr(self, name) for name in self.__dataclass_fields__})

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        known = cls.__dataclass_fields__
        data = d if all(k in known for k in d) else {k: v for k, v in d.items() if k in known}
        drift = data.get("drift")
        if drift and ("inf" in drift.values() or "-inf" in drift.values()):
            data = {**data, "drift": {k: _from_json_number(v) for k, v in drift.items()}}
        return cls(**data)


def json_safe(obj: Any) -> Any:
    """JSON has no Infinity: write +/-inf as the strings 'inf'/'-inf', NaN as null."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if obj and type(obj[0]) is float and all(type(v) is float for v in obj) and math.isfinite(sum(obj)):
            return list(obj)  # raw samples: all finite floats (a NaN or inf anywhere makes the sum so)
        return [json_safe(v) for v in obj]
    return obj


def _from_json_number(v: Any) -> Any:
    if v == "inf":
        return math.inf
    if v == "-inf":
        return -math.inf
    return v


class ReportRow:
    """The part of a Result that reports read, built straight from the store's report columns.

    A 100k-row report built 100k full Results (36 fields, five fresh containers each) only
    to read twenty of them; this slotted class is built in a third of the time. It reads like
    a Result for every report function (same attribute names and meanings); fields it does
    not carry (ops, tool versions, device info, ...) are simply absent.
    """

    __slots__ = ("model", "flag_set", "device", "threads", "xnnpack", "runtime_api", "accelerator", "status",
                 "reason", "artifact", "plan_index",
                 "runtime", "runtime_version", "size_bytes", "convert_s", "failure_category", "init_us", "first_us",
                 "peak_rss_mb", "representative", "validity", "latency_us", "drift", "samples_us",
                 "fully_accelerated", "roundtrip_us",  # Store.report_rows, after the drift columns
                 "artifact_path", "settings", "inputs_dir")  # the last three: Store.fill_identity
    HEAD = __slots__[:21]  # the leading fields, in this order, as one tuple
    KEY_LEN = 7  # HEAD starts with the key (Result.key), then status, reason, artifact

    def __init__(self, head: tuple, latency_us: dict | None, drift: dict | None):
        (self.model, self.flag_set, self.device, self.threads, xnnpack, self.runtime_api, self.accelerator,
         self.status, reason, self.artifact,
         self.plan_index, self.runtime, self.runtime_version, self.size_bytes, self.convert_s,
         self.failure_category, self.init_us, self.first_us, self.peak_rss_mb, self.representative,
         self.validity) = head
        self.xnnpack = bool(xnnpack)
        self.reason = reason or ""
        self.latency_us = latency_us
        self.drift = drift
        self.samples_us: list[float] = []
        self.fully_accelerated = self.roundtrip_us = None
        self.artifact_path = self.settings = self.inputs_dir = None

    @property
    def key(self) -> tuple:
        return (self.model, self.flag_set, self.device, self.threads, self.xnnpack, self.runtime_api,
                self.accelerator)

    def __repr__(self) -> str:
        return f"ReportRow({self.model!r}, {self.flag_set!r}, {self.device!r}, {self.threads!r}, {self.status!r})"
