"""Time the test suite as `make test` runs it, and say where the time goes.

    .venv/bin/python bench/test_suite.py                 # runs the suite (about 7 min on 2 cores)
    .venv/bin/python bench/test_suite.py --log run.log   # reads a saved `pytest -v --durations=0` log

Prints the wall time, the sum of every test's durations (setup + call + teardown: what one
process would need), each xdist worker's share (the longest one is the critical path: the
wall time cannot be shorter than it) and the slowest tests. Not part of `make bench`'s
default list: it takes as long as the suite. The figures of record are in BENCHMARKS.md,
section "Test suite time".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DURATION = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(\S+)")
ON_WORKER = re.compile(r"^\[(gw\d+)\] \[\s*\d+%\] (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (\S+)")
CPU = re.compile(r"^\s*([0-9.]+)s cpu\s+(\S+)")
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed)[^=\n]*?) in ([0-9.]+)s")


def analyse(text: str) -> dict:
    per_test: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if m := DURATION.match(line):
            per_test[m.group(3)] += float(m.group(1))
    worker_of = {m.group(3): m.group(1) for line in text.splitlines() if (m := ON_WORKER.match(line))}
    per_worker: dict[str, float] = defaultdict(float)
    for nodeid, seconds in per_test.items():
        per_worker[worker_of.get(nodeid, "main")] += seconds
    cpu: dict[str, float] = {m.group(2): float(m.group(1)) for line in text.splitlines() if (m := CPU.match(line))}
    cpu_per_worker: dict[str, float] = defaultdict(float)
    for nodeid, seconds in cpu.items():
        cpu_per_worker[worker_of.get(nodeid, "main")] += seconds
    summary = next((m for line in reversed(text.splitlines()) if (m := SUMMARY.match(line))), None)  # the last
    slowest = sorted(per_test.items(), key=lambda kv: -kv[1])[:15]
    return {"outcome": summary.group(1) if summary else "?", "pytest_s": float(summary.group(2)) if summary else None,
            "sum_s": sum(per_test.values()), "per_worker_s": dict(sorted(per_worker.items())),
            "cpu_s": sum(cpu.values()), "cpu_per_worker_s": dict(sorted(cpu_per_worker.items())),
            "cpu_top": sorted(cpu.items(), key=lambda kv: -kv[1])[:15],
            "slowest": slowest}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, help="a saved `pytest -n 2 --dist loadscope -v --durations=0 "
                                             "[--cpu-times=0]` log")
    ap.add_argument("--workers", default="2")
    args = ap.parse_args()
    load_before = c.loadavg()
    wall = None
    if args.log:
        text = args.log.read_text()
    else:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}  # as the Makefile runs it
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-n", args.workers, "--dist", "loadscope", "-v",
                               "--durations=0", "--cpu-times=0"], cwd=c.ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - t0
        text = proc.stdout + proc.stderr
    a = analyse(text)
    print(f"outcome: {a['outcome']}" + ("" if args.log else f"; load {load_before} -> {c.loadavg()}"))
    if wall is not None:
        print(f"wall time:          {wall:7.1f} s")
    print(f"pytest's own time:  {a['pytest_s'] or float('nan'):7.1f} s")
    print(f"sum of durations:   {a['sum_s']:7.1f} s (one process, no parallelism)")
    for worker, seconds in a["per_worker_s"].items():
        print(f"  worker {worker:<5}     {seconds:7.1f} s")
    if a["cpu_s"]:
        print(f"CPU of the tests:   {a['cpu_s']:7.1f} s (--cpu-times; half of it is the least wall time on 2 cores)")
        for worker, seconds in a["cpu_per_worker_s"].items():
            print(f"  worker {worker:<5}     {seconds:7.1f} s CPU")
        print("most CPU:")
        for nodeid, seconds in a["cpu_top"]:
            print(f"  {seconds:6.1f} s  {nodeid}")
    print("slowest tests (setup + call + teardown):")
    for nodeid, seconds in a["slowest"]:
        print(f"  {seconds:6.1f} s  {nodeid}")
    took = wall or a["pytest_s"]
    print(c.RESULT_PREFIX + json.dumps({"bench": "test_suite", "seconds": took, "figures": [
        {"name": "make test wall time", "value": None if took is None else round(took, 1), "unit": "s",
         "target": "<= 420", "met": None if took is None else took <= 420, "load": c.loadavg(),
         "note": f"sum of durations {a['sum_s']:.0f} s"}]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
