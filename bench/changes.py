"""`changes` (issue 23) on synthetic nightly stores written through the real store API.

Each store: 60 nightly runs x 30 rows, 2 % log-normal noise per row and run, two machine
steps of +/-10 % that move every row together. Flat stores have nothing else; planted
stores have one row that steps +8 % at a chosen run, half of them with a bytes change (new
artifact sha and size) at the same run. The analysis is the real one (`read_series` from the
SQLite store, then `analyse`). Targets (issue 23):

- 0 false "regression" change points on 50 flat stores, machine steps included;
- >= 45 of 50 planted +8 % steps found within +/-2 runs of where they were planted;
- every planted bytes change reported at its exact run;
- 1,000 series x 200 runs analysed in under 5 s.

Apache Otava's `compute_change_points` runs on the same series beside ours when
/tmp/otava-venv exists (`python3 -m venv /tmp/otava-venv && /tmp/otava-venv/bin/pip install
apache-otava`); it is never a dependency of the harness.

    .venv/bin/python bench/changes.py [--stores 50] [--otava /tmp/otava-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from harness.core.result import Result  # noqa: E402
from harness.report.changes import ChangesOptions, analyse, machine_moves  # noqa: E402
from harness.report.changes_data import ChangesInput, Point, RunRef, Series, read_series  # noqa: E402
from harness.store import Store  # noqa: E402

RUNS, ROWS, NOISE, MACHINE, STEP = 60, 30, 0.02, 0.10, 0.08
SETTINGS = {"warmup_runs": 3, "runs": 20, "min_seconds": 0.1, "max_seconds": 5.0, "repeat": 1, "pin_cpu": None}
TOOLS = {"tensorflow": "2.21.0", "ai-edge-litert": "2.3.0"}


def _row(j: int, p50: float, sha: str, size: int) -> Result:
    return Result(model=f"m{j:02d}", flag_set="fp32", device="local", threads=1, status="ok", runtime="ai_edge_litert",
                  runtime_version="2.3.0", artifact=sha, size_bytes=size, latency_us={"p50": p50}, settings=SETTINGS,
                  tool_versions=TOOLS, plan_index=j)


def write_store(path: Path, rng: np.random.Generator, planted: tuple[int, int, bool] | None) -> None:
    """60 runs x 30 rows into a fresh store; `planted` = (row, run, with_bytes_change)."""
    base = rng.uniform(200, 20_000, ROWS)
    machine = np.zeros(RUNS)
    for at in rng.choice(np.arange(5, RUNS - 5), 2, replace=False):
        machine[at:] += math.log1p(MACHINE * rng.choice([-1, 1]))
    s = Store(path)
    try:
        for i in range(RUNS):
            run_id = f"night-{i:03d}"
            s.start_run(run_id, campaign="nightly", campaign_path=None, tool_versions=TOOLS, config={}, out_dir="")
            rows = []
            for j in range(ROWS):
                step = planted is not None and planted[0] == j and i >= planted[1]
                p50 = base[j] * math.exp(machine[i] + NOISE * rng.standard_normal()) * (1 + STEP if step else 1)
                changed = step and planted[2]
                rows.append(_row(j, p50, f"{j:02d}{'b' if changed else 'a'}" + "0" * 61, 40_000 + (8 if changed else 0)))
            s.add_results(run_id, rows)
            s.finish_run(run_id)
    finally:
        s.close()


def analysed(path: Path):
    s = Store(path)
    try:
        data = read_series(s)
    finally:
        s.close()
    return data, analyse(data, ChangesOptions())


def otava(python: str, series: list[list[float]]) -> list[list[int]] | None:
    """Otava's compute_change_points on each series, in its own environment."""
    code = ("import json,sys\nfrom otava.analysis import compute_change_points\n"
            "out=[[int(cp.index) for cp in compute_change_points(s)[0]] for s in json.load(sys.stdin)]\n"
            "print(json.dumps(out))")
    try:
        proc = subprocess.run([python, "-c", code], input=json.dumps(series), capture_output=True, text=True,
                              timeout=1800)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _corrected(data, key=None) -> list[list[float]]:
    """p50 divided by our machine level (what `changes` feeds its change-point search)."""
    machine = machine_moves(data, STEP)[0]["local"]
    return [[p.p50_us / math.exp(machine[p.run]) for p in s.points] for s in data.series if key in (None, s.key)]


def synthetic_input(n_series: int, n_runs: int, rng: np.random.Generator) -> ChangesInput:
    """In-memory series for the speed figure: 10 % of them step +8 % somewhere."""
    runs = [RunRef(f"r{i}", float(i), None) for i in range(n_runs)]
    tools = json.dumps(TOOLS)
    out = []
    for k in range(n_series):
        at = rng.integers(10, n_runs - 10) if k % 10 == 0 else n_runs
        p50 = 1000 * np.exp(NOISE * rng.standard_normal(n_runs)) * np.where(np.arange(n_runs) >= at, 1 + STEP, 1)
        out.append(Series((f"m{k}", "fp32", "local", 1, True), [
            Point(i, "ok", "", "a" * 64, 1000, ("CONV_2D",), "ai_edge_litert", "2.3.0", "{}", tools, "{}", float(v),
                  None, None) for i, v in enumerate(p50)]))
    return ChangesInput(runs, out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stores", type=int, default=50)
    ap.add_argument("--otava", default="/tmp/otava-venv/bin/python")
    args = ap.parse_args()
    c.header(f"changes: {args.stores} flat + {args.stores} planted stores of {RUNS} runs x {ROWS} rows")
    report = c.Report("changes")
    rng = np.random.default_rng(23)
    false_regressions = false_points = found = bytes_exact = bytes_planted = 0
    ours_flat, otava_series, planted_at = [], [], []
    corrected_series = []  # the same series after our machine correction, for Otava too
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for k in range(args.stores):
            path = Path(tmp) / f"flat{k}.sqlite"
            write_store(path, rng, None)
            data, rep = analysed(path)
            false_regressions += sum(cp.regression for cp in rep.latency)
            false_points += len(rep.latency)
            ours_flat.append(len(rep.latency))
            if k < 5:  # series of a few flat stores for Otava: raw, and machine-corrected
                otava_series += [[p.p50_us for p in s.points] for s in data.series]
                corrected_series += _corrected(data)
        for k in range(args.stores):
            path = Path(tmp) / f"planted{k}.sqlite"
            row, at, with_bytes = int(rng.integers(ROWS)), int(rng.integers(8, RUNS - 8)), k % 2 == 0
            write_store(path, rng, (row, at, with_bytes))
            data, rep = analysed(path)
            key = (f"m{row:02d}", "fp32", "local", 1, True)
            if any(cp.key == key and abs(cp.run - at) <= 2 for cp in rep.latency):
                found += 1
            if with_bytes:
                bytes_planted += 1
                bytes_exact += any(e.key == key and e.figure == "artifact" and e.run == at for e in rep.exact)
            series = next(s for s in data.series if s.key == key)
            otava_series.append([p.p50_us for p in series.points])
            corrected_series.append(_corrected(data, key)[0])
            planted_at.append(at)
        stores_s = time.perf_counter() - t0
    report.add("false regression change points, flat stores", false_regressions, "", "== 0", false_regressions == 0,
               note=f"{false_points} change points in all ({sum(ours_flat)} over {args.stores * ROWS} flat series,"
                    " none a regression)")
    report.add("planted +8% steps found within +/-2 runs", found, f"of {args.stores}",
               f">= {math.ceil(0.9 * args.stores)}", found >= math.ceil(0.9 * args.stores))
    report.add("planted bytes changes reported at their exact run", bytes_exact, f"of {bytes_planted}",
               f"== {bytes_planted}", bytes_exact == bytes_planted)
    report.add("stores written and analysed", stores_s, "s", note="real SQLite store, read_series + analyse")

    big = synthetic_input(1000, 200, rng)
    t0 = time.perf_counter()
    rep = analyse(big, ChangesOptions())
    took = time.perf_counter() - t0
    report.add("1,000 series x 200 runs analysed", took, "s", "< 5", took < 5,
               note=f"{len(rep.latency)} change points; cold (null distributions drawn in this call)")

    if Path(args.otava).exists():
        n_flat = len(otava_series) - len(planted_at)
        for what, series in (("raw", otava_series), ("machine-corrected", corrected_series)):
            t0 = time.perf_counter()
            cps = otava(args.otava, series)
            took = time.perf_counter() - t0
            if cps is None:
                report.add(f"Otava compute_change_points ({what})", None, "", note="failed to run in its venv")
                continue
            flat_cps = sum(len(x) for x in cps[:n_flat])
            hits = sum(any(abs(i - at) <= 2 for i in x) for x, at in zip(cps[n_flat:], planted_at, strict=True))
            report.add(f"Otava ({what} series): planted steps found within +/-2 runs", hits,
                       f"of {len(planted_at)}")
            report.add(f"Otava ({what} series): change points on flat series", flat_cps, f"over {n_flat} series",
                       note=f"{took:.1f} s for {len(series)} series, its defaults (max_pvalue 0.001, window 50)")
        ours = sum(ours_flat[:5])
        report.add("ours: change points on the same flat series", ours, f"over {n_flat} series",
                   note="machine-corrected, alpha 0.05; none of them a regression")
    else:
        report.add("Otava compute_change_points", None, "", note=f"{args.otava} not found: not compared")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
