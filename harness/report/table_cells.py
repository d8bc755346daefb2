"""A table row's cells: `Row` (the raw values, their text made on first use) and how each
column's value becomes text, the same in every format (terminal, Markdown, CSV, HTML).

`harness/report/table.py` builds the rows and lays them out; it re-exports every name here.
"""

from __future__ import annotations

import math
from operator import itemgetter


class Row:
    """One table row: `values` holds the raw numbers, `text` their formatted cells.

    The text is made on first use only: csv and json need only the values, and formatting
    every cell of 100k rows was a third of a report's time.
    """

    __slots__ = ("values", "_text")

    def __init__(self, values: dict[str, object], text: dict[str, str] | None = None):
        self.values = values
        self._text = text

    @property
    def text(self) -> dict[str, str]:
        if self._text is None:
            self._text = {k: cell_text(k, self.values) for k in self.values}
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self.values == other.values and self.text == other.text

    def __repr__(self) -> str:
        return f"Row({self.values!r})"


def fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def sig(value: float | None, digits: int = 3) -> str:
    """Three significant digits: latencies span microseconds to seconds."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def duration(ms: float | None) -> str:
    """A latency given in ms, three significant digits, in µs below 1 ms: 3.66 µs, not 0.00366 ms."""
    if ms is None:
        return "-"
    if isinstance(ms, float) and not math.isfinite(ms):
        return fmt(ms)
    if abs(ms) < 1:
        return f"{sig(ms * 1000)} µs"
    return f"{sig(ms)} ms"


def _valid(v: object) -> str:
    return "warn: " + v if v and v != "valid" else fmt(v)


def _accuracy(values: dict) -> str:
    acc, ref = values["accuracy"], values["reference_accuracy"]
    if acc is None:
        return "-"
    return f"{acc:.3f} ({ref:.3f})" if ref is not None else f"{acc:.3f}"


# How each column's value becomes text: sig, "1.23x", three decimals, or fmt with these
# digits (2 for any column not listed; text columns pass through fmt unchanged).
_SIG_KEYS = {"p50_ms", "p90_ms", "init_ms", "roundtrip_ms"}
_TIMES_KEYS = {"speedup", "size_ratio"}
_DIGITS = {"max_abs": 4, "vs_interp": 4, "cosine": 4, "snr_db": 1, "size_kb": 1, "peak_mb": 1}


def _column_text(key: str, values: list[dict]) -> list[str]:
    """One column's cells. Written as a comprehension per kind of column: 2M cells of a 100k-row
    table went through a function call each, a third of the report's time."""
    if key == "accuracy":
        return [_accuracy(v) for v in values]
    col = list(map(itemgetter(key), values))
    if key in _SIG_KEYS:
        return list(map(duration, col))
    if key in _TIMES_KEYS:
        return ["-" if v is None else f"{v:.2f}x" for v in col]
    if key == "top1":
        return ["-" if v is None else f"{v:.3f}" for v in col]
    if key == "valid":
        return list(map(_valid, col))
    digits = _DIGITS.get(key, 2)
    spec, small = f".{digits}f", 10 ** -digits
    # the common cases inline (a finite float that fmt would print fixed-point; text), the rest via fmt
    return [format(v, spec) if type(v) is float and v - v == 0 and (v == 0 or abs(v) >= small)
            else v if type(v) is str else fmt(v, digits) for v in col]


def text_columns(rows: list[Row], keys: list[str]) -> list[list[str]]:
    """The formatted cells of `keys`, column by column (the same text as `Row.text`)."""
    values = [r.values for r in rows]
    return [_column_text(key, values) for key in keys]


def text_cells(rows: list[Row], keys: list[str]) -> list[list[str]]:
    """The formatted cells of `keys`, row by row."""
    if not keys:
        return [[] for _ in rows]
    return [list(cells) for cells in zip(*text_columns(rows, keys), strict=True)]


def cell_text(key: str, values: dict) -> str:
    """The formatted text of one cell (the same for every format)."""
    return _column_text(key, [values])[0]


def memo(fn):
    """fn with a cache: names repeat thousands of times in a large run."""
    cache: dict[str, str] = {}

    def cached(text: str) -> str:
        out = cache.get(text)
        if out is None:
            out = cache[text] = fn(text)
        return out

    return cached
