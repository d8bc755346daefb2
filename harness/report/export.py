"""Exports of a run: results.json (one object per row), results.md and results.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from harness.core.result import Result, json_safe
from harness.report.table import COLUMNS, Row, comparison_rows, markdown_table


def results_json(results: list[Result]) -> str:
    """A JSON list, one row per line: json.dumps with an indent runs the pure-Python encoder,
    which was most of a warm re-run's time outside measurement once rows carry samples."""
    if not results:
        return "[]"
    return "[\n " + ",\n ".join(json.dumps(r.to_dict()) for r in results) + "\n]"


CSV_LATENCY_KEYS = ["mean", "std", "min", "p50", "p90", "p99", "max", "n"]


def csv_text(results: list[Result], baseline: str | None, rows: list[Row] | None = None) -> str:
    """The comparison rows plus raw latency statistics and provenance, one CSV line per row.

    The csv module writes None as an empty field and +/-inf as inf/-inf by itself, so the
    values go in as they are (checking each of 3M values in Python took seconds).
    """
    rows = comparison_rows(results, baseline) if rows is None else rows
    keys = [k for k, _, _ in COLUMNS if k != "rt"] + ["reference_accuracy"]  # rt: the terminal's marker
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(keys + [f"latency_us_{k}" for k in CSV_LATENCY_KEYS]
               + ["runtime", "runtime_version", "artifact", "convert_s", "first_us", "failure_category"])
    w.writerows(
        [row.values[k] for k in keys]
        + ([lat.get(k, "") for k in CSV_LATENCY_KEYS] if (lat := r.latency_us) else _NO_LATENCY)
        + [r.runtime or "", r.runtime_version or "", r.artifact or "", r.convert_s or "", r.first_us or "",
           r.failure_category or ""]
        for row, r in zip(rows, results, strict=True))
    return buf.getvalue()


_NO_LATENCY = [""] * len(CSV_LATENCY_KEYS)


def write_csv(path: Path, results: list[Result], baseline: str | None) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write(csv_text(results, baseline))


def write_exports(out_dir: Path, results: list[Result], baseline: str | None = "fp32") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(results_json(results), encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(comparison_rows(results, baseline)), encoding="utf-8")
    write_csv(out_dir / "results.csv", results, baseline)


def report_json(head: dict, rows: list[dict]) -> str:
    """The report object with one row per line.

    json.dumps with an indent runs the pure-Python encoder (seconds for 100k rows); each row
    through the C encoder, and the outer object laid out by hand, is the same JSON. +/-inf
    and NaN become "inf"/"-inf"/null as everywhere else (`json_safe`), row by row only when
    a row has one.
    """

    def dump(row: dict) -> str:
        try:
            return json.dumps(row, allow_nan=False)
        except ValueError:
            return json.dumps(json_safe(row))

    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(json_safe(v))}," for k, v in head.items()]
    body = ",\n  ".join(map(dump, rows))
    lines.append(f' "rows": [\n  {body}\n ]' if rows else ' "rows": []')
    return "\n".join(lines) + "\n}"
