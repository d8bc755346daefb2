"""Run every benchmark of the harness in sequence and print a summary table.

    .venv/bin/python bench/run_all.py [--only startup,overhead] [--json results/bench/summary.json]

Each benchmark runs standalone in its own process (`bench/NAME.py`); this collects the
`BENCH-RESULT` line each prints. Order: the light ones first; `parallel_convert` before
`warm_rerun`, which then starts from the cache it leaves (results/bench/cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

ORDER = ["startup", "overhead", "report_100k", "compare_100k", "adb_push", "parallel_convert", "warm_rerun", "pipelining",
         "gate", "calibrate_once", "changes", "quantizer", "compiled_model", "diagnose_scaling"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated benchmark names")
    ap.add_argument("--json", type=Path, default=c.WORK / "summary.json")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else ORDER
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if os.path.exists("/usr/bin/lscpu") else ""
    model = next((x.split(":", 1)[1].strip() for x in out.splitlines() if x.startswith("Model name")), "?")
    print(f"machine: {model}, {os.cpu_count()} cores; date {time.strftime('%Y-%m-%d %H:%M')}; load {c.loadavg()}")
    reports = []
    for name in names:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / f"{name}.py")], stdout=subprocess.PIPE,
                                text=True, cwd=c.ROOT)
        result = None
        for line in proc.stdout:
            if line.startswith(c.RESULT_PREFIX):
                result = json.loads(line[len(c.RESULT_PREFIX):])
            else:
                print(line, end="", flush=True)
        code = proc.wait()
        if result is None:
            result = {"bench": name, "seconds": time.time() - t0,
                      "figures": [{"name": f"(failed: exit {code})", "value": None, "unit": "", "target": "",
                                   "met": False, "load": c.loadavg(), "note": ""}]}
        reports.append(result)
    print("\n== summary")
    head = f"{'benchmark':<17} {'figure':<58} {'value':>10} {'unit':<5} {'target':<12} {'met':<7} load"
    print(head)
    print("-" * len(head))
    missed = 0
    for r in reports:
        for f in r["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else "NO")
            missed += f["met"] is False
            value = "n/a" if f["value"] is None else f"{f['value']:.4g}"
            print(f"{r['bench']:<17} {f['name'][:58]:<58} {value:>10} {f['unit']:<5} {f['target']:<12} {met:<7} "
                  f"{f['load']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": model, "cores": os.cpu_count(),
                                     "reports": reports}, indent=1))
    print(f"\n{missed} target(s) missed; figures in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
