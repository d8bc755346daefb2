"""The Device protocol: where an artifact runs.

A device measures one artifact with one set of settings and returns a `Measurement`:
the runner's typed report (timings, memory, runtime) and the outputs on the evaluation
samples. Devices never import TensorFlow; drift and health are computed by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass
class MeasureJob:
    artifact: Path
    artifact_sha: str
    inputs_npz: Path  # "0", "1", ... per input (first axis = sample)
    input_names: list[str]
    threads: int
    xnnpack: bool
    warmup_runs: int
    runs: int
    min_seconds: float
    max_seconds: float
    timeout_s: float
    repeat: int = 1
    pin_cpu: int | None = None
    collect_outputs: bool = True  # False: latency only (compare's confirmation), no evaluation pass
    runtime_api: str = "interpreter"  # interpreter | compiled_model (harness/core/runtimes.py)
    accelerator: str = "cpu"  # cpu | gpu | npu | a fallback chain such as gpu+cpu


@dataclass
class RunnerReport:
    """What a runner said about one measurement, typed.

    The local runner's JSON, the Python runner on a device and `benchmark_model`'s parsed
    output all map onto these fields; anything else a runner reports stays in `extra`
    (kept for diagnosis, read by nothing that decides).
    """

    runtime: str | None = None  # ai_edge_litert | tflite_runtime | tensorflow | benchmark_model
    runtime_version: str | None = None
    init_us: float | None = None  # interpreter creation + allocate_tensors
    first_us: float | None = None  # first inference
    warmup_us: list[float] = field(default_factory=list)
    warmup_avg_us: float | None = None
    samples_us: list[float] = field(default_factory=list)  # every timed invoke, all processes
    latency_aggregate: dict[str, Any] | None = None  # benchmark_model: count, avg, std, min, max, p5, median, p95
    warmup_aggregate: dict[str, Any] | None = None
    timed_s: float | None = None
    processes: int = 1
    process_medians_us: list[float] = field(default_factory=list)
    baseline_rss_kb: int | None = None
    peak_rss_kb: int | None = None
    peak_rss_delta_kb: int | None = None  # peak RSS above the baseline before the model was loaded
    init_rss_delta_kb: int | None = None  # RSS above the baseline once the interpreter is allocated
    peak_memory_mb: float | None = None  # benchmark_model's own figures
    init_memory_mb: float | None = None
    runtime_api: str | None = None  # what the runner measured through: interpreter | compiled_model
    accelerator: str | None = None
    fully_accelerated: bool | None = None  # CompiledModel.is_fully_accelerated()
    roundtrip_us: list[float] = field(default_factory=list)  # CompiledModel: write + run + read per inference
    delegate: str | None = None
    delegate_coverage: float | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    delegate_partitions: int | None = None
    num_threads: int | None = None
    warnings: list[str] = field(default_factory=list)
    device_state: dict[str, Any] | None = None  # governor/frequency/temperature before and after
    measured_during_conversion: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)  # output tensors: name, shape, dtype
    eval_samples: int = 0
    stderr: str = ""
    command: list[str] = field(default_factory=list)
    raw_output: str = ""  # what benchmark_model printed, whole: kept in results/<run>/logs/ with `command`
    scripts: list[dict[str, Any]] = field(default_factory=list)  # pushed shell scripts (adb/scripts.py), logged too
    transport: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RunnerReport:
        """A runner's JSON answer; unknown keys go to `extra`, missing ones keep their defaults."""
        known = _REPORT_FIELDS
        values = {k: v for k, v in (raw or {}).items() if k in known and v is not None}
        extra = {k: v for k, v in (raw or {}).items() if k not in known}
        report = cls(**values)
        report.extra.update(extra)
        return report

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _REPORT_FIELDS if k != "extra"}
        out.update(self.extra)
        return out


_REPORT_FIELDS = frozenset(f for f in RunnerReport.__dataclass_fields__)


@dataclass
class Measurement:
    status: str  # ok | runtime_failed | unsupported | timeout | device_lost
    reason: str = ""
    report: RunnerReport = field(default_factory=RunnerReport)
    outputs: list[np.ndarray] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)


class Device(Protocol):
    name: str
    runner: str

    def info(self) -> dict[str, Any]: ...

    def measure(self, job: MeasureJob) -> Measurement: ...

    def close(self) -> None: ...
