"""Reading a run's `logs/build-timeline.json`: when each worker job waited, ran and ended.

The build records every preparation and conversion as events (`submitted`, `held`,
`started`, `finished`, `cancelled`; `pipeline/schedule.py`). Tests and `bench/pipelining.py`
ask two questions of them: how long each job ran, and whether a worker sat on a shared
calibration's lock while other jobs were queued (the schedule is meant to prevent that).
Plain data in, plain data out: no TensorFlow, no harness state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """One worker job: when it was submitted to the pool, started and finished (time.time())."""

    op: str
    model: str
    flag_set: str | None
    submitted: float
    started: float
    finished: float
    calibration_key: str | None = None  # the shared calibration it quantizes from, if any
    calibration: str | None = None  # "made" or "reused" (the worker's answer), if it used one


@dataclass(frozen=True)
class LockWait:
    """A job that started while another job was still making the calibration it needs: its
    worker waited on that calibration's lock for `blocked_s`, while `ready` other jobs sat
    in the queue (submitted before the wait ended, started after it began)."""

    model: str
    flag_set: str | None
    blocked_s: float
    ready: int


def spans(events: Iterable[dict]) -> list[Span]:
    """The jobs that ran, from the timeline's events (cancelled or never started ones left out)."""
    first: dict[tuple, dict] = defaultdict(dict)
    for e in events:
        key = (e["op"], e["model"], e["flag_set"])
        if e["event"] in ("submitted", "started", "finished") and e.get("t") is not None:
            first[key].setdefault(e["event"], e["t"])
        for field in ("calibration_key", "calibration"):
            if e.get(field) is not None:
                first[key].setdefault(field, e[field])
    return [Span(op, model, fs, d["submitted"], d["started"], d["finished"], d.get("calibration_key"),
                 d.get("calibration"))
            for (op, model, fs), d in first.items() if {"submitted", "started", "finished"} <= set(d)]


def lock_waits(events: Iterable[dict], family: set[str] | None = None) -> list[LockWait]:
    """Jobs that waited on a shared calibration's lock, with the other jobs that were ready meanwhile.

    Jobs share a calibration when their `calibration_key` is the same, or, in a timeline that
    has none (recorded before the key was), when they are conversions of one model under
    flag sets in FAMILY. The job that makes it is the one whose answer says "made", else the
    first to start; every other job of the group that started before it finished waited."""
    jobs = spans(events)
    groups: dict[tuple, list[Span]] = defaultdict(list)
    for s in jobs:
        if s.calibration_key:
            groups[("key", s.calibration_key)].append(s)
        elif s.op == "convert" and family and s.flag_set in family:
            groups[("model", s.model)].append(s)
    waits = []
    for group in groups.values():
        maker = next((s for s in group if s.calibration == "made"), None) or min(group, key=lambda s: s.started)
        for s in group:
            if s is maker or s.started >= maker.finished:
                continue
            end = min(s.finished, maker.finished)
            ready = sum(1 for o in jobs if o is not s and o not in group and o.submitted < end and o.started > s.started)
            waits.append(LockWait(s.model, s.flag_set, max(0.0, end - s.started), ready))
    return waits
