"""Drive TFLite/LiteRT's official ``benchmark_model`` binary: build its argv, read its output.

Why a module of its own: on a phone the only honest latency/memory numbers come from the
native tool, and its output is plain text whose format drifted across releases (prefixes,
``count=`` lines with and without percentiles, a pre-2020 summary line, logcat framing).
Everything here is stdlib-only so it can run where the device-side tooling runs; numpy is
imported lazily, only by :func:`decode_output_file`.

Format facts relied on (see ``/work/shared/fixtures/benchmark_model/README.md`` and
``tflite/tools/benchmark/benchmark_model.cc``):

* the tool always runs a warm-up stage, then a timed stage, each starting with
  ``Running benchmark for at least N iterations ...`` and ending with one ``count=`` line;
  if the warm-up invoke fails the tool stops after the first ``count=`` line;
* ``std`` is the population standard deviation truncated to an integer, percentiles are
  ``values[n*p/100]`` of the sorted values (no interpolation);
* ``Timings (microseconds): count=...`` lines are also printed by the op profiler, so they
  are only trusted as benchmark timings when no bare ``count=`` line exists (legacy tool).
"""

from __future__ import annotations

import math
import re
import shlex
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is only needed by decode_output_file
    import numpy

__all__ = [
    "BenchmarkOutput",
    "BenchmarkOutputError",
    "BenchmarkSettings",
    "OpProfileRow",
    "RunStats",
    "build_args",
    "classify_failure",
    "decode_output_file",
    "parse_output",
    "shell_command",
]

DELEGATES = ("xnnpack", "gpu", "nnapi", "none")


class BenchmarkOutputError(ValueError):
    """The text (or output file) cannot yield what was asked for.

    A ValueError so callers that already treat bad input as ValueError keep working.
    ``partial`` carries whatever was parsed before giving up (e.g. the init time of a run
    that crashed in its first invoke), so a caller can still report it.
    """

    def __init__(self, message: str, partial: BenchmarkOutput | None = None) -> None:
        super().__init__(message)
        self.partial = partial


# --------------------------------------------------------------------------- arguments


@dataclass
class BenchmarkSettings:
    """What we ask ``benchmark_model`` to do; defaults mirror the tool's own defaults
    except that peak memory reporting is on (we always want it)."""

    num_threads: int = 1
    num_runs: int = 50
    warmup_runs: int = 1
    min_secs: float = 1.0
    warmup_min_secs: float | None = None
    delegate: str = "xnnpack"  # "xnnpack" | "gpu" | "nnapi" | "none"
    report_peak_memory: bool = True
    op_profiling: bool = False
    max_secs: float | None = None


_FLAG_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _fmt_float(value: float) -> str:
    """Render a float the tool's flag parser accepts, without losing precision."""
    return repr(float(value))


def _escape_colons(text: str) -> str:
    """``--input_layer_value_files`` splits name from path at the single ':'; literal
    colons must be doubled (the tool un-doubles both halves)."""
    return text.replace(":", "::")


def build_args(
    binary: str,
    graph: str,
    settings: BenchmarkSettings,
    *,
    input_layers: list[tuple[str, tuple[int, ...], str]] | None = None,
    output_filepath: str | None = None,
    signature: str | None = None,
    extra: dict[str, str] | None = None,
) -> list[str]:
    """Return the argv (no shell involved) for one ``benchmark_model`` run.

    ``input_layers`` is ``[(tensor_name, shape, value_file), ...]`` in the model's input
    order; an empty ``value_file`` means "let the tool fill random data". The tool needs
    ``--input_layer`` and ``--input_layer_shape`` next to ``--input_layer_value_files``
    (else "Cannot find the corresponding input_layer name"), so all three are emitted.

    Flags that only newer binaries know (peak memory, op profiling) are emitted only when
    turned on, so an older binary is not broken by a flag it never asked for. For
    ``gpu``/``nnapi`` we do not pass ``--use_xnnpack``: nodes the delegate rejects fall
    back to the tool's default CPU path, which is what an app would get.

    ``extra`` adds or overrides flags: ``{"use_caching": "true"}`` -> ``--use_caching=true``.
    """
    if settings.delegate not in DELEGATES:
        raise ValueError(
            f"unknown delegate {settings.delegate!r}; expected one of {', '.join(DELEGATES)}"
        )
    flags: dict[str, str] = {
        "graph": graph,
        "num_threads": str(int(settings.num_threads)),
        "num_runs": str(int(settings.num_runs)),
        "warmup_runs": str(int(settings.warmup_runs)),
        "min_secs": _fmt_float(settings.min_secs),
    }
    if settings.warmup_min_secs is not None:
        flags["warmup_min_secs"] = _fmt_float(settings.warmup_min_secs)
    if settings.max_secs is not None:
        flags["max_secs"] = _fmt_float(settings.max_secs)
    if settings.delegate == "xnnpack":
        flags["use_xnnpack"] = "true"
    elif settings.delegate == "none":
        flags["use_xnnpack"] = "false"
    elif settings.delegate == "gpu":
        flags["use_gpu"] = "true"
    elif settings.delegate == "nnapi":
        flags["use_nnapi"] = "true"
    if settings.report_peak_memory:
        flags["report_peak_memory_footprint"] = "true"
    if settings.op_profiling:
        flags["enable_op_profiling"] = "true"

    if input_layers:
        names, shapes, files = [], [], []
        for name, shape, value_file in input_layers:
            if not name or "," in name:
                raise ValueError(
                    f"input tensor name {name!r} cannot be passed to benchmark_model "
                    "(empty, or contains ',' which separates layers)"
                )
            dims = [int(d) for d in shape]
            if any(d < 0 for d in dims):
                raise ValueError(
                    f"input {name!r} has unknown dimensions {tuple(shape)}; "
                    "benchmark_model needs concrete sizes"
                )
            names.append(name)
            shapes.append(",".join(str(d) for d in dims))
            if value_file:
                if "," in value_file:
                    raise ValueError(
                        f"value file path {value_file!r} contains ',', which benchmark_model "
                        "reads as a separator"
                    )
                files.append(f"{_escape_colons(name)}:{_escape_colons(value_file)}")
        flags["input_layer"] = ",".join(names)
        flags["input_layer_shape"] = ":".join(shapes)
        if files:
            flags["input_layer_value_files"] = ",".join(files)
    if output_filepath:
        flags["output_filepath"] = output_filepath
    if signature:
        flags["signature_to_run_for"] = signature
    for key, value in (extra or {}).items():
        name = key[2:] if key.startswith("--") else key
        if not _FLAG_NAME.match(name):
            raise ValueError(f"bad benchmark_model flag name {key!r}")
        flags[name] = str(value)
    return [binary, *(f"--{k}={v}" for k, v in flags.items())]


def shell_command(argv: list[str]) -> str:
    """Join argv for a POSIX shell (``adb shell`` runs one): every word single-quoted as
    needed, so names with spaces, ``;`` or ``$(...)`` stay literal data."""
    return " ".join(shlex.quote(str(a)) for a in argv)


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


# --------------------------------------------------------------------------- failures

_MISSING_REASON = (
    "benchmark_model not found on the device; set runner.benchmark_model in the device profile"
)
_RE_SHELL_NOT_FOUND = re.compile(
    r"(?:command not found|inaccessible or not found|: not found\b|"
    r"No such file or directory)",
)
_RE_BUILTIN_OP = re.compile(
    r"Didn't find op for builtin opcode '?([A-Za-z0-9_]+)'?(?: version '?(\d+)'?)?"
)
_RE_CUSTOM_OP = re.compile(r"Encountered unresolved custom op:?\s*([^\s.,;]+)")
_RE_FLEX_NODE = re.compile(r"\((Flex[A-Za-z0-9_]+)\)")
_SIGNAL_WORDS = {"Segmentation fault": signal.SIGSEGV, "Aborted": signal.SIGABRT}


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def classify_failure(text: str, returncode: int | None) -> tuple[str, str]:
    """Sort a finished run into (category, one-line reason) a person can act on.

    Categories: ``missing_binary``, ``wrong_abi``, ``not_executable``, ``unsupported``,
    ``out_of_space``, ``crash``, ``error`` and ``ok``. Textual causes are checked before
    the signal because they name the root cause (an unresolved op often ends in abort).
    ``returncode`` may be None: old ``adb shell`` does not pass exit codes through.
    """
    text = text if isinstance(text, str) else ""
    lines = [_clean(r)[0].strip() for r in text.splitlines()]
    lines = [ln for ln in lines if ln]
    joined = "\n".join(lines)

    shell_missing = any(
        _RE_SHELL_NOT_FOUND.search(ln)
        and ("benchmark_model" in ln or ln.startswith(("sh:", "/system/bin/sh:", "bash:")))
        for ln in lines
    )
    if returncode == 127 or shell_missing:
        return "missing_binary", _MISSING_REASON

    if (
        "Exec format error" in joined
        or "cannot execute binary file" in joined
        or ("not executable: " in joined and "ELF" in joined)
    ):
        return (
            "wrong_abi",
            "benchmark_model cannot execute on this device (wrong ABI: Exec format error); "
            "push the build for the device's CPU ABI (e.g. arm64-v8a)",
        )
    if returncode == 126:
        if "Permission denied" in joined:
            return (
                "not_executable",
                "benchmark_model is not executable (Permission denied); chmod +x it on the "
                "device, or use a directory not mounted noexec (e.g. /data/local/tmp)",
            )
        return (
            "wrong_abi",
            "benchmark_model could not be executed (exit 126): likely the wrong ABI for "
            "this device; push the build for the device's CPU ABI",
        )

    m = _RE_CUSTOM_OP.search(joined)
    flex = _RE_FLEX_NODE.search(joined)
    if m or flex or "Select TensorFlow op(s)" in joined:
        op = (m.group(1) if m else None) or (flex.group(1) if flex else None)
        if op and op.startswith("Flex"):
            return (
                "unsupported",
                f"model needs TensorFlow (Flex) op {op}, which this benchmark_model build "
                "lacks; use the benchmark_model_plus_flex build or convert without SELECT_TF_OPS",
            )
        if op:
            return (
                "unsupported",
                f"model uses custom op {op}, which this benchmark_model build does not register",
            )
        return (
            "unsupported",
            "model needs Select TensorFlow (Flex) ops, which this benchmark_model build lacks",
        )
    m = _RE_BUILTIN_OP.search(joined)
    if m:
        version = f" version {m.group(2)}" if m.group(2) else ""
        return (
            "unsupported",
            f"benchmark_model does not support builtin op {m.group(1)}{version}; "
            "the binary is older than the converter: use a newer benchmark_model",
        )

    if "No space left on device" in joined:
        return (
            "out_of_space",
            "the device ran out of storage (No space left on device); free space on the "
            "device or push to another directory",
        )

    sig: int | None = None
    if returncode is not None and returncode < 0:
        sig = -returncode
    elif returncode is not None and 128 < returncode < 128 + 65:
        sig = returncode - 128
    elif returncode in (None, 0):
        for word, s in _SIGNAL_WORDS.items():
            if word in joined:
                sig = int(s)
                break
    if sig is not None:
        return "crash", f"benchmark_model crashed with signal {sig} ({_signal_name(sig)})"

    try:
        parsed = parse_output(text)
    except BenchmarkOutputError as exc:
        if returncode not in (None, 0):
            first = exc.partial.errors[0] if exc.partial and exc.partial.errors else str(exc)
            return "error", f"benchmark_model exited with status {returncode}: {first}"
        return "error", str(exc)
    if returncode not in (None, 0):
        first = parsed.errors[0] if parsed.errors else "no error message"
        return "error", f"benchmark_model exited with status {returncode}: {first}"
    if parsed.errors and parsed.inference is None and parsed.inference_avg_us is None:
        return "error", f"benchmark_model stopped before the timed runs: {parsed.errors[0]}"
    return "ok", "benchmark_model finished"


# --------------------------------------------------------------------------- output file


def decode_output_file(
    data: bytes, outputs: list[tuple[str, tuple[int, ...], str]]
) -> list[numpy.ndarray]:
    """Split the bytes ``--output_filepath`` wrote into one array per output.

    The file has no header (raw tensor bytes back to back, in output order), so names,
    shapes and dtypes must come from the model; a size mismatch means they did not match
    this run, and we refuse rather than return misaligned numbers.
    """
    import numpy as np

    specs = []
    expected = 0
    for name, shape, dtype_name in outputs:
        try:
            dtype = np.dtype(dtype_name)
        except TypeError as exc:
            raise ValueError(f"output {name!r}: unknown dtype {dtype_name!r}") from exc
        if dtype.hasobject or dtype.itemsize == 0:
            raise ValueError(f"output {name!r}: dtype {dtype_name!r} has no fixed byte size")
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise ValueError(f"output {name!r}: shape {dims} has unknown dimensions")
        count = math.prod(dims)
        specs.append((name, dims, dtype, count))
        expected += count * dtype.itemsize
    if len(data) != expected:
        described = ", ".join(f"{n}{list(d)}:{t.name}" for n, d, t, _ in specs) or "no outputs"
        raise BenchmarkOutputError(
            f"output file has {len(data)} bytes but the outputs ({described}) need {expected}"
        )
    arrays = []
    offset = 0
    for _name, dims, dtype, count in specs:
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims).copy()
        arrays.append(arr)
        offset += count * dtype.itemsize
    return arrays
