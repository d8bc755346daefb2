"""Untrusted files (issue 22): what refusing a huge file and verifying a model cost.

1. `tflite-harness inspect` on a sparse 4 GiB file (tiny.tflite followed by zeros, made with
   truncate in a temp folder: nothing is written): wall time and the child's peak RSS
   (os.wait4), median of N. Targets: < 2 s, < 200 MB. It must exit 2 with one line.
2. `inspect` on tiny.tflite (verify + read + the analyzer in its own child): wall time.
3. The pure-Python verifier alone (`verify_buffer`) on each committed model: median time.

    .venv/bin/python bench/untrusted.py [-n 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DATA = c.ROOT / "tests" / "data"


def run_measured(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MB, exit code, stderr) of one child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=c.ROOT)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, proc.returncode, err


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    n = ap.parse_args().n
    c.header("untrusted files: refusing a sparse 4 GiB .tflite, verifying models")
    report = c.Report("untrusted")
    with tempfile.TemporaryDirectory(prefix="bench-untrusted-") as tmp:
        big = Path(tmp) / "sparse.tflite"
        big.write_bytes((DATA / "tiny.tflite").read_bytes())
        with open(big, "r+b") as f:
            f.truncate(4 << 30)
        runs = [run_measured([c.HARNESS, "inspect", str(big)]) for _ in range(n)]
        codes = {r[2] for r in runs}
        lines = {len([ln for ln in r[3].splitlines() if ln.strip()]) for r in runs}
        wall, rss = c.median([r[0] for r in runs]), max(r[1] for r in runs)
        report.add("inspect sparse 4 GiB: wall (median)", wall, "s", "< 2", wall < 2,
                   note=f"exit {sorted(codes)}, {sorted(lines)} stderr line(s)")
        report.add("inspect sparse 4 GiB: peak RSS (max)", rss, "MB", "< 200", rss < 200)
    tiny = [run_measured([c.HARNESS, "inspect", str(DATA / "tiny.tflite")]) for _ in range(n)]
    report.add("inspect tiny.tflite: wall (median)", c.median([r[0] for r in tiny]), "s",
               note="verify + read + LiteRT analyzer in a child")
    from harness.tflite.schema_layout import tflite_layout
    from harness.tflite.verify import verify_buffer

    t0 = time.perf_counter()
    tflite_layout()
    report.add("schema layouts read from LiteRT's generated code (once per process)",
               (time.perf_counter() - t0) * 1000, "ms")
    for p in sorted((DATA / "fuzz").glob("[dl]*.tflite")) + [DATA / "tiny.tflite"]:
        data = p.read_bytes()
        times = []
        for _ in range(max(n, 5)):
            t0 = time.perf_counter()
            verify_buffer(data)
            times.append(time.perf_counter() - t0)
        report.add(f"verify {p.name} ({len(data):,} bytes)", c.median(times) * 1000, "ms")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
