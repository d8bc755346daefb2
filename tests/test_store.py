"""The SQLite store: schema migrations, raw samples kept exactly, rows readable without them."""

from __future__ import annotations

import json
import sqlite3

from harness.core.result import Result
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
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    (legacy,) = s.results("old")
    assert legacy.samples_us == [5.0, 6.0]  # schema-1 rows keep their samples inside the JSON
    s.add_result("old", row("new", [7.0]))
    assert {r.model: r.samples_us for r in s.results("old")} == {"legacy": [5.0, 6.0], "new": [7.0]}
    s.close()


def test_a_store_from_a_newer_version_is_refused_with_one_line(tmp_path):
    import pytest

    from harness.core.errors import UsageError

    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(UsageError, match="newer tflite-harness"):
        Store(path)


# ------------------------------------------------------------------ schema 3: report columns

def varied_rows() -> list[Result]:
    """Rows that exercise every report column: ok, failed, no drift, +/-inf drift, ints and floats."""
    import math

    rows = []
    for i, (flag_set, status) in enumerate([("fp32", "ok"), ("int8", "ok"), ("float16", "unhealthy"),
                                            ("dynamic_range", "conversion_failed"), ("int16x8", "ok")]):
        for device in ("local", "adb:x"):
            r = Result(model=f"m{i % 2}", flag_set=flag_set, device=device, threads=1 + i % 2, status=status,
                       reason="" if status == "ok" else f"why <{i}> | not", runtime="ai_edge_litert",
                       runtime_version="2.1.0", artifact=f"{i:064x}", size_bytes=50_000 + 1000 * i,
                       convert_s=0.5 * i, failure_category="converter" if status != "ok" else None,
                       ops=["CONV_2D"], plan_index=10 - i, validity="valid" if status == "ok" else "few runs",
                       representative="samples", tool_versions={"tensorflow": "2.20"}, device_info={"soc": "x"})
            if status in ("ok", "unhealthy"):
                r.init_us, r.first_us, r.peak_rss_mb = 1234.5, 99.0, 4.25
                r.samples_us = [100.0 + i, 101.5, 99.25]
                r.latency_us = {"mean": 100.5, "std": 1.0, "min": 99.25, "p50": 100.0 + i, "p90": 101.5,
                                "p99": 101.5, "max": 101.5, "n": 3, "p50_ci": [99.5, 101.0], "p90_ci": [100.0, 102.0]}
                r.drift = {"max_abs": 1e-7 * (i + 1), "mean_abs": 1e-8, "rmse": 2e-8, "cosine": 0.9999,
                           "snr_db": math.inf if i == 0 else 60.0 + i, "top1_agreement": 1.0, "accuracy": 0.9,
                           "reference_accuracy": 0.91, "samples": 32}
            rows.append(r)
    return rows


REPORT_FIELDS = ("model", "flag_set", "device", "threads", "xnnpack", "status", "reason", "artifact", "plan_index",
                 "runtime", "runtime_version", "size_bytes", "convert_s", "failure_category", "init_us", "first_us",
                 "peak_rss_mb", "representative", "validity", "samples_us")


def report_view(r) -> dict:
    """What reports read from a row; latency and drift limited to the figures the store keeps in columns."""
    from harness.store import DRIFT_KEYS, LATENCY_KEYS

    view = {f: getattr(r, f) for f in REPORT_FIELDS}
    lat = r.latency_us or {}
    view["latency"] = {k: lat.get(k) for k in (*LATENCY_KEYS, "p50_ci")}
    drift = r.drift or {}
    view["drift"] = {k: drift.get(k) for k in DRIFT_KEYS}
    return view


def schema_2_store(path, rows: list[Result], *, samples_in_json: bool = False, version: int = 2) -> None:
    """A store as schema 1 or 2 wrote it: no report columns (schema 1: no samples column either)."""
    from array import array

    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    if version >= 2:
        db.execute("ALTER TABLE results ADD COLUMN samples BLOB")
        db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO runs (id, started_at, campaign) VALUES ('old', 1.0, 'c')")
    for r in rows:
        d = r.to_dict()
        samples = d.pop("samples_us")
        if samples_in_json:
            d["samples_us"] = samples
        cols, vals = ["run_id", "model", "flag_set", "device", "threads", "xnnpack", "status", "reason", "artifact",
                      "data", "created_at"], ["old", r.model, r.flag_set, r.device, r.threads, int(r.xnnpack),
                                              r.status, r.reason, r.artifact, json.dumps(d), 1.0]
        if version >= 2:
            cols.append("samples")
            vals.append(None if samples_in_json else array("d", samples).tobytes())
        db.execute(f"INSERT INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals)
    db.commit()
    db.close()


def test_report_rows_hold_what_the_full_rows_hold(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    s.start_run("r", campaign="c", campaign_path=None, tool_versions={}, config={}, out_dir=str(tmp_path))
    rows = varied_rows()
    s.add_results("r", rows[:3])
    for r in rows[3:]:
        s.add_result("r", r)
    full = s.results("r")
    light = s.report_rows("r", samples=True)
    assert [r.key for r in light] == [r.key for r in full] and len(light) == len(rows)
    assert [r.plan_index for r in light] == sorted(r.plan_index for r in rows)  # plan order
    assert [report_view(r) for r in light] == [report_view(r) for r in full]
    assert any(r.drift and r.drift["snr_db"] == float("inf") for r in light)
    assert all(r.samples_us == [] for r in s.report_rows("r"))  # samples only when asked for
    s.close()


def test_a_schema_2_store_migrates_and_reports_the_same(tmp_path, capsys):
    from .test_compare import invoke

    rows = varied_rows()
    schema_2_store(tmp_path / "old.sqlite", rows)
    new = Store(tmp_path / "new.sqlite")
    new.start_run("old", campaign="c", campaign_path=None, tool_versions={}, config={}, out_dir="")
    new.add_results("old", rows)
    new.close()

    migrated = Store(tmp_path / "old.sqlite")
    assert migrated.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert migrated.db.execute("SELECT COUNT(*) FROM results WHERE summarized = 1").fetchone()[0] == len(rows)
    fresh = Store(tmp_path / "new.sqlite")
    assert ([report_view(r) for r in migrated.report_rows("old", samples=True)]
            == [report_view(r) for r in fresh.report_rows("old", samples=True)])
    migrated.close()
    fresh.close()
    for fmt in ("md", "csv", "json", "table"):
        outputs = []
        for name in ("old", "new"):
            code, out, err = invoke(capsys, "report", "old", "--store", str(tmp_path / f"{name}.sqlite"),
                                    "--format", fmt)
            assert code == 0, err
            outputs.append(out)
        assert outputs[0] == outputs[1], fmt
        assert "int16x8" in outputs[0] and "m1" in outputs[0]


def test_a_schema_1_store_keeps_samples_from_the_json_after_migration(tmp_path):
    rows = varied_rows()
    schema_2_store(tmp_path / "v1.sqlite", rows, samples_in_json=True, version=1)
    s = Store(tmp_path / "v1.sqlite")
    light = s.report_rows("old", samples=True)
    assert [r.samples_us for r in light] == [r.samples_us for r in sorted(rows, key=lambda r: r.plan_index)]
    assert any(r.samples_us for r in light)
    assert [report_view(r) for r in light] == [report_view(r) for r in s.results("old")]
    s.close()


def test_rows_written_without_report_columns_are_read_from_their_json(tmp_path):
    """A row inserted by other means (no report columns) still reads, through its JSON."""
    s = Store(tmp_path / "s.sqlite")
    s.start_run("r", campaign="c", campaign_path=None, tool_versions={}, config={}, out_dir="")
    rows = varied_rows()
    s.add_results("r", rows[:4])
    r = rows[4]
    s.db.execute("INSERT INTO results (run_id, model, flag_set, device, threads, xnnpack, status, reason, data,"
                 " created_at) VALUES ('r', ?, ?, ?, ?, 1, ?, ?, ?, 1.0)",
                 (r.model, r.flag_set, r.device, r.threads, r.status, r.reason, json.dumps(r.to_dict())))
    light = s.report_rows("r")
    assert [report_view(x) for x in light] == [report_view(x) | {"samples_us": []} for x in s.results("r")]
    assert {x.key for x in light} == {x.key for x in rows[:5]}
    s.close()
