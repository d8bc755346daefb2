"""The store's schema: its report columns and the migrations from one version to the next.

Data only (SQL text and column lists), kept apart from `harness/store.py` so the store's
code stays readable; `Store._migrate` runs MIGRATIONS[v] for each version it lacks.
"""

from __future__ import annotations

from harness.core.result import ReportRow

SCHEMA_VERSION = 4

# The latency statistics and drift metrics that reports read; the rest stays in the JSON.
LATENCY_KEYS = ("mean", "std", "min", "p50", "p90", "p99", "max", "n")
DRIFT_KEYS = ("max_abs", "rmse", "cosine", "snr_db", "top1_agreement", "accuracy", "reference_accuracy")


# Report columns (schema 3): (column, Result attribute, key inside that attribute or None).
# The columns carry no declared type, so SQLite keeps ints as ints and floats as floats.
SUMMARY_V3: tuple[tuple[str, str, str | None], ...] = (
    ("plan_index", "plan_index", None), ("runtime", "runtime", None),
    ("runtime_version", "runtime_version", None), ("size_bytes", "size_bytes", None),
    ("convert_s", "convert_s", None), ("failure_category", "failure_category", None),
    ("init_us", "init_us", None), ("first_us", "first_us", None), ("peak_rss_mb", "peak_rss_mb", None),
    ("representative", "representative", None), ("validity", "validity", None),
    *((f"lat_{k}", "latency_us", k) for k in LATENCY_KEYS),
    ("lat_p50_ci_lo", "latency_us", "p50_ci[0]"), ("lat_p50_ci_hi", "latency_us", "p50_ci[1]"),
    *((f"drift_{k}", "drift", k) for k in DRIFT_KEYS),
)
# schema 4: CompiledModel's figures (harness/core/runtimes.py)
SUMMARY_V4 = (("fully_accelerated", "fully_accelerated", None), ("roundtrip_p50", "roundtrip_us", "p50"),
               ("vs_interp_max_abs", "drift", "vs_interpreter.max_abs"))
SUMMARY = (*SUMMARY_V3, *SUMMARY_V4)
SUMMARY_COLUMNS = tuple(c for c, _, _ in SUMMARY)
HEAD_FIXED = ReportRow.KEY_LEN + 3  # HEAD: the key, status, reason, artifact, then summary columns
# report_rows reads ReportRow.HEAD as columns: its fields after the key and status are the first summary columns
assert ReportRow.HEAD[HEAD_FIXED:] == SUMMARY_COLUMNS[:len(ReportRow.HEAD) - HEAD_FIXED], \
    "ReportRow.HEAD and SUMMARY disagree"
V3_COLUMNS = ("id, run_id, model, flag_set, device, threads, xnnpack, status, reason, artifact, data, created_at, "
               "samples, " + ", ".join(c for c, _, _ in SUMMARY_V3) + ", summarized")


def json_path_sql(column: str) -> str:
    """SQL that reads one report column out of the row JSON (drift keeps +/-inf as strings)."""
    _, attr, key = next(x for x in SUMMARY if x[0] == column)
    expr = f"json_extract(data, '$.{attr}{'.' + key if key else ''}')"
    if attr == "drift":
        expr = f"(CASE {expr} WHEN 'inf' THEN 9e999 WHEN '-inf' THEN -9e999 ELSE {expr} END)"
    return expr


MIGRATIONS = {
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
    # 3: the fields the report tables and plots read get real columns, written at insert
    # time and back-filled here from the JSON, so a 100k-row report is one SELECT and no
    # JSON decoding. `summarized` marks rows whose columns are filled (rows written by
    # other means read through the JSON, as before).
    3: "".join(f"ALTER TABLE results ADD COLUMN {c};\n" for c, _, _ in (*SUMMARY_V3, ("summarized", 0, 0)))
    + "UPDATE results SET summarized = 1, "
    + ", ".join(f"{c} = {json_path_sql(c)}" for c, _, _ in SUMMARY_V3),
    # 4: the runtime API and accelerator join a row's key (CompiledModel beside the Interpreter):
    # SQLite cannot change a UNIQUE constraint in place, so the table is rebuilt; every earlier
    # row was an Interpreter row on the CPU. CompiledModel's figures get report columns.
    4: f"""
    CREATE TABLE results_v4 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        model TEXT NOT NULL,
        flag_set TEXT NOT NULL,
        device TEXT NOT NULL,
        threads INTEGER NOT NULL,
        xnnpack INTEGER NOT NULL,
        runtime_api TEXT NOT NULL DEFAULT 'interpreter',
        accelerator TEXT NOT NULL DEFAULT 'cpu',
        status TEXT NOT NULL,
        reason TEXT,
        artifact TEXT,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        samples BLOB,
        {", ".join(c for c, _, _ in SUMMARY_V3)}, summarized, {", ".join(c for c, _, _ in SUMMARY_V4)},
        UNIQUE (run_id, model, flag_set, device, threads, xnnpack, runtime_api, accelerator)
    );
    INSERT INTO results_v4 ({V3_COLUMNS}) SELECT {V3_COLUMNS} FROM results;
    DROP TABLE results;
    ALTER TABLE results_v4 RENAME TO results;
    CREATE INDEX results_run ON results(run_id);
    CREATE INDEX results_key ON results(model, flag_set, device, threads)
    """,
}
