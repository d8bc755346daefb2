"""Aligned plain-text tables for the terminal when rich would be too slow.

rich measures and lays out every cell through its renderable machinery: fine for a few
hundred rows, minutes for 100k. This draws the same box (rich's default HEAVY_HEAD, one
space of padding) with str.ljust/rjust: no colours, no wrapping, so long cells just make
the line longer, but the same columns and the same cell texts.
"""

from __future__ import annotations


def plain_table(headers: list[str], rows: list[list[str]], right: set[int] | None = None,
                title: str | None = None) -> str:
    """A table as text; columns whose index is in `right` are right-aligned (numbers)."""
    right = right or set()
    n = len(headers)
    widths = [len(h) for h in headers]
    for i in range(n):
        column_max = max((len(row[i]) for row in rows), default=0)
        widths[i] = max(widths[i], column_max)
    pads = [str.rjust if i in right else str.ljust for i in range(n)]

    def line(cells: list[str], bar: str) -> str:
        return bar + " " + f" {bar} ".join(pad(c, w) for pad, c, w in zip(pads, cells, widths, strict=True)) \
            + " " + bar

    def rule(left: str, fill: str, mid: str, end: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + end

    out = []
    total = sum(widths) + 3 * n + 1
    if title:
        out.append(title.center(total).rstrip())
    out.append(rule("┏", "━", "┳", "┓"))
    out.append(line(headers, "┃"))
    out.append(rule("┡", "━", "╇", "┩"))
    out.extend(line(row, "│") for row in rows)
    out.append(rule("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"
