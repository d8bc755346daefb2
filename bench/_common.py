"""Shared helpers for the benchmarks of the harness itself (see BENCHMARKS.md).

Every benchmark prints its figures next to their targets and ends with one line
``BENCH-RESULT {json}`` that `run_all.py` collects into the summary table. Each figure
carries the 1-minute load average read before and after it, because a shared machine
moves the numbers.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HARNESS = str(BIN / "tflite-harness")
MODELS = ROOT / "models"
WORK = ROOT / "results" / "bench"  # kept between runs (ignored by git): converted artifacts, warm cache
SHARED_CACHE = WORK / "cache"
RESULT_PREFIX = "BENCH-RESULT "

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    target: str = ""  # e.g. "<= 1.02"; empty: informative
    met: bool | None = None
    load: str = ""  # load average when measured
    note: str = ""


@dataclass
class Report:
    bench: str
    figures: list[Figure] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, name: str, value: float | None, unit: str, target: str = "", met: bool | None = None,
            load: str | None = None, note: str = "") -> Figure:
        f = Figure(name, value, unit, target, met, load if load is not None else loadavg(), note)
        self.figures.append(f)
        verdict = "" if met is None else ("  MET" if met else "  MISSED")
        shown = "n/a" if value is None else f"{value:.4g}"
        print(f"  {name}: {shown} {unit}" + (f"  (target {target})" if target else "") + verdict
              + f"  [load {f.load}]" + (f"  {note}" if note else ""), flush=True)
        return f

    def finish(self) -> int:
        took = time.time() - self.started
        print(RESULT_PREFIX + json.dumps({"bench": self.bench, "seconds": took,
                                          "figures": [asdict(f) for f in self.figures]}), flush=True)
        return 0


def header(title: str) -> None:
    print(f"== {title}  (cores: {os.cpu_count()}, load {loadavg()}, {time.strftime('%Y-%m-%d %H:%M')})",
          flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def run(cmd: list[str], timeout: float = 1800, env: dict | None = None, check: bool = True,
        **kw) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, COLUMNS="200", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT, **kw)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


@dataclass
class Timed:
    """One timed child: `proc` is None when it was stopped at the timeout."""

    proc: subprocess.CompletedProcess | None
    wall_s: float
    cpu_s: float  # the child's user+sys time: what a quiet machine would take
    load: str  # load average before -> after


def timed_run(cmd: list[str], timeout: float) -> Timed:
    """`run(cmd, check=False)` with its wall time, the child's CPU time and the load around it."""
    load0 = loadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = run(cmd, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        proc = None
    took = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return Timed(proc, took, cpu, f"{load0} -> {loadavg()}")


def fp32_artifact(model: str) -> Path:
    """The fp32 .tflite of a bundled model, converted once (shared cache under results/bench/)."""
    out = WORK / "artifacts"
    path = out / f"{model}-fp32.tflite"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        run([HARNESS, "convert", str(MODELS / f"{model}.keras"), "--flag-sets", "fp32", "--out", str(out),
             "--cache-dir", str(SHARED_CACHE)], timeout=900)
    if not path.is_file():
        found = sorted(out.glob(f"{model}*fp32*.tflite"))
        if not found:
            raise SystemExit(f"convert did not write {path}")
        return found[0]
    return path


def keep_as_shared_cache(cache: Path) -> None:
    """Offer a freshly filled cache to later benchmarks (the warm re-run starts warm then)."""
    if not SHARED_CACHE.exists() and cache.is_dir():
        SHARED_CACHE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(cache, SHARED_CACHE)
