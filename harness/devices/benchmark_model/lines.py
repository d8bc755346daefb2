"""Readers for single lines of benchmark_model's output: the patterns and their parsers.

Kept apart from `output.py`, which decides what the lines mean together (which ``count=``
line is the warm-up, which delegate line wins, ...).
"""

from __future__ import annotations

import math
import re

from harness.devices.benchmark_model.parsed import OpProfileRow, RunStats

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# threadtime: "03-15 14:00:51.294 12836 12836 I tflite  : msg"; brief: "I/tflite( 123): msg"
_LOGCAT = re.compile(
    r"^\s*(?:\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+[VDIWEFS]\s+[^:]*?\s*:\s?"
    r"|[VDIWEFS]/[^(:]*\(\s*\d+\):\s?)"
)
LEVEL = re.compile(r"^(?:INFO|VERBOSE|WARNING|WARN|ERROR|FATAL|DEBUG):\s?")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"

ERROR_MARKERS = (
    "ERROR:",
    "FATAL:",
    "Failed to",
    "Segmentation fault",
    "not found",
    "Aborted",
    "cannot execute binary file",
    "Exec format error",
    "Didn't find op for builtin opcode",
    "Encountered unresolved custom op",
    "No space left on device",
)

RE_RUNNING = re.compile(r"^Running benchmark for at least\b")
RE_COUNT = re.compile(r"^(Timings \(microseconds\):\s*)?count=(\S+)(.*)$")
RE_KV = re.compile(r"\b(first|curr|min|max|avg|std|p5|median|p95)=(" + _NUM + ")")
RE_SUMMARY = re.compile(r"^(?:Average )?inference timings in us:\s*(.*)$", re.IGNORECASE)
RE_SUMMARY_ITEM = re.compile(r"([A-Za-z][A-Za-z ()]*?):\s*(" + _NUM + ")")
RE_INIT_MS = re.compile(r"^Initialized session in (" + _NUM + r")\s*ms\b")
RE_MODEL_SIZE = re.compile(r"^The input model file size \(MB\):\s*(" + _NUM + ")")
RE_MEM_DELTA = re.compile(
    r"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
    r"\s*init=(" + _NUM + r")\s+overall=(" + _NUM + ")"
)
RE_PEAK = re.compile(
    r"^Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUM + ")"
)
RE_VMRSS = re.compile(r"^-?\s*VmRSS\s*:\s*(" + _NUM + r")\s*(MB|kB|KB)?", re.IGNORECASE)
RE_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node, "
    r"yielding (\d+) partitions?(?: for (?:the )?subgraph (\d+))?"
)
RE_EXPLICIT = re.compile(
    r"Explicitly applied (\S+(?: \S+)*?) delegate, and the model graph will be "
    r"(completely|partially) executed by the delegate"
)
RE_NOT_APPLIED = re.compile(
    r"Though (\S+(?: \S+)*?) delegate is explicitly applied, the model graph will not be "
    r"executed by the delegate"
)
RE_CREATED_XNNPACK = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
RE_PARAM = re.compile(r"^(Num threads|Graph|Min num runs): \[(.*)\]\s*$")
RE_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")


def to_float(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def to_int(text: str) -> int | None:
    """int() that never raises: huge digit strings and non-integers give None."""
    text = text.strip()
    if not re.fullmatch(r"[-+]?\d{1,18}", text):
        value = to_float(text)
        if value is None or not math.isfinite(value) or value != int(value):
            return None
        if abs(value) > 1e18:
            return None
        return int(value)
    return int(text)


def clean(raw: str) -> tuple[str, str]:
    """Return (line without ANSI/logcat framing, same without the log-level prefix)."""
    line = _ANSI.sub("", raw)
    line = _CONTROL.sub("", line)
    line = _LOGCAT.sub("", line, count=1)
    stripped = line.strip()
    body = LEVEL.sub("", stripped, count=1).strip()
    return line, body


def parse_count(rest_first: str, rest: str) -> RunStats | None:
    count = to_int(rest_first)
    if count is None or count < 0:
        return None
    values: dict[str, float] = {}
    for key, num in RE_KV.findall(rest):
        value = to_float(num)
        if value is not None and key not in values:
            values[key] = value
    nan = math.nan
    if count == 0:
        return RunStats(0, None, None, nan, nan, nan, nan, None, None, None)
    if "min" not in values or "max" not in values or "avg" not in values:
        curr = values.get("curr")
        if curr is None:
            return None
        # "count=N curr=X" (all values equal): everything is X and std is 0.
        return RunStats(count, curr, curr, curr, curr, curr, 0.0, None, None, None)
    return RunStats(
        count=count,
        first_us=values.get("first"),
        curr_us=values.get("curr"),
        min_us=values["min"],
        max_us=values["max"],
        avg_us=values["avg"],
        std_us=values.get("std", nan),
        p5_us=values.get("p5"),
        median_us=values.get("median"),
        p95_us=values.get("p95"),
    )


def close_enough(a: float, b: float) -> bool:
    """Equal up to the 6 significant digits the tool prints."""
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1)


def parse_op_row(fields: list[str], columns: list[str]) -> OpProfileRow | None:
    if len(fields) < len(columns):
        return None
    # Anything past the last column belongs to the name (it is the only free text).
    values = fields[: len(columns) - 1] + ["\t".join(fields[len(columns) - 1 :])]
    cell = {col: val.strip() for col, val in zip(columns, values, strict=True)}

    def num(col: str) -> float | None:
        if col not in cell:
            return None
        return to_float(cell[col].rstrip("%"))

    avg, pct, cdf = num("avg ms"), num("%"), num("cdf%")
    node_type = cell.get("node type", "")
    if avg is None or pct is None or cdf is None or not node_type:
        return None
    name = cell.get("name", "")
    if len(name) >= 2 and name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    times = cell.get("times called")
    return OpProfileRow(
        node_type=node_type,
        first_ms=num("first"),
        avg_ms=avg,
        percent=pct,
        cdf_percent=cdf,
        mem_kb=num("mem kb"),
        times_called=to_int(times) if times is not None else None,
        name=name,
    )


def header_columns(line: str) -> list[str] | None:
    """Columns of a profiler table header like ``\\t[node type]\\t[first]...\\t[Name]``."""
    cells = [c.strip() for c in line.split("\t")]
    cells = [c for c in cells if c]
    if not cells or not all(c.startswith("[") and c.endswith("]") for c in cells):
        return None
    cols = [c[1:-1].strip().lower() for c in cells]
    return cols if "node type" in cols and "name" in cols else None
