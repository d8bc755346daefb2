"""SQLite store of runs, artifacts and results.

Every result is committed in its own transaction the moment it exists, in WAL mode, so
a run killed at any instant keeps every row it reported done. Reports and exports read
only from here. The schema carries a version (PRAGMA user_version) and migrations.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import secrets
import sqlite3
import subprocess
import time
from array import array
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.core import statuses
from harness.core.errors import UsageError
from harness.core.result import ReportRow, Result
from harness.core.schema import (  # noqa: F401 - SCHEMA_VERSION, LATENCY_KEYS, DRIFT_KEYS: re-exported
    DRIFT_KEYS,
    HEAD_FIXED,
    LATENCY_KEYS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
)

# Statuses that `--resume` runs again: the next attempt may well succeed.
TRANSIENT_STATUSES = (statuses.DEVICE_LOST, statuses.TIMEOUT)


@dataclass
class RunInfo:
    id: str
    started_at: float
    finished_at: float | None
    state: str
    campaign: str | None
    campaign_path: str | None
    git_commit: str | None
    host: str | None
    tool_versions: dict
    config: dict
    out_dir: str | None


@contextmanager
def gc_paused():
    """Bulk decoding makes millions of acyclic containers; the cyclic GC would rescan them
    over and over (5x the decoding time for 100k rows), so it waits until we are done."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Store:
    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path}: cannot open the results store ({exc}); move it aside or pass --store") from None
        except PermissionError:
            raise UsageError(f"{path}: not writable; pass --store or --out to a writable place") from None

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(f"{self.path}: written by a newer tflite-harness (schema {version}); upgrade")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in filter(str.strip, MIGRATIONS[v].split(";")):
                    self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version = {v}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    def start_run(self, run_id: str, *, campaign: str, campaign_path: str | None, tool_versions: dict,
                  config: dict, out_dir: str) -> None:
        self.db.execute(
            "INSERT INTO runs (id, started_at, campaign, campaign_path, git_commit, host, tool_versions, config, out_dir)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, time.time(), campaign, campaign_path, git_commit(Path.cwd()), platform.node(),
             json.dumps(tool_versions), json.dumps(config, default=str), out_dir),
        )

    def finish_run(self, run_id: str, state: str = "done") -> None:
        self.db.execute("UPDATE runs SET finished_at = ?, state = ? WHERE id = ?", (time.time(), state, run_id))

    def run(self, run_id: str | None = None) -> RunInfo:
        if run_id in (None, "latest"):
            row = self.db.execute("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise UsageError(f"{self.path}: no runs stored yet; run `tflite-harness run` first")
        else:
            row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                row = self.db.execute(
                    "SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2", (f"{run_id}%",)
                ).fetchall()
                if len(row) != 1:
                    raise UsageError(f"no run {run_id!r} in {self.path}; `tflite-harness runs` lists them")
                row = row[0]
        return self._run_info(row)

    def runs(self, limit: int = 50) -> list[RunInfo]:
        rows = self.db.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
        return [self._run_info(r) for r in rows]

    @staticmethod
    def _run_info(row: tuple) -> RunInfo:
        return RunInfo(
            id=row[0], started_at=row[1], finished_at=row[2], state=row[3], campaign=row[4], campaign_path=row[5],
            git_commit=row[6], host=row[7], tool_versions=json.loads(row[8] or "{}"),
            config=json.loads(row[9] or "{}"), out_dir=row[10],
        )

    def add_result(self, run_id: str, result: Result) -> None:
        """Commit one row in its own transaction (replacing an earlier row for the same key)."""
        self.add_results(run_id, [result])

    def add_results(self, run_id: str, results: Iterable[Result]) -> None:
        """Commit rows in one transaction (replacing earlier rows with the same keys)."""
        results = list(results)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO artifacts (sha, size_bytes, path, meta) VALUES (?, ?, ?, ?)",
                [(r.artifact, r.size_bytes, r.artifact_path, json.dumps({"ops": r.ops})) for r in results if r.artifact])
            self.db.executemany(_INSERT_RESULT, [_result_params(run_id, r) for r in results])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def results(self, run_id: str, samples: bool = True) -> list[Result]:
        """The run's rows in plan order; `samples=False` skips the raw latency samples (tables)."""
        column = "samples" if samples else "NULL"
        rows = self.db.execute(f"SELECT data, {column} FROM results WHERE run_id = ? ORDER BY id",
                               (run_id,)).fetchall()
        with gc_paused():
            results = [Result.from_dict(json.loads(r[0])) for r in rows]
            if samples:
                for result, (_, blob) in zip(results, rows, strict=True):
                    if blob:
                        result.samples_us = array("d", blob).tolist()
        return _plan_order(results)

    def report_rows(self, run_id: str, samples: bool = False) -> list[ReportRow | Result]:
        """The run's rows in plan order, holding only what reports read (the schema-3 columns).

        Reading real columns instead of decoding each row's JSON is what keeps a report of
        100k rows fast. Left out: ops, tool versions, device info, warnings, log, the drift
        metrics and latency figures reports do not show. Rows written without the columns
        (`summarized` NULL) are read in full from the JSON.
        """
        # The JSON comes along only where the columns cannot answer: rows without them, and
        # (for samples) schema-1 rows, whose samples were never moved out of the JSON.
        need_json = "summarized IS NULL" + (" OR samples IS NULL" if samples else "")
        cols = ", ".join((*ReportRow.HEAD, *SUMMARY_COLUMNS[len(ReportRow.HEAD) - HEAD_FIXED:], "summarized",
                          "samples" if samples else "NULL", f"CASE WHEN {need_json} THEN data END"))
        rows = self.db.execute(f"SELECT {cols} FROM results WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        with gc_paused():
            if not samples and all(row[-3] for row in rows):  # the usual case: every row has its columns
                return _plan_order(list(map(_report_row, rows)))
            results = []
            for row in rows:
                data = json.loads(row[-1]) if row[-1] is not None else None
                result = _report_row(row) if row[-3] else Result.from_dict(data)
                if samples and row[-2]:
                    result.samples_us = array("d", row[-2]).tolist()
                elif samples and data is not None:
                    result.samples_us = data.get("samples_us") or []
                elif not samples:
                    result.samples_us = []
                results.append(result)
        return _plan_order(results)

    def sample_arrays(self, run_id: str) -> dict[tuple, object]:
        """The run's raw latency samples as float64 NumPy arrays, by row key (model, flag set,
        device, threads, xnnpack, runtime API, accelerator); rows without samples are left out.

        The arrays are read-only views on the stored packed bytes (numpy.frombuffer): no
        Python float per sample, so compare reads 100k rows x 50 samples in a blink.
        Schema-1 rows, whose samples stayed in the JSON, are read from there.
        """
        import numpy as np

        out = {}
        for model, flag_set, device, threads, xnnpack, api, accel, blob, text in self.db.execute(
                "SELECT model, flag_set, device, threads, xnnpack, runtime_api, accelerator, samples,"
                " CASE WHEN samples IS NULL THEN json_extract(data, '$.samples_us') END"
                " FROM results WHERE run_id = ?", (run_id,)):
            values = np.frombuffer(blob, dtype=np.float64) if blob else np.asarray(json.loads(text or "[]"), float)
            if len(values):
                out[(model, flag_set, device, threads, bool(xnnpack), api, accel)] = values
        return out

    def fill_identity(self, run_id: str, rows: list) -> None:  # compare's identity + re-measuring, from the JSON
        # One json_extract of three paths parses each row's JSON once (three calls parsed it three
        # times: a third of compare's reading time at 100k rows); it answers a JSON array.
        by_key = {r.key: r for r in rows}
        for *key, found in self.db.execute(
                "SELECT model, flag_set, device, threads, xnnpack, runtime_api, accelerator,"
                " json_extract(data, '$.artifact_path', '$.settings', '$.inputs_dir')"
                " FROM results WHERE run_id = ?", (run_id,)):
            if (r := by_key.get((*key[:4], bool(key[4]), *key[5:]))) is not None:
                path, settings, inputs = json.loads(found)
                r.artifact_path, r.inputs_dir, r.settings = path, inputs, settings

    def model_count(self, run_id: str) -> int:  # the HTML report picks per-model or aggregated plots by it
        return self.db.execute("SELECT COUNT(DISTINCT model) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]

    def result_keys(self, run_id: str, exclude_statuses: Iterable[str] = ()) -> set[tuple]:
        """Keys of the run's stored rows, leaving out rows whose status is in `exclude_statuses`.

        `--resume` passes TRANSIENT_STATUSES so that rows which may succeed on a second try
        (a lost device, a timeout) are run again, while ok and failed rows are kept.
        """
        excluded = tuple(exclude_statuses)
        rows = self.db.execute(
            "SELECT model, flag_set, device, threads, xnnpack, runtime_api, accelerator, status FROM results"
            " WHERE run_id = ?", (run_id,)).fetchall()
        return {(m, f, d, t, bool(x), api, acc) for m, f, d, t, x, api, acc, st in rows if st not in excluded}

    def history(self, model: str, flag_set: str, device: str | None = None) -> Iterable[tuple[RunInfo, Result]]:
        q = ("SELECT r.*, x.data, x.samples FROM results x JOIN runs r ON r.id = x.run_id"
             " WHERE x.model = ? AND x.flag_set = ?")
        args: list = [model, flag_set]
        if device:
            q += " AND x.device = ?"
            args.append(device)
        for row in self.db.execute(q + " ORDER BY r.started_at", args):
            result = Result.from_dict(json.loads(row[-2]))
            if row[-1]:
                result.samples_us = array("d", row[-1]).tolist()
            yield self._run_info(row[:-2]), result


_INSERT_RESULT = (
    "INSERT OR REPLACE INTO results (run_id, model, flag_set, device, threads, xnnpack, runtime_api, accelerator,"
    f" status, reason, artifact, data, samples, created_at, summarized, {', '.join(SUMMARY_COLUMNS)})"
    f" VALUES ({', '.join('?' * (15 + len(SUMMARY_COLUMNS)))})"
)


def _column_value(v: object) -> object:
    """What SQLite can hold: numbers, text, NULL ('inf' text in drift becomes the float)."""
    if v is None or isinstance(v, (int, float)):
        return v
    if v in ("inf", "-inf"):
        return float(v)
    return v if isinstance(v, str) else json.dumps(v)


def _result_params(run_id: str, r: Result) -> tuple:
    row = r.to_dict()
    samples = array("d", row.pop("samples_us") or []).tobytes()
    lat = r.latency_us or {}
    ci = (*(lat.get("p50_ci") or ()), None, None)
    drift = r.drift or {}
    summary = (r.plan_index, r.runtime, r.runtime_version, r.size_bytes, r.convert_s, r.failure_category,
               r.init_us, r.first_us, r.peak_rss_mb, r.representative, r.validity,
               *(lat.get(k) for k in LATENCY_KEYS), ci[0], ci[1], *(drift.get(k) for k in DRIFT_KEYS),
               None if r.fully_accelerated is None else int(r.fully_accelerated), (r.roundtrip_us or {}).get("p50"),
               (drift.get("vs_interpreter") or {}).get("max_abs"))
    return (run_id, r.model, r.flag_set, r.device, r.threads, int(r.xnnpack), r.runtime_api, r.accelerator,
            r.status, r.reason, r.artifact,
            json.dumps(row), samples, time.time(), 1, *map(_column_value, summary))


def _report_row(row: tuple) -> ReportRow:
    """A ReportRow from report_rows' SELECT: ReportRow.HEAD, then latency, p50 CI and drift columns."""
    i = len(ReportRow.HEAD)
    lat_values = row[i:i + len(LATENCY_KEYS)]
    i += len(LATENCY_KEYS)
    ci_lo = row[i]
    drift_values = row[i + 2:i + 2 + len(DRIFT_KEYS)]
    latency = None
    if lat_values.count(None) != len(LATENCY_KEYS) or ci_lo is not None:
        latency = dict(zip(LATENCY_KEYS, lat_values, strict=True))
        if ci_lo is not None:
            latency["p50_ci"] = [ci_lo, row[i + 1]]
    drift = dict(zip(DRIFT_KEYS, drift_values, strict=True)) if drift_values.count(None) != len(DRIFT_KEYS) else None
    out = ReportRow(row[:len(ReportRow.HEAD)], latency, drift)
    full, trip, vs_interp = row[i + 2 + len(DRIFT_KEYS):i + 5 + len(DRIFT_KEYS)]
    out.fully_accelerated = None if full is None else bool(full)
    out.roundtrip_us = None if trip is None else {"p50": trip}
    if vs_interp is not None:
        out.drift = {**(out.drift or {}), "vs_interpreter": {"max_abs": vs_interp}}
    return out


def _plan_order(results: list[Result]) -> list[Result]:
    """Plan order (model, flag set, device, threads) reads better than completion order."""
    return sorted(results, key=lambda r: (r.plan_index is None, r.plan_index or 0))


def default_store_path() -> Path:
    return Path(os.environ.get("TFLITE_HARNESS_STORE", "results/harness.sqlite"))
