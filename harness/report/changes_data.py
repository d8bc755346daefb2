"""What `changes` reads from the store: each row series (one row key) across the last N runs.

One SELECT over the chosen runs, only the columns the analysis needs: the row's identity
(artifact, runtime and version, settings), its exact figures, its p50, the tool versions and
the device's stable description. Reports read only the store (docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from harness.core.errors import UsageError
from harness.store import Store

# device_info fields that describe the device itself (not its temperature or frequency now)
DEVICE_FIELDS = ("model", "os", "abi", "cpu", "cores", "soc", "android", "sdk", "release", "board", "build")


# read from the extracted device_info (parsed once per row), not from the whole row JSON each time
_DEVICE_SQL = ", ".join(f"'{k}', json_extract(info, '$.{k}')" for k in DEVICE_FIELDS)


@dataclass(frozen=True)
class RunRef:
    id: str
    started_at: float
    git_commit: str | None


@dataclass
class Point:
    """One row of one run: what can change between runs, and what changed with it."""

    run: int  # index into ChangesInput.runs
    status: str
    reason: str
    artifact: str | None
    size_bytes: int | None
    ops: tuple[str, ...]
    runtime: str | None
    runtime_version: str | None
    settings: str  # canonical JSON of the measurement settings
    tools: str  # JSON of the row's tool versions (text: compared as is, parsed only to name a change)
    device: str  # JSON of the device's stable description (DEVICE_FIELDS)
    p50_us: float | None
    max_abs: float | None
    accuracy: float | None

    def same_artifact(self, other: Point) -> bool:
        """The gate's identity rule (report/compare_identity.py): same bytes, runtime and
        version, settings: a latency change between the two is the machine's."""
        return (self.artifact is not None and self.artifact == other.artifact
                and (self.runtime, self.runtime_version) == (other.runtime, other.runtime_version)
                and self.settings == other.settings)


@dataclass(frozen=True)
class SeriesArrays:
    """A series as arrays, for the vectorised passes: one entry per point."""

    run: np.ndarray  # int: run index
    log_p50: np.ndarray  # log of p50 where the row is ok and timed, else NaN
    identity: np.ndarray  # int code of (bytes, runtime, version, settings): the gate's identity
    everything: np.ndarray  # int code of the identity plus tools and device: any cause


@dataclass
class Series:
    key: tuple  # model, flag_set, device, threads, xnnpack
    points: list[Point] = field(default_factory=list)  # in run order
    _arrays: SeriesArrays | None = field(default=None, repr=False, compare=False)

    def arrays(self) -> SeriesArrays:
        if self._arrays is None:
            codes: dict[tuple, int] = {}
            full: dict[tuple, int] = {}
            ident, every = [], []
            for p in self.points:
                k = (p.artifact, p.runtime, p.runtime_version, p.settings)
                ident.append(codes.setdefault(k, len(codes)) if p.artifact is not None else -1 - len(ident))
                every.append(full.setdefault((*k, p.tools, p.device), len(full)))
            p50 = np.array([p.p50_us if p.status == "ok" and p.p50_us and p.p50_us > 0 else np.nan
                            for p in self.points], dtype=float)
            with np.errstate(invalid="ignore"):
                self._arrays = SeriesArrays(np.fromiter((p.run for p in self.points), int, len(self.points)),
                                            np.log(p50), np.array(ident, dtype=int), np.array(every, dtype=int))
        return self._arrays

    @property
    def label(self) -> str:
        model, flag_set, device, threads, xnnpack = self.key
        return f"{model}/{flag_set} on {device} ({threads} thr{'' if xnnpack else ', no xnnpack'})"


@dataclass
class ChangesInput:
    runs: list[RunRef]  # oldest first
    series: list[Series]  # the series to report (the --model / --flag-set filter)
    # every series on their devices, the filtered-out ones too: the machine correction's controls
    # (a filter must not leave one row to correct itself); None: `series`
    controls: list[Series] | None = None


def _number(v: object) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def _memo(fn):
    cache: dict = {}

    def get(text):
        if text not in cache:
            cache[text] = fn(text)
        return cache[text]
    return get


def read_series(store: Store, last: int | None = None, model: str | None = None, flag_set: str | None = None,
                device: str | None = None) -> ChangesInput:
    """The row series of the newest `last` runs (all when None), optionally filtered; the rows
    the model and flag-set filters leave out stay as the machine correction's controls."""
    q = "SELECT id, started_at, git_commit FROM runs ORDER BY started_at DESC, rowid DESC"
    rows = store.db.execute(q + (" LIMIT ?" if last else ""), (last,) if last else ()).fetchall()
    runs = [RunRef(*r) for r in reversed(rows)]
    if not runs:
        raise UsageError(f"{store.path}: no runs stored yet; run `tflite-harness run` first")
    index = {r.id: i for i, r in enumerate(runs)}
    where, args = ["run_id IN (SELECT value FROM json_each(?))"], [json.dumps(list(index))]
    if device:
        where.append("device = ?")
        args.append(device)
    sql = ("SELECT run_id, model, flag_set, device, threads, xnnpack, status, reason, artifact,"
           " COALESCE(size_bytes, json_extract(data, '$.size_bytes')),"
           " COALESCE(runtime, json_extract(data, '$.runtime')),"
           " COALESCE(runtime_version, json_extract(data, '$.runtime_version')),"
           " COALESCE(lat_p50, json_extract(data, '$.latency_us.p50')),"
           " COALESCE(drift_max_abs, json_extract(data, '$.drift.max_abs')),"
           " COALESCE(drift_accuracy, json_extract(data, '$.drift.accuracy')),"
           " json_extract(data, '$.ops'), json_extract(data, '$.settings'), json_extract(data, '$.tool_versions'),"
           f" (SELECT json_object({_DEVICE_SQL}) FROM (SELECT json_extract(data, '$.device_info') AS info))"
           f" FROM results WHERE {' AND '.join(where)}")
    by_key: dict[tuple, Series] = {}
    # the same few settings and op lists repeat over thousands of rows: decode each text once
    ops_of = _memo(lambda text: tuple(json.loads(text)) if text else ())
    settings_of = _memo(lambda text: json.dumps(json.loads(text), sort_keys=True) if text else "")
    for (run_id, m, f, d, threads, xnn, status, reason, artifact, size, runtime, version, p50, max_abs, acc,
         ops, settings, tools, info) in store.db.execute(sql, args):
        key = (m, f, d, threads, bool(xnn))
        by_key.setdefault(key, Series(key)).points.append(Point(
            run=index[run_id], status=status, reason=reason or "", artifact=artifact,
            size_bytes=int(size) if size is not None else None, ops=ops_of(ops),
            runtime=runtime, runtime_version=version,
            settings=settings_of(settings),
            tools=tools or "{}", device=info or "{}",
            p50_us=_number(p50), max_abs=_number(max_abs), accuracy=_number(acc)))
    everything = list(by_key.values())
    for s in everything:
        s.points.sort(key=lambda p: p.run)
    chosen = [s for s in everything if (model is None or s.key[0] == model) and (flag_set is None or s.key[1] == flag_set)]
    if not chosen:
        what = ", ".join(f"{n} {v!r}" for n, v in (("model", model), ("flag set", flag_set), ("device", device)) if v)
        raise UsageError(f"no stored rows{' for ' + what if what else ''} in the newest {len(runs)} run(s); "
                         "`tflite-harness report` shows the names a run used")
    return ChangesInput(runs, chosen, everything)
