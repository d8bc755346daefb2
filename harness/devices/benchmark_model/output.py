"""Parse benchmark_model's text output, in every format it has had."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from harness.devices.benchmark_model.errors import BenchmarkOutputError

# --------------------------------------------------------------------------- parsed data


@dataclass
class RunStats:
    """One ``count=`` line. ``first``/``curr``/percentiles are None when not printed
    (older tools, or the ``count=N curr=X`` form used when all values are equal).
    For ``count=0`` the float fields are NaN, as the tool's own ``avg()`` would be."""

    count: int
    first_us: float | None
    curr_us: float | None
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    p5_us: float | None
    median_us: float | None
    p95_us: float | None


@dataclass
class OpProfileRow:
    """One row of the per-op "Run Order" table (times in ms, as the tool prints them)."""

    node_type: str
    first_ms: float | None
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float | None
    times_called: int | None
    name: str


@dataclass
class BenchmarkOutput:
    """Everything we read from one run's text. Any field may be None: the format differs
    across tool versions and a run may have stopped part way."""

    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    inference: RunStats | None = None
    model_size_mb: float | None = None
    init_memory_mb: float | None = None
    overall_memory_mb: float | None = None
    peak_memory_mb: float | None = None
    vm_rss_mb: float | None = None
    delegate: str | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    partitions: int | None = None
    fully_delegated: bool | None = None
    num_threads: int | None = None
    graph: str | None = None
    min_num_runs: int | None = None
    op_profile: list[OpProfileRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def delegate_coverage(self) -> float | None:
        """Fraction of nodes the delegate took (1.0 when it said it runs the whole graph)."""
        if self.delegated_nodes is not None and self.total_nodes:
            return self.delegated_nodes / self.total_nodes
        if self.fully_delegated:
            return 1.0
        return None

    @property
    def has_timing(self) -> bool:
        """True when the text carried any latency: warm-up, timed runs or per-op times
        (an op-profile table on its own still tells where the time goes)."""
        return bool(self.op_profile) or any(
            v is not None
            for v in (self.inference_avg_us, self.warmup_avg_us, self.inference, self.warmup)
        )


# --------------------------------------------------------------------------- parsing

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# threadtime: "03-15 14:00:51.294 12836 12836 I tflite  : msg"; brief: "I/tflite( 123): msg"
_LOGCAT = re.compile(
    r"^\s*(?:\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+[VDIWEFS]\s+[^:]*?\s*:\s?"
    r"|[VDIWEFS]/[^(:]*\(\s*\d+\):\s?)"
)
_LEVEL = re.compile(r"^(?:INFO|VERBOSE|WARNING|WARN|ERROR|FATAL|DEBUG):\s?")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"

_ERROR_MARKERS = (
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

_RE_RUNNING = re.compile(r"^Running benchmark for at least\b")
_RE_COUNT = re.compile(r"^(Timings \(microseconds\):\s*)?count=(\S+)(.*)$")
_RE_KV = re.compile(r"\b(first|curr|min|max|avg|std|p5|median|p95)=(" + _NUM + ")")
_RE_SUMMARY = re.compile(r"^(?:Average )?inference timings in us:\s*(.*)$", re.IGNORECASE)
_RE_SUMMARY_ITEM = re.compile(r"([A-Za-z][A-Za-z ()]*?):\s*(" + _NUM + ")")
_RE_INIT_MS = re.compile(r"^Initialized session in (" + _NUM + r")\s*ms\b")
_RE_MODEL_SIZE = re.compile(r"^The input model file size \(MB\):\s*(" + _NUM + ")")
_RE_MEM_DELTA = re.compile(
    r"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
    r"\s*init=(" + _NUM + r")\s+overall=(" + _NUM + ")"
)
_RE_PEAK = re.compile(
    r"^Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUM + ")"
)
_RE_VMRSS = re.compile(r"^-?\s*VmRSS\s*:\s*(" + _NUM + r")\s*(MB|kB|KB)?", re.IGNORECASE)
_RE_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node, "
    r"yielding (\d+) partitions?(?: for (?:the )?subgraph (\d+))?"
)
_RE_EXPLICIT = re.compile(
    r"Explicitly applied (\S+(?: \S+)*?) delegate, and the model graph will be "
    r"(completely|partially) executed by the delegate"
)
_RE_NOT_APPLIED = re.compile(
    r"Though (\S+(?: \S+)*?) delegate is explicitly applied, the model graph will not be "
    r"executed by the delegate"
)
_RE_CREATED_XNNPACK = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
_RE_PARAM = re.compile(r"^(Num threads|Graph|Min num runs): \[(.*)\]\s*$")
_RE_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def _int(text: str) -> int | None:
    """int() that never raises: huge digit strings and non-integers give None."""
    text = text.strip()
    if not re.fullmatch(r"[-+]?\d{1,18}", text):
        value = _float(text)
        if value is None or not math.isfinite(value) or value != int(value):
            return None
        if abs(value) > 1e18:
            return None
        return int(value)
    return int(text)


def _clean(raw: str) -> tuple[str, str]:
    """Return (line without ANSI/logcat framing, same without the log-level prefix)."""
    line = _ANSI.sub("", raw)
    line = _CONTROL.sub("", line)
    line = _LOGCAT.sub("", line, count=1)
    stripped = line.strip()
    body = _LEVEL.sub("", stripped, count=1).strip()
    return line, body


def _parse_count(rest_first: str, rest: str) -> RunStats | None:
    count = _int(rest_first)
    if count is None or count < 0:
        return None
    values: dict[str, float] = {}
    for key, num in _RE_KV.findall(rest):
        value = _float(num)
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


def _close(a: float, b: float) -> bool:
    """Equal up to the 6 significant digits the tool prints."""
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1)


def _parse_op_row(fields: list[str], columns: list[str]) -> OpProfileRow | None:
    if len(fields) < len(columns):
        return None
    # Anything past the last column belongs to the name (it is the only free text).
    values = fields[: len(columns) - 1] + ["\t".join(fields[len(columns) - 1 :])]
    cell = {col: val.strip() for col, val in zip(columns, values, strict=True)}

    def num(col: str) -> float | None:
        if col not in cell:
            return None
        return _float(cell[col].rstrip("%"))

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
        times_called=_int(times) if times is not None else None,
        name=name,
    )


def _header_columns(line: str) -> list[str] | None:
    """Columns of a profiler table header like ``\\t[node type]\\t[first]...\\t[Name]``."""
    cells = [c.strip() for c in line.split("\t")]
    cells = [c for c in cells if c]
    if not cells or not all(c.startswith("[") and c.endswith("]") for c in cells):
        return None
    cols = [c[1:-1].strip().lower() for c in cells]
    return cols if "node type" in cols and "name" in cols else None


def parse_output(text: str) -> BenchmarkOutput:
    """Parse one ``benchmark_model`` run's stdout+stderr.

    Decisions where the text is ambiguous:

    * two or more bare ``count=`` lines: the first is warm-up, the second the timed runs
      (extra ones, e.g. from concatenated runs, are ignored: first run wins, like the
      summary line);
    * a single bare ``count=`` line: if the summary line is present, it goes to whichever
      average it equals; otherwise it belongs to the stage whose ``Running benchmark``
      header precedes it. The tool always prints the warm-up stage first and stops after
      it when an invoke fails, so one header + one ``count=`` line is the warm-up and
      ``inference`` stays None. With no header at all (a pasted snippet) it is taken as
      the timed runs;
    * ``Timings (microseconds): count=`` counts as the timed runs only when no bare
      ``count=`` line exists, and never inside the init-profile section (the op profiler
      prints such lines too);
    * ``Initialized session in X ms`` gives ``init_us`` only when the summary line has no
      ``Init:``; the summary's integer microseconds are more precise.

    Raises :class:`BenchmarkOutputError` (and nothing else) when no latency at all was
    printed; its message names the first error line.
    """
    out = BenchmarkOutput()
    if not isinstance(text, str):
        raise BenchmarkOutputError("benchmark_model output must be text")

    bare_counts: list[tuple[RunStats, int, int]] = []  # (stats, headers seen before, line no)
    timings_counts: list[RunStats] = []
    running_headers = 0
    summary: dict[str, float] = {}
    init_ms: float | None = None
    delegate_explicit: str | None = None
    delegate_replacing: str | None = None
    delegate_created: str | None = None
    subgraphs_seen: set[int] = set()
    replacing_totals = [0, 0, 0]  # delegated, total, partitions
    replacing_found = False

    section = "none"  # "init" | "regular" | "none" (profiler section)
    table: str | None = None
    columns: list[str] | None = None
    rows_by_section: dict[str, list[OpProfileRow]] = {"regular": [], "none": []}
    none_tables_done = False

    for lineno, raw in enumerate(text.splitlines()):
        line, body = _clean(raw)
        stripped = line.strip()
        if stripped and any(marker in stripped for marker in _ERROR_MARKERS):
            out.errors.append(stripped[:500])

        # ---- profiler tables (tab-separated; keep the tabs, so use `line` here)
        if "Profiling Info for Benchmark Initialization" in body:
            section, table, columns = "init", None, None
            continue
        if "Operator-wise Profiling Info for Regular Benchmark Runs" in body:
            section, table, columns = "regular", None, None
            continue
        title = _RE_TABLE_TITLE.match(body)
        if title:
            table, columns = title.group(1).strip(), None
            continue
        if "\t" in line:
            cols = _header_columns(line)
            if cols is not None:
                if table is None:
                    table = "Run Order"  # older snippets show the table without its title
                columns = cols if table == "Run Order" else None
                continue
            if columns is not None and table == "Run Order" and section in rows_by_section:
                if section == "none" and none_tables_done:
                    continue
                fields = line.split("\t")
                if not _LEVEL.sub("", fields[0].strip()):
                    fields = fields[1:]  # the leading tab (or a bare log-level prefix)
                row = _parse_op_row(fields, columns)
                if row is not None:
                    rows_by_section[section].append(row)
                continue
        elif columns is not None and not body:
            if section == "none" and rows_by_section["none"]:
                none_tables_done = True
            columns = None

        if not body:
            continue

        # ---- benchmark stages
        if _RE_RUNNING.match(body):
            running_headers += 1
            continue
        m = _RE_COUNT.match(body)
        if m:
            stats = _parse_count(m.group(2), m.group(3))
            if stats is not None:
                if m.group(1):
                    if section != "init":
                        timings_counts.append(stats)
                else:
                    bare_counts.append((stats, running_headers, lineno))
            continue
        m = _RE_SUMMARY.match(body)
        if m:
            if not summary:
                for key, num in _RE_SUMMARY_ITEM.findall(m.group(1)):
                    value = _float(num)
                    if value is not None:
                        summary.setdefault(key.strip().lower(), value)
            continue
        m = _RE_INIT_MS.match(body)
        if m:
            if init_ms is None:
                init_ms = _float(m.group(1))
            continue
        m = _RE_MODEL_SIZE.match(body)
        if m:
            out.model_size_mb = _float(m.group(1))
            continue
        m = _RE_MEM_DELTA.match(body)
        if m:
            out.init_memory_mb = _float(m.group(1))
            out.overall_memory_mb = _float(m.group(2))
            continue
        m = _RE_PEAK.match(body)
        if m:
            out.peak_memory_mb = _float(m.group(1))
            continue
        m = _RE_VMRSS.match(body)
        if m:
            value = _float(m.group(1))
            if value is not None and (m.group(2) or "MB").lower() == "kb":
                value /= 1024.0
            out.vm_rss_mb = value
            continue
        m = _RE_PARAM.match(body)
        if m:
            key, value = m.group(1), m.group(2)
            if key == "Num threads":
                out.num_threads = _int(value)
            elif key == "Graph":
                out.graph = value
            elif key == "Min num runs":
                out.min_num_runs = _int(value)
            continue

        # ---- delegation
        m = _RE_REPLACING.search(body)
        if m:
            sub = _int(m.group(5)) if m.group(5) else 0
            nums = [_int(m.group(1)), _int(m.group(2)), _int(m.group(4))]
            if sub is not None and sub not in subgraphs_seen and None not in nums:
                subgraphs_seen.add(sub)
                replacing_found = True
                for i, n in enumerate(nums):
                    replacing_totals[i] += n  # type: ignore[operator]
                delegate_replacing = delegate_replacing or m.group(3)
            continue
        m = _RE_EXPLICIT.search(body)
        if m:
            delegate_explicit = delegate_explicit or m.group(1)
            if out.fully_delegated is None:
                out.fully_delegated = m.group(2) == "completely"
            continue
        m = _RE_NOT_APPLIED.search(body)
        if m:
            delegate_explicit = delegate_explicit or m.group(1)
            if out.fully_delegated is None:
                out.fully_delegated = False
            continue
        if _RE_CREATED_XNNPACK.search(body):
            delegate_created = "XNNPACK"

    # ---- assemble
    out.op_profile = rows_by_section["regular"] or rows_by_section["none"]
    out.delegate = delegate_explicit or delegate_replacing or delegate_created
    if replacing_found:
        out.delegated_nodes, out.total_nodes, out.partitions = replacing_totals
        if out.fully_delegated is None and out.total_nodes:
            out.fully_delegated = out.delegated_nodes == out.total_nodes

    out.init_us = summary.get("init")
    if out.init_us is None and init_ms is not None:
        out.init_us = round(init_ms * 1000.0, 3)
    out.first_us = summary.get("first inference")
    out.warmup_avg_us = summary.get("warmup (avg)", summary.get("warmup"))
    out.inference_avg_us = summary.get("inference (avg)", summary.get("inference"))

    if len(bare_counts) >= 2:
        out.warmup, out.inference = bare_counts[0][0], bare_counts[1][0]
    elif len(bare_counts) == 1:
        stats, headers_before, _ = bare_counts[0]
        if out.inference_avg_us is not None and _close(stats.avg_us, out.inference_avg_us):
            out.inference = stats
        elif out.warmup_avg_us is not None and _close(stats.avg_us, out.warmup_avg_us):
            out.warmup = stats
        elif headers_before == 1:
            out.warmup = stats
        else:
            out.inference = stats
    elif timings_counts:
        out.inference = timings_counts[0]

    if out.first_us is None and out.warmup is not None:
        out.first_us = out.warmup.first_us
    if out.warmup_avg_us is None and out.warmup is not None and out.warmup.count > 0:
        out.warmup_avg_us = out.warmup.avg_us
    if out.inference_avg_us is None and out.inference is not None and out.inference.count > 0:
        out.inference_avg_us = out.inference.avg_us

    if not out.has_timing:
        if out.errors:
            detail = out.errors[0]
        else:
            last = next(
                (_clean(r)[0].strip() for r in reversed(text.splitlines()) if _clean(r)[0].strip()),
                "",
            )
            detail = "no 'Inference timings in us:' or 'count=' line" + (
                f"; last line: {last[:200]}" if last else "; the output was empty"
            )
        detail = " ".join(detail.split())  # one line, tabs and all
        raise BenchmarkOutputError(f"benchmark_model printed no timings: {detail}", partial=out)
    return out
