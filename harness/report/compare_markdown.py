"""`compare --format md`: the pull-request comment of the regression gate.

Read in a review, so it says the verdict first (one line naming the cause), then shows only
the rows that changed, with only the columns that explain them; unchanged rows collapse into
a <details> block. Plain GitHub Markdown: text is not HTML-escaped (arrows stay arrows), and
latency is in the terminal table's units (µs under 1 ms).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.report.compare import (
    ADDED,
    IMPROVED,
    MISSING,
    REGRESSED,
    SAME,
    UNCONFIRMED,
    Comparison,
    RowComparison,
)
from harness.report.table import duration

# Changed rows in this order: what fails first, then what warns, then the good news.
ORDER = {REGRESSED: 0, MISSING: 0, UNCONFIRMED: 1, IMPROVED: 2, ADDED: 3, SAME: 4}
# More rows than these are counted, not listed (a GitHub comment holds 65,536 characters).
MAX_CHANGED_ROWS = 100
MAX_UNCHANGED_ROWS = 200


def md_text(text: str) -> str:
    """A table cell as plain Markdown: pipes and tag-like '<' escaped by backslash, '->' as an arrow."""
    text = text.replace("\n", " ").replace("|", "\\|").replace(" -> ", " → ")
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text)


def _pair(b, a, fmt: Callable[[object], str]) -> str:
    if b is None and a is None:
        return "-"
    fb = "-" if b is None else fmt(b)
    fa = "-" if a is None else fmt(a)
    return fb if fb == fa else f"{fb} → {fa}"


def _us(us: float) -> str:
    return duration(us / 1000)


def _p50(r: RowComparison) -> str:
    lat = r.latency
    return "-" if lat is None else _pair(lat.base_p50_us, lat.new_p50_us, _us)


def _change(r: RowComparison) -> str:
    lat = r.latency
    if lat is None:
        return "-"
    if lat.confirmed is not None:
        c = lat.confirmed
        return f"{c.change:+.1%} [{c.ci_low:+.1%}, {c.ci_high:+.1%}] confirmed, {c.rounds} rounds"
    text = f"{lat.change:+.1%}"
    if lat.ci_low is not None:
        text += f" [{lat.ci_low:+.1%}, {lat.ci_high:+.1%}]"
    if lat.adjusted is not None:
        text += f" (machine-adjusted {lat.adjusted:+.1%})"
    return text


def _size(r: RowComparison) -> str:
    b, a = r.size_bytes
    if not (b and a):
        return "-"
    return f"{a / 1024:.1f} KB" if a == b else f"{b / 1024:.1f} → {a / 1024:.1f} KB ({a / b - 1:+.1%})"


def _setting(i: int, fmt: Callable[[object], str]) -> Callable[[RowComparison], str]:
    return lambda r: _pair(r.key[i], (r.new_key or r.key)[i], fmt)


def _status(r: RowComparison) -> str:
    return _pair(r.base_status, r.new_status, str)


def _verdict(r: RowComparison) -> str:
    return f"**{r.verdict}**" if r.verdict in (REGRESSED, MISSING) else r.verdict


# (header, cell, shown when): "always", "varies" (the rows differ, or a row's BASE and NEW
# differ), "moved" (some row's BASE and NEW differ), "any" (some row has a figure).
COLUMNS: list[tuple[str, Callable[[RowComparison], str], str]] = [
    ("model", lambda r: r.key[0], "always"),
    ("flag set", lambda r: r.key[1], "always"),
    ("device", _setting(2, str), "varies"),
    ("thr", _setting(3, str), "varies"),
    ("xnn", _setting(4, lambda v: "yes" if v else "no"), "varies"),
    ("status", _status, "moved"),
    ("verdict", _verdict, "always"),
    ("p50", _p50, "any"),
    ("p50 change [95% CI]", _change, "any"),
    ("size", _size, "moved"),
    ("max abs", lambda r: _pair(*r.max_abs, lambda v: f"{v:.3g}"), "moved"),
    ("accuracy", lambda r: _pair(*r.accuracy, lambda v: f"{v:.3f}"), "moved"),
    ("why", lambda r: r.why or "-", "always"),
]


def _shown(rows: list[RowComparison]) -> list[tuple[str, Callable[[RowComparison], str]]]:
    """The columns that say something about these rows."""
    out = []
    for header, cell, when in COLUMNS:
        values = [cell(r) for r in rows]
        keep = (when == "always"
                or (when == "any" and any(v != "-" for v in values))
                or (when == "moved" and any("→" in v for v in values))
                or (when == "varies" and (len(set(values)) > 1 or any("→" in v for v in values))))
        if keep:
            out.append((header, cell))
    return out


def _table(rows: list[RowComparison]) -> list[str]:
    columns = _shown(rows)
    left = {"model", "flag set", "device", "status", "verdict", "why"}
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" if h in left else "---:" for h, _ in columns) + "|"]
    lines += ["| " + " | ".join(md_text(cell(r)) if h != "verdict" else cell(r) for h, cell in columns) + " |"
              for r in rows]
    return lines


def comparison_markdown(c: Comparison, base_name: str, new_name: str) -> str:
    head, text = c.headline()
    blocks = [[f"**{head}**: {md_text(text)} (tflite-harness compare `{base_name}` → `{new_name}`)"]]
    changed = sorted((r for r in c.rows if r.verdict != SAME), key=lambda r: ORDER[r.verdict])
    same = [r for r in c.rows if r.verdict == SAME]
    if changed:
        blocks.append(_table(changed[:MAX_CHANGED_ROWS]))
        if len(changed) > MAX_CHANGED_ROWS:
            blocks.append([f"... and {len(changed) - MAX_CHANGED_ROWS} more changed rows (`--format json` has all)."])
    if same and len(same) <= MAX_UNCHANGED_ROWS:
        blocks.append([f"<details><summary>{len(same)} unchanged row{'' if len(same) == 1 else 's'}</summary>", "",
                       *_table(same), "", "</details>"])
    elif same:
        blocks.append([f"{len(same)} unchanged rows (`--format json` lists them)."])
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"
