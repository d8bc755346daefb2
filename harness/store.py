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

from harness.errors import UsageError
from harness.result import Result

SCHEMA_VERSION = 2

# Statuses that `--resume` runs again: the next attempt may well succeed.
TRANSIENT_STATUSES = ("device_lost", "timeout")

_MIGRATIONS = {
    1: """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        state TEXT NOT NULL DEFAULT 'running',
        campaign TEXT,
        campaign_path TEXT,
        git_commit TEXT,
        host TEXT,
        tool_versions TEXT,
        config TEXT,
        out_dir TEXT
    );
    CREATE TABLE artifacts (
        sha TEXT PRIMARY KEY,
        size_bytes INTEGER,
        path TEXT,
        meta TEXT
    );
    CREATE TABLE results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        model TEXT NOT NULL,
        flag_set TEXT NOT NULL,
        device TEXT NOT NULL,
        threads INTEGER NOT NULL,
        xnnpack INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        artifact TEXT,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (run_id, model, flag_set, device, threads, xnnpack)
    );
    CREATE INDEX results_run ON results(run_id);
    CREATE INDEX results_key ON results(model, flag_set, device, threads);
    """,
    # 2: raw latency samples move out of the JSON row into a packed float64 column, so the
    # tables (which need only statistics) no longer decode thousands of numbers per row.
    # Rows written by schema 1 keep their samples inside `data` and read as before.
    2: """
    ALTER TABLE results ADD COLUMN samples BLOB
    """,
}


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
                for stmt in filter(str.strip, _MIGRATIONS[v].split(";")):
                    self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version = {v}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    # runs
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

    # results
    def add_result(self, run_id: str, result: Result) -> None:
        """Commit one row in its own transaction (replacing an earlier row for the same key)."""
        row = result.to_dict()
        samples = array("d", row.pop("samples_us") or []).tobytes()
        data = json.dumps(row)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if result.artifact:
                self.db.execute(
                    "INSERT OR IGNORE INTO artifacts (sha, size_bytes, path, meta) VALUES (?, ?, ?, ?)",
                    (result.artifact, result.size_bytes, result.artifact_path, json.dumps({"ops": result.ops})),
                )
            self.db.execute(
                "INSERT OR REPLACE INTO results (run_id, model, flag_set, device, threads, xnnpack, status, reason,"
                " artifact, data, samples, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, result.model, result.flag_set, result.device, result.threads, int(result.xnnpack),
                 result.status, result.reason, result.artifact, data, samples, time.time()),
            )
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
        # Plan order (model, flag set, device, threads) reads better than completion order.
        return sorted(results, key=lambda r: (r.plan_index is None, r.plan_index or 0))

    def result_keys(self, run_id: str, exclude_statuses: Iterable[str] = ()) -> set[tuple]:
        """Keys of the run's stored rows, leaving out rows whose status is in `exclude_statuses`.

        `--resume` passes TRANSIENT_STATUSES so that rows which may succeed on a second try
        (a lost device, a timeout) are run again, while ok and failed rows are kept.
        """
        excluded = tuple(exclude_statuses)
        rows = self.db.execute(
            "SELECT model, flag_set, device, threads, xnnpack, status FROM results WHERE run_id = ?", (run_id,)
        ).fetchall()
        return {(m, f, d, t, bool(x)) for m, f, d, t, x, st in rows if st not in excluded}

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


def default_store_path() -> Path:
    return Path(os.environ.get("TFLITE_HARNESS_STORE", "results/harness.sqlite"))
