"""Parse benchmark_model's text output, in every format it has had.

`lines.py` reads single lines; this module decides what they mean together. The data
classes live in `parsed.py` and are re-exported here.
"""

from __future__ import annotations

from harness.devices.benchmark_model.errors import BenchmarkOutputError
from harness.devices.benchmark_model.lines import (
    ERROR_MARKERS,
    LEVEL,
    RE_COUNT,
    RE_CREATED_XNNPACK,
    RE_EXPLICIT,
    RE_INIT_MS,
    RE_MEM_DELTA,
    RE_MODEL_SIZE,
    RE_NOT_APPLIED,
    RE_PARAM,
    RE_PEAK,
    RE_REPLACING,
    RE_RUNNING,
    RE_SUMMARY,
    RE_SUMMARY_ITEM,
    RE_TABLE_TITLE,
    RE_VMRSS,
    clean,
    close_enough,
    header_columns,
    parse_count,
    parse_op_row,
    to_float,
    to_int,
)
from harness.devices.benchmark_model.parsed import BenchmarkOutput, OpProfileRow, RunStats

__all__ = ["BenchmarkOutput", "OpProfileRow", "RunStats", "parse_output"]


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
    if not isinstance(text, str):
        raise BenchmarkOutputError("benchmark_model output must be text")
    parser = _Parser()
    for lineno, raw in enumerate(text.splitlines()):
        parser.feed(lineno, raw)
    out = parser.assemble()
    if not out.has_timing:
        raise BenchmarkOutputError(f"benchmark_model printed no timings: {_no_timing_detail(out, text)}",
                                   partial=out)
    return out


def _no_timing_detail(out: BenchmarkOutput, text: str) -> str:
    if out.errors:
        detail = out.errors[0]
    else:
        last = next((clean(r)[0].strip() for r in reversed(text.splitlines()) if clean(r)[0].strip()), "")
        detail = "no 'Inference timings in us:' or 'count=' line" + (
            f"; last line: {last[:200]}" if last else "; the output was empty"
        )
    return " ".join(detail.split())  # one line, tabs and all


class _Parser:
    """One pass over the text. `feed` takes lines in order; each `_…` method handles one
    kind of line and says whether it took it; `assemble` settles the ambiguities."""

    def __init__(self) -> None:
        self.out = BenchmarkOutput()
        self.bare_counts: list[tuple[RunStats, int, int]] = []  # (stats, headers before, line no)
        self.timings_counts: list[RunStats] = []
        self.running_headers = 0
        self.summary: dict[str, float] = {}
        self.init_ms: float | None = None
        self.delegate_explicit: str | None = None
        self.delegate_replacing: str | None = None
        self.delegate_created: str | None = None
        self.subgraphs_seen: set[int] = set()
        self.replacing_totals = [0, 0, 0]  # delegated, total, partitions
        self.replacing_found = False
        # profiler tables
        self.section = "none"  # "init" | "regular" | "none" (profiler section)
        self.table: str | None = None
        self.columns: list[str] | None = None
        self.rows_by_section: dict[str, list[OpProfileRow]] = {"regular": [], "none": []}
        self.none_tables_done = False

    def feed(self, lineno: int, raw: str) -> None:
        line, body = clean(raw)
        stripped = line.strip()
        if stripped and any(marker in stripped for marker in ERROR_MARKERS):
            self.out.errors.append(stripped[:500])
        if self._profile_line(line, body) or not body:
            return
        if self._stage_line(lineno, body):
            return
        self._delegation_line(body)

    # ---- profiler tables (tab-separated; keep the tabs, so use `line` here)
    def _profile_line(self, line: str, body: str) -> bool:
        if "Profiling Info for Benchmark Initialization" in body:
            self.section, self.table, self.columns = "init", None, None
            return True
        if "Operator-wise Profiling Info for Regular Benchmark Runs" in body:
            self.section, self.table, self.columns = "regular", None, None
            return True
        title = RE_TABLE_TITLE.match(body)
        if title:
            self.table, self.columns = title.group(1).strip(), None
            return True
        if "\t" in line:
            cols = header_columns(line)
            if cols is not None:
                if self.table is None:
                    self.table = "Run Order"  # older snippets show the table without its title
                self.columns = cols if self.table == "Run Order" else None
                return True
            if self.columns is not None and self.table == "Run Order" and self.section in self.rows_by_section:
                if self.section == "none" and self.none_tables_done:
                    return True
                fields = line.split("\t")
                if not LEVEL.sub("", fields[0].strip()):
                    fields = fields[1:]  # the leading tab (or a bare log-level prefix)
                row = parse_op_row(fields, self.columns)
                if row is not None:
                    self.rows_by_section[self.section].append(row)
                return True
        elif self.columns is not None and not body:
            if self.section == "none" and self.rows_by_section["none"]:
                self.none_tables_done = True
            self.columns = None
        return False

    # ---- benchmark stages, summary, memory and parameters
    def _stage_line(self, lineno: int, body: str) -> bool:  # noqa: C901 - one branch per line kind
        out = self.out
        if RE_RUNNING.match(body):
            self.running_headers += 1
            return True
        m = RE_COUNT.match(body)
        if m:
            stats = parse_count(m.group(2), m.group(3))
            if stats is not None:
                if m.group(1):
                    if self.section != "init":
                        self.timings_counts.append(stats)
                else:
                    self.bare_counts.append((stats, self.running_headers, lineno))
            return True
        m = RE_SUMMARY.match(body)
        if m:
            if not self.summary:
                for key, num in RE_SUMMARY_ITEM.findall(m.group(1)):
                    value = to_float(num)
                    if value is not None:
                        self.summary.setdefault(key.strip().lower(), value)
            return True
        m = RE_INIT_MS.match(body)
        if m:
            if self.init_ms is None:
                self.init_ms = to_float(m.group(1))
            return True
        m = RE_MODEL_SIZE.match(body)
        if m:
            out.model_size_mb = to_float(m.group(1))
            return True
        m = RE_MEM_DELTA.match(body)
        if m:
            out.init_memory_mb = to_float(m.group(1))
            out.overall_memory_mb = to_float(m.group(2))
            return True
        m = RE_PEAK.match(body)
        if m:
            out.peak_memory_mb = to_float(m.group(1))
            return True
        m = RE_VMRSS.match(body)
        if m:
            value = to_float(m.group(1))
            if value is not None and (m.group(2) or "MB").lower() == "kb":
                value /= 1024.0
            out.vm_rss_mb = value
            return True
        m = RE_PARAM.match(body)
        if m:
            key, value = m.group(1), m.group(2)
            if key == "Num threads":
                out.num_threads = to_int(value)
            elif key == "Graph":
                out.graph = value
            elif key == "Min num runs":
                out.min_num_runs = to_int(value)
            return True
        return False

    # ---- delegation
    def _delegation_line(self, body: str) -> None:
        out = self.out
        m = RE_REPLACING.search(body)
        if m:
            sub = to_int(m.group(5)) if m.group(5) else 0
            nums = [to_int(m.group(1)), to_int(m.group(2)), to_int(m.group(4))]
            if sub is not None and sub not in self.subgraphs_seen and None not in nums:
                self.subgraphs_seen.add(sub)
                self.replacing_found = True
                for i, n in enumerate(nums):
                    self.replacing_totals[i] += n  # type: ignore[operator]
                self.delegate_replacing = self.delegate_replacing or m.group(3)
            return
        m = RE_EXPLICIT.search(body)
        if m:
            self.delegate_explicit = self.delegate_explicit or m.group(1)
            if out.fully_delegated is None:
                out.fully_delegated = m.group(2) == "completely"
            return
        m = RE_NOT_APPLIED.search(body)
        if m:
            self.delegate_explicit = self.delegate_explicit or m.group(1)
            if out.fully_delegated is None:
                out.fully_delegated = False
            return
        if RE_CREATED_XNNPACK.search(body):
            self.delegate_created = "XNNPACK"

    def assemble(self) -> BenchmarkOutput:
        out = self.out
        out.op_profile = self.rows_by_section["regular"] or self.rows_by_section["none"]
        out.delegate = self.delegate_explicit or self.delegate_replacing or self.delegate_created
        if self.replacing_found:
            out.delegated_nodes, out.total_nodes, out.partitions = self.replacing_totals
            if out.fully_delegated is None and out.total_nodes:
                out.fully_delegated = out.delegated_nodes == out.total_nodes

        summary = self.summary
        out.init_us = summary.get("init")
        if out.init_us is None and self.init_ms is not None:
            out.init_us = round(self.init_ms * 1000.0, 3)
        out.first_us = summary.get("first inference")
        out.warmup_avg_us = summary.get("warmup (avg)", summary.get("warmup"))
        out.inference_avg_us = summary.get("inference (avg)", summary.get("inference"))
        self._assign_counts()

        if out.first_us is None and out.warmup is not None:
            out.first_us = out.warmup.first_us
        if out.warmup_avg_us is None and out.warmup is not None and out.warmup.count > 0:
            out.warmup_avg_us = out.warmup.avg_us
        if out.inference_avg_us is None and out.inference is not None and out.inference.count > 0:
            out.inference_avg_us = out.inference.avg_us
        return out

    def _assign_counts(self) -> None:
        out = self.out
        if len(self.bare_counts) >= 2:
            out.warmup, out.inference = self.bare_counts[0][0], self.bare_counts[1][0]
        elif len(self.bare_counts) == 1:
            stats, headers_before, _ = self.bare_counts[0]
            if out.inference_avg_us is not None and close_enough(stats.avg_us, out.inference_avg_us):
                out.inference = stats
            elif out.warmup_avg_us is not None and close_enough(stats.avg_us, out.warmup_avg_us):
                out.warmup = stats
            elif headers_before == 1:
                out.warmup = stats
            else:
                out.inference = stats
        elif self.timings_counts:
            out.inference = self.timings_counts[0]
