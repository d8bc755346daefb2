"""What stage one hands to stage two: a prepared model and its artifacts.

`Builder` (build.py) makes them, the scheduler (schedule.py) orders the work that makes
them, and the campaign and the executors pass them to devices; they live here so none
of those needs another's module for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config import ModelSpec
from harness.core import statuses

AS_GIVEN = "as_given"  # the flag-set column of a .tflite measured without conversion


@dataclass
class Prepared:
    """A model ready to measure: its evaluation inputs, reference outputs and input specs."""

    model: ModelSpec
    ok: bool
    reason: str = ""
    failure_category: str | None = None
    dir: Path | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Artifact:
    """A converted .tflite (or the reasoned failure to make one) for one model and flag set."""

    model: ModelSpec
    flag_set: str
    ok: bool
    sha: str | None = None
    path: Path | None = None
    meta: dict = field(default_factory=dict)
    converted: bool = False
    status: str = statuses.OK
    reason: str = ""
    failure_category: str | None = None
    log: str | None = None


