"""Exports of a run: results.json (one object per row), results.md and results.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from harness.report.table import COLUMNS, comparison_rows, markdown_table
from harness.result import Result


def results_json(results: list[Result]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=1)


def write_csv(path: Path, results: list[Result], baseline: str | None) -> None:
    rows = comparison_rows(results, baseline)
    keys = [k for k, _, _ in COLUMNS] + ["reference_accuracy"]
    lat_keys = ["mean", "std", "min", "p50", "p90", "p99", "max", "n"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(keys + [f"latency_us_{k}" for k in lat_keys]
                   + ["runtime", "runtime_version", "artifact", "convert_s", "first_us", "failure_category"])
        for row, r in zip(rows, results, strict=True):
            lat = r.latency_us or {}
            vals = []
            for k in keys:
                v = row.values.get(k)
                vals.append("inf" if isinstance(v, float) and math.isinf(v) else ("" if v is None else v))
            w.writerow(vals + [lat.get(k, "") for k in lat_keys]
                       + [r.runtime or "", r.runtime_version or "", r.artifact or "", r.convert_s or "",
                          r.first_us or "", r.failure_category or ""])


def write_exports(out_dir: Path, results: list[Result], baseline: str | None = "fp32") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(results_json(results), encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(comparison_rows(results, baseline)), encoding="utf-8")
    write_csv(out_dir / "results.csv", results, baseline)
