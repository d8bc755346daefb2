"""What stage one hands to stage two: a prepared model and its artifacts.

`Builder` (build.py) makes them, the scheduler (schedule.py) orders the work that makes
them, and the campaign and the executors pass them to devices; they live here so none
of those needs another's module for its types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.core import statuses

AS_GIVEN = "as_given"  # the flag-set column of a .tflite measured without conversion


@dataclass
class InputSpec:
    """One model input as the artifact takes it: the name samples are keyed by, its shape
    (batch 1, unknown dimensions resolved) and the dtype samples are fed in."""

    name: str
    shape: list[int] = field(default_factory=list)
    dtype: str = "float32"
    model_shape: list[int | None] | None = None  # as the original model declares it (None: unknown dims)


@dataclass
class PreparedInfo:
    """What a preparation found: the model's inputs and outputs and where its evaluation data
    came from. Stored as JSON in the cache (`to_dict`) and read back with `from_dict`."""

    inputs: list[InputSpec] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    eval_source: str | None = None  # samples | random
    representative_source: str | None = None  # samples | representative | random | None
    eval_count: int = 0
    has_labels: bool = False
    has_reference: bool = False  # reference outputs of the original model exist
    notes: list[str] = field(default_factory=list)  # said in the rows (batch axis dropped, graph path...)
    conversion_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | PreparedInfo | None) -> PreparedInfo:
        if isinstance(raw, PreparedInfo):
            return raw
        raw = dict(raw or {})
        inputs = [i if isinstance(i, InputSpec) else InputSpec(**i) for i in raw.pop("inputs", [])]
        known = {k: raw.pop(k) for k in list(raw) if k in _PREPARED_FIELDS and raw[k] is not None}
        return cls(inputs=inputs, **known, extra=raw)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _PREPARED_FIELDS}
        out["inputs"] = [asdict(i) for i in self.inputs]
        return {**out, **self.extra}

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def input_shapes(self) -> list[list[int]]:
        return [i.shape for i in self.inputs]


@dataclass
class ArtifactInfo:
    """What a conversion produced beside the bytes: size, time, ops, how it was converted.
    Stored as JSON in the cache (`to_dict`) and read back with `from_dict`."""

    artifact: str | None = None  # sha256 of the .tflite (None: the conversion failed)
    size_bytes: int | None = None
    convert_s: float | None = None
    ops: list[str] = field(default_factory=list)
    representative: str | None = None  # the representative data the converter was given
    conversion_path: str | None = None  # keras | saved_model | tf_compat_v1_graph | jax:... | calibrated
    notes: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None  # a budget search's ranking and steps
    error: str | None = None  # a failed conversion's error text
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | ArtifactInfo | None) -> ArtifactInfo:
        if isinstance(raw, ArtifactInfo):
            return raw
        raw = dict(raw or {})
        known = {k: raw.pop(k) for k in list(raw) if k in _ARTIFACT_FIELDS and raw[k] is not None}
        return cls(**known, extra=raw)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in _ARTIFACT_FIELDS}, **self.extra}


_PREPARED_FIELDS = tuple(f for f in PreparedInfo.__dataclass_fields__ if f not in ("inputs", "extra"))
_ARTIFACT_FIELDS = tuple(f for f in ArtifactInfo.__dataclass_fields__ if f != "extra")


@dataclass
class Prepared:
    """A model ready to measure: its evaluation inputs, reference outputs and input specs."""

    model: ModelSpec
    ok: bool
    reason: str = ""
    failure_category: str | None = None
    dir: Path | None = None
    meta: PreparedInfo = field(default_factory=PreparedInfo)

    def __post_init__(self) -> None:
        self.meta = PreparedInfo.from_dict(self.meta)  # the cache's JSON, or a record already


@dataclass
class Artifact:
    """A converted .tflite (or the reasoned failure to make one) for one model and flag set."""

    model: ModelSpec
    flag_set: str
    ok: bool
    sha: str | None = None
    path: Path | None = None
    meta: ArtifactInfo = field(default_factory=ArtifactInfo)
    converted: bool = False
    status: str = statuses.OK
    reason: str = ""
    failure_category: str | None = None
    log: str | None = None

    def __post_init__(self) -> None:
        self.meta = ArtifactInfo.from_dict(self.meta)  # the cache's JSON, or a record already
