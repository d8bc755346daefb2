"""The comparison table: rows model x flag set (x device x threads), relative to a baseline.

One function builds the rows as data (`comparison_rows`); terminal, Markdown and CSV only
format them, so every figure in every format is the same stored number. How a value becomes
a cell's text is `table_cells.py`'s (`Row`, `text_columns`, `duration`, ...), re-exported here.
"""

from __future__ import annotations

import math

from harness.core import statuses
from harness.core.result import Result
from harness.core.runtimes import INTERPRETER
from harness.report.table_cells import (  # noqa: F401 - re-exported
    Row,
    cell_text,
    duration,
    fmt,
    memo,
    sig,
    text_cells,
    text_columns,
)

# (key, header, description) — docs/results.md's column list says the same in more words.
COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", "model name from the campaign"),
    ("flag_set", "flag set", "converter flag set (as_given: a .tflite measured without conversion)"),
    ("device", "device", "where it ran (local, adb:SERIAL, ...)"),
    ("threads", "thr", "interpreter threads"),
    ("rt", "rt", "terminal only: runtime marker, interp (Interpreter), cm (CompiledModel on the cpu), cm:gpu+cpu ..."),
    ("api", "runtime API", "runtime API / accelerator: interpreter/cpu, compiled_model/cpu, compiled_model/gpu+cpu "
     "(docs/runtimes.md)"),
    ("status", "status", "ok, unhealthy, conversion_failed, runtime_failed, unsupported, device_lost, timeout, input_error"),
    ("size_kb", "size KB", "artifact size in KiB"),
    ("size_ratio", "size x", "artifact size / baseline artifact size (same model)"),
    ("p50_ms", "p50", "median latency of the timed runs (µs under 1 ms)"),
    ("p90_ms", "p90", "90th percentile latency (µs under 1 ms)"),
    ("speedup", "speed-up", "baseline p50 / this p50 (same model, device, threads, runtime); >1 is faster"),
    ("init_ms", "init", "interpreter creation + allocate_tensors (µs under 1 ms)"),
    ("peak_mb", "mem MB", "peak RSS of the measuring process above its baseline before the model was loaded, MiB"),
    ("max_abs", "max abs", "largest absolute difference from the original model's outputs"),
    ("cosine", "cosine", "mean cosine similarity of outputs vs the original (1 = same direction)"),
    ("snr_db", "SNR dB", "signal-to-noise ratio of outputs vs the original, dB (inf = identical)"),
    ("top1", "top-1", "share of samples whose unique top class matches the original's (ties count as misses)"),
    ("accuracy", "acc", "task accuracy against the model's labels (original's accuracy in brackets)"),
    ("roundtrip_ms", "w+run+r", "CompiledModel: p50 of write inputs + run + read outputs, what an app pays per "
     "inference (µs under 1 ms)"),
    ("full_accel", "full accel", "CompiledModel's is_fully_accelerated(); on the cpu accelerator `no` means some ops "
     "run in builtin CPU kernels instead of XNNPACK"),
    ("vs_interp", "vs interp", "CompiledModel: largest absolute difference from the Interpreter's outputs on the "
     "same artifact (0 = identical)"),
    ("valid", "valid", "valid, or why the latency should not be trusted (few runs or seconds, an unstable p50, throttling)"),
    ("rep", "rep", "representative data: samples (the model's own), random (seeded, in [0,1)), none"),
    ("reason", "reason", "why the row is not ok, or a note"),
]


def _speed_key(r) -> tuple:
    """Speed-up compares rows of one model on one device, threads, delegate and runtime API."""
    return (r.model, r.device, r.threads, r.xnnpack, r.runtime, getattr(r, "runtime_api", None),
            getattr(r, "accelerator", None))


def _marker(api: str, accel: str) -> str:
    """The compact runtime marker of the narrow terminal table."""
    short = "interp" if api == INTERPRETER else "cm"
    return short if accel == "cpu" else f"{short}:{accel}"


def comparison_rows(results: list[Result], baseline: str | None = "fp32") -> list[Row]:
    base_lat: dict[tuple, float] = {}
    base_size: dict[str, int] = {}
    for r in results:
        if r.flag_set != baseline:
            continue
        if r.size_bytes:
            base_size[r.model] = r.size_bytes
        if r.status in statuses.MEASURED and r.latency_us:
            base_lat[_speed_key(r)] = r.latency_us["p50"]
    rows = []
    for r in results:
        lat = r.latency_us or {}
        drift = r.drift or {}
        snr = drift.get("snr_db")
        if snr == "inf":
            snr = math.inf
        p50 = lat.get("p50")
        p90 = lat.get("p90")
        ci = lat.get("p50_ci")
        b = base_lat.get(_speed_key(r))
        api, accel = getattr(r, "runtime_api", None) or "interpreter", getattr(r, "accelerator", None) or "cpu"
        trip = (getattr(r, "roundtrip_us", None) or {}).get("p50")
        full = getattr(r, "fully_accelerated", None)
        vs_interp = drift.get("vs_interpreter")
        speedup = b / p50 if (b and p50 and r.status in statuses.MEASURED) else None
        size = r.size_bytes
        size_ratio = size / base_size[r.model] if (size and r.model in base_size) else None
        rows.append(Row({
            "model": r.model, "flag_set": r.flag_set, "device": r.device, "threads": r.threads, "status": r.status,
            "size_kb": size / 1024 if size else None, "size_ratio": size_ratio,
            "p50_ms": p50 / 1000 if p50 is not None else None,
            "p90_ms": p90 / 1000 if p90 is not None else None,
            "speedup": speedup, "init_ms": r.init_us / 1000 if r.init_us is not None else None,
            "peak_mb": r.peak_rss_mb, "max_abs": drift.get("max_abs"), "cosine": drift.get("cosine"),
            "snr_db": snr, "top1": drift.get("top1_agreement"), "accuracy": drift.get("accuracy"),
            "reference_accuracy": drift.get("reference_accuracy"), "rep": r.representative,
            "reason": r.reason,
            "rt": _marker(api, accel), "api": f"{api}/{accel}",
            "roundtrip_ms": trip / 1000 if trip is not None else None,
            "full_accel": None if full is None else ("yes" if full else "no"),
            "vs_interp": vs_interp.get("max_abs") if isinstance(vs_interp, dict) else None,
            "valid": r.validity,
            "p50_ci_ms": [x / 1000 for x in ci] if ci else None,
        }))
    return rows


TERMINAL_SKIP = {"p90_ms", "init_ms", "snr_db"}  # in the files, left out of the terminal for width
# Left out of the terminal unless --wide, so the table fits 120 columns: they are in every file
# (results.md/csv/json, HTML) and in `report --wide`. The narrow table's reasons and latency
# warnings are numbered notes beneath it (`table_notes`), not a column empty on most rows.
NARROW_SKIP = {"size_ratio", "max_abs", "rep", "reason", "api", "roundtrip_ms", "full_accel", "vs_interp"}
TERMINAL_WIDTH = 120


def visible_columns(rows: list[Row], terminal: bool = False, wide: bool = True) -> list[tuple[str, str, str]]:
    """Drop columns that say nothing for these rows (one device, one thread count; in a narrow
    terminal table also the columns without a value in any row)."""
    cols = []
    for key, header, desc in COLUMNS:
        if key in ("device", "threads") and len({r.values[key] for r in rows}) <= 1:
            continue
        if key in ("rt", "api") and {r.values["api"] for r in rows} <= {"interpreter/cpu"}:
            continue  # the runtime axis says nothing when every row is the Interpreter's on the CPU
        if key == "rt" and (not terminal or wide):
            continue  # the compact marker is the narrow terminal's; files and --wide carry `runtime`
        if key in ("roundtrip_ms", "full_accel", "vs_interp") and all(r.values[key] is None for r in rows):
            continue
        if terminal and key in TERMINAL_SKIP:
            continue
        if terminal and not wide and (key in NARROW_SKIP or (
                key in NUMERIC and all(r.values.get(key) is None for r in rows))):
            continue
        cols.append((key, header, desc))
    return cols


NUMERIC = {"size_kb", "size_ratio", "p50_ms", "p90_ms", "speedup", "init_ms", "peak_mb", "max_abs", "cosine",
           "snr_db", "top1", "accuracy", "threads", "roundtrip_ms", "vs_interp"}
# Columns whose text can come from users (names, reasons); numbers we format need no escaping.
TEXT_KEYS = {"model", "flag_set", "device", "status", "rep", "reason", "valid", "rt", "api", "full_accel"}
STATUS_STYLES = {statuses.OK: "green", statuses.UNHEALTHY: "yellow", statuses.UNSUPPORTED: "magenta",
                 statuses.LATENCY_ONLY: "cyan"}

# Above this many rows the terminal table is drawn by `plain_table` (same columns and cells,
# no colours, no wrapping): rich lays out every cell of every row, minutes for 100k rows.
LARGE_TABLE_ROWS = 2000


def note_text(values: dict) -> str | None:
    """What a row says beyond its figures: why it is not ok (or an ok row's note), and why its
    latency should not be trusted. None when it says nothing more."""
    parts = []
    reason = values.get("reason")
    if reason:
        parts.append(str(reason))
    valid = values.get("valid")
    if valid and valid != "valid":
        parts.append(f"latency warn: {valid}")
    return "; ".join(parts) or None


def table_notes(rows: list[Row]) -> tuple[list[int | None], list[str]]:
    """Each row's note number (None without a note) and the notes in order: rows whose note
    reads the same share its number, so thirty rows lost with one device make one note."""
    numbers: list[int | None] = []
    texts: list[str] = []
    index: dict[str, int] = {}
    for r in rows:
        text = note_text(r.values)
        if text is None:
            numbers.append(None)
            continue
        n = index.get(text)
        if n is None:
            texts.append(text)
            n = index[text] = len(texts)
        numbers.append(n)
    return numbers, texts


def notes_lines(texts: list[str]) -> list[str]:
    """The notes as they are printed beneath the narrow table: "[1] why"."""
    return [f"[{n}] {t}" for n, t in enumerate(texts, 1)]


def terminal_cells(rows: list[Row], cols: list[tuple[str, str, str]], markup: bool = True,
                   numbers: list[int | None] | None = None) -> list[tuple[str, ...]]:
    """The terminal table's cells: status coloured (markup) and, with NUMBERS, followed by the
    row's note number; valid as yes/warn; in the wide table warnings after the reason."""
    from rich.markup import escape

    keys = [k for k, _, _ in cols]
    columns = text_columns(rows, keys)
    esc = memo(escape) if markup else str
    valid = [r.values["valid"] for r in rows]
    for i, key in enumerate(keys):
        if key == "status":
            tags = [""] * len(rows) if numbers is None else [
                "" if n is None else (f" \\[{n}]" if markup else f" [{n}]") for n in numbers]
            if markup:
                columns[i] = [f"[{STATUS_STYLES.get(st, 'red')}]{esc(st)}[/]{tag}"
                              for st, tag in zip(columns[i], tags, strict=True)]
            else:
                columns[i] = [st + tag for st, tag in zip(columns[i], tags, strict=True)]
        elif key == "valid":
            warn = "[yellow]warn[/]" if markup else "warn"
            columns[i] = ["-" if v is None else ("yes" if v == "valid" else warn) for v in valid]
        elif key == "reason":
            columns[i] = [(esc(t) if t != "-" else "") if v in (None, "valid")
                          else (esc(t) + " " if t not in ("-", "") else "") + esc(f"[{v}]")
                          for t, v in zip(columns[i], valid, strict=True)]
        elif key in TEXT_KEYS and markup:
            columns[i] = list(map(esc, columns[i]))
    return list(zip(*columns, strict=True)) if columns else [() for _ in rows]


# When the narrow table is too wide, these go first, in this order: top-1 when acc is there
# (labels say more than agreement with the original), then speed-up (p50 says it), then size.
# The mission's figures stay: latency (p50), memory (mem MB), drift (cosine, and top-1 or
# acc); so do model, flag set, device, threads, status and valid.
DROP_ORDER = ("top1", "speedup", "size_kb")
REASON_MIN = 16  # the wide table's reason column folds down to this width
FOLDING = {"model", "flag_set", "device", "reason"}  # the columns rich may fold to fit


def fit_columns(rows: list[Row], cols: list[tuple[str, str, str]], limit: int,
                numbers: list[int | None] | None = None) -> list[tuple[str, str, str]]:
    """COLS without the fewest DROP_ORDER columns that make the table's width at most LIMIT."""
    keys = [k for k, _, _ in cols]
    cells = terminal_cells(rows, cols, markup=False, numbers=numbers)
    width = {k: max([len(h), *(len(line[i]) for line in cells)]) for i, (k, h, _) in enumerate(cols)}
    width["reason"] = REASON_MIN
    kept = list(keys)
    for key in DROP_ORDER:
        if sum(width[k] + 2 for k in kept) + 2 <= limit:  # a border and one space per column (collapsed padding)
            break
        if key in kept and (key != "top1" or "accuracy" in kept):
            kept.remove(key)
    return [c for c in cols if c[0] in kept]


def terminal_layout(rows: list[Row], wide: bool) -> tuple[list[tuple[str, str, str]], list[int | None] | None,
                                                           list[str]]:
    """The terminal table's columns, each row's note number and the notes (none when WIDE:
    the wide table keeps the reason column)."""
    cols = visible_columns(rows, terminal=True, wide=wide)
    if wide:
        return cols, None, []
    numbers, texts = table_notes(rows)
    return fit_columns(rows, cols, TERMINAL_WIDTH, numbers), numbers, texts


def rich_table(rows: list[Row], title: str | None = None, wide: bool = False):
    """The terminal table: fits TERMINAL_WIDTH columns with the reasons as numbered notes
    beneath it, or every column with WIDE."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cols, numbers, notes = terminal_layout(rows, wide)
    table = Table(title=title, show_lines=False, header_style="bold", box=box.HEAVY_HEAD, collapse_padding=not wide)
    for key, header, _ in cols:  # still too wide (long names, many devices): the names fold, never a figure
        table.add_column(header, justify="right" if key in NUMERIC else "left",
                         overflow="fold", no_wrap=key not in FOLDING,
                         min_width=30 if key == "reason" else None)
    for line in terminal_cells(rows, cols, numbers=numbers):
        table.add_row(*line)
    if not notes:
        return table
    return Group(table, *(Text(line, overflow="fold") for line in notes_lines(notes)))


def plain_comparison_table(rows: list[Row], title: str | None = None, wide: bool = False) -> str:
    """The terminal table for many rows: what `rich_table` shows, as aligned plain text."""
    from harness.report.plain import plain_table

    cols, numbers, notes = terminal_layout(rows, wide)
    text = plain_table([h for _, h, _ in cols], terminal_cells(rows, cols, markup=False, numbers=numbers),
                       right={i for i, (k, _, _) in enumerate(cols) if k in NUMERIC}, title=title)
    return text + "".join(line + "\n" for line in notes_lines(notes))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(rows: list[Row]) -> str:
    cols = visible_columns(rows)
    keys = [k for k, _, _ in cols]
    columns = text_columns(rows, keys)
    esc = memo(_md_escape)
    for i, key in enumerate(keys):
        if key == "reason":
            columns[i] = ["" if t == "-" else esc(t) for t in columns[i]]
        elif key in TEXT_KEYS or any(c in "".join(columns[i]) for c in "|\n<>"):  # names, or odd text
            columns[i] = list(map(esc, columns[i]))
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "|".join("---:" if k not in TEXT_KEYS else "---"
                            for k in keys) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in zip(*columns, strict=True)]
    return "\n".join(lines) + "\n"
