"""The Device protocol: where an artifact runs.

A device measures one artifact with one set of settings and returns a `Measurement`:
the runner's raw answer (timings, memory, runtime) and the outputs on the evaluation
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


@dataclass
class Measurement:
    status: str  # ok | runtime_failed | unsupported | timeout | device_lost
    reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    outputs: list[np.ndarray] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)


class Device(Protocol):
    name: str
    runner: str

    def info(self) -> dict[str, Any]: ...

    def measure(self, job: MeasureJob) -> Measurement: ...

    def close(self) -> None: ...
