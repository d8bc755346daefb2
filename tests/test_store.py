"""The SQLite store: schema migrations, raw samples kept exactly, rows readable without them."""

from __future__ import annotations

import json
import sqlite3

from harness.result import Result
from harness.store import SCHEMA_VERSION, Store

SCHEMA_1 = """
CREATE TABLE runs (id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    state TEXT NOT NULL DEFAULT 'running', campaign TEXT, campaign_path TEXT, git_commit TEXT,
    host TEXT, tool_versions TEXT, config TEXT, out_dir TEXT);
CREATE TABLE artifacts (sha TEXT PRIMARY KEY, size_bytes INTEGER, path TEXT, meta TEXT);
CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL, flag_set TEXT NOT NULL, device TEXT NOT NULL, threads INTEGER NOT NULL,
    xnnpack INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, artifact TEXT, data TEXT NOT NULL,
    created_at REAL NOT NULL, UNIQUE (run_id, model, flag_set, device, threads, xnnpack));
PRAGMA user_version = 1;
"""


def row(model: str, samples: list[float]) -> Result:
    return Result(model=model, flag_set="fp32", device="local", threads=1, status="ok",
                  samples_us=samples, latency_us={"p50": 2.0, "n": len(samples)})


def test_samples_round_trip_exactly_and_tables_can_skip_them(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    s.start_run("r1", campaign="c", campaign_path=None, tool_versions={}, config={}, out_dir=str(tmp_path))
    samples = [1.125, 2.5, 3.0000001, 1e-3]
    s.add_result("r1", row("m", samples))
    (full,) = s.results("r1")
    assert full.samples_us == samples
    (light,) = s.results("r1", samples=False)
    assert light.samples_us == [] and light.latency_us == full.latency_us
    # the JSON row no longer carries the samples
    data = s.db.execute("SELECT data FROM results").fetchone()[0]
    assert "samples_us" not in json.loads(data)
    s.close()


def test_a_schema_1_store_is_migrated_and_its_rows_still_read(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO runs (id, started_at) VALUES ('old', 1.0)")
    old = row("legacy", [5.0, 6.0]).to_dict()
    db.execute("INSERT INTO results (run_id, model, flag_set, device, threads, xnnpack, status, data, created_at)"
               " VALUES ('old', 'legacy', 'fp32', 'local', 1, 1, 'ok', ?, 1.0)", (json.dumps(old),))
    db.commit()
    db.close()
    s = Store(path)
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    (legacy,) = s.results("old")
    assert legacy.samples_us == [5.0, 6.0]  # schema-1 rows keep their samples inside the JSON
    s.add_result("old", row("new", [7.0]))
    assert {r.model: r.samples_us for r in s.results("old")} == {"legacy": [5.0, 6.0], "new": [7.0]}
    s.close()


def test_a_store_from_a_newer_version_is_refused_with_one_line(tmp_path):
    import pytest

    from harness.errors import UsageError

    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(UsageError, match="newer tflite-harness"):
        Store(path)
