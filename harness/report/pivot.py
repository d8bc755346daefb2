"""The pivot table: rows model x flag set, one column group per device x threads (x xnnpack).

Each cell holds the median latency and the speed-up against the baseline flag set on the
same model and column, so one glance compares flag sets across devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core import statuses
from harness.core.result import Result
from harness.report.table import duration


@dataclass
class PivotCell:
    p50_ms: float | None
    speedup: float | None
    status: str

    @property
    def text(self) -> str:
        if self.status not in statuses.MEASURED or self.p50_ms is None:
            return self.status
        s = duration(self.p50_ms)
        return s + (f" ({self.speedup:.2f}x)" if self.speedup is not None else "")


@dataclass
class Pivot:
    columns: list[tuple]  # device, threads, xnnpack, runtime API/accelerator
    rows: list[tuple[str, str, dict[tuple, PivotCell]]]  # model, flag_set, cells by column

    def column_label(self, col: tuple) -> str:
        device, threads, xnnpack, runtime = col
        many_xnn = len({c[2] for c in self.columns}) > 1
        many_rt = len({c[3] for c in self.columns}) > 1 or runtime != "interpreter/cpu"
        return (f"{device} {threads}thr" + ((" xnn" if xnnpack else " no-xnn") if many_xnn else "")
                + (f" {runtime}" if many_rt else ""))

    def headers(self) -> list[str]:
        return ["model", "flag set"] + [self.column_label(c) + " p50 (speed-up)" for c in self.columns]

    def text_rows(self) -> list[list[str]]:
        return [[m, f] + [cells[c].text if c in cells else "-" for c in self.columns] for m, f, cells in self.rows]

    def as_dicts(self) -> list[dict]:
        out = []
        for m, f, cells in self.rows:
            d: dict = {"model": m, "flag_set": f}
            for c in self.columns:
                cell = cells.get(c)
                label = self.column_label(c)
                d[f"{label} p50_ms"] = cell.p50_ms if cell else None
                d[f"{label} speedup"] = cell.speedup if cell else None
                d[f"{label} status"] = cell.status if cell else None
            out.append(d)
        return out


def _column(r) -> tuple:
    api, accel = getattr(r, "runtime_api", None) or "interpreter", getattr(r, "accelerator", None) or "cpu"
    return (r.device, r.threads, r.xnnpack, f"{api}/{accel}")


def pivot(results: list[Result], baseline: str | None = "fp32") -> Pivot:
    columns: list[tuple] = []
    rows: dict[tuple[str, str], dict] = {}
    base: dict[tuple, float] = {}
    for r in results:
        col = _column(r)
        if col not in columns:
            columns.append(col)
        if r.flag_set == baseline and r.status in statuses.MEASURED and r.latency_us:
            base[(r.model, *col)] = r.latency_us["p50"]
    for r in results:
        col = _column(r)
        p50 = (r.latency_us or {}).get("p50")
        b = base.get((r.model, *col))
        speedup = b / p50 if (b and p50 and r.status in statuses.MEASURED) else None
        cell = PivotCell(p50 / 1000 if p50 is not None else None, speedup, r.status)
        rows.setdefault((r.model, r.flag_set), {})[col] = cell
    return Pivot(columns, [(m, f, cells) for (m, f), cells in rows.items()])


def pivot_markdown(p: Pivot) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")

    headers = p.headers()
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in p.text_rows()]
    return "\n".join(lines) + "\n"


def pivot_rich(p: Pivot, title: str | None = None):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for i, h in enumerate(p.headers()):
        table.add_column(escape(h), justify="left" if i < 2 else "right")
    for row in p.text_rows():
        table.add_row(*(escape(c) for c in row))
    return table


def pivot_plain(p: Pivot, title: str | None = None) -> str:
    """`pivot_rich` as aligned plain text, for pivots too large for rich to lay out quickly."""
    from harness.report.plain import plain_table

    headers = p.headers()
    return plain_table(headers, p.text_rows(), right=set(range(2, len(headers))), title=title)
