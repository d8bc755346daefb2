"""Start-up time of the CLI: `tflite-harness --help` and `tflite-harness devices`.

Wall time of the installed entry point in a subprocess, median of N runs after one
untimed run (warm disk cache). Targets: --help < 0.3 s, devices < 1 s. Also checks, in
a child interpreter that runs the same commands, that neither imports TensorFlow (or
JAX) and prints what each does import that is heavy.

    .venv/bin/python bench/startup.py [-n 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGETS = {"--help": 0.3, "devices": 1.0}
HEAVY = ("tensorflow", "keras", "jax", "numpy", "scipy", "matplotlib", "ai_edge_litert", "adb_shell")

# Runs a CLI command in-process and reports which heavy top-level modules it imported.
PROBE = """
import json, sys
from harness.cli.main import main as main_entry
argv = sys.argv[1:]
code = 0
try:
    sys.argv = ["tflite-harness", *argv]
    main_entry()
except SystemExit as exc:
    code = exc.code
heavy = {HEAVY!r}
print("PROBE " + json.dumps({{"imported": sorted(m for m in heavy if m in sys.modules), "code": code}}))
"""


def time_cmd(args: list[str], n: int) -> tuple[float, list[float]]:
    cmd = [c.HARNESS, *args]
    subprocess.run(cmd, capture_output=True, cwd=c.ROOT, timeout=60)  # warm the disk cache
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, cwd=c.ROOT, timeout=60)
        times.append(time.perf_counter() - t0)
    return c.median(times), times


def entry_point() -> str:
    """The `module:function` the installed console script calls."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts"):
        if ep.name == "tflite-harness":
            return ep.value
    return "harness.cli.main:main"


def imported(args: list[str]) -> list[str]:
    mod, _, fn = entry_point().partition(":")
    code = PROBE.format(HEAVY=HEAVY).replace("from harness.cli.main import main as main_entry", f"from {mod} import {fn} as main_entry")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=c.ROOT, timeout=60)
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])["imported"]
    raise SystemExit(f"probe failed: {proc.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="timed runs per command")
    args = ap.parse_args()
    c.header("startup: CLI wall time")
    rep = c.Report("startup")
    for cmd, target in TARGETS.items():
        load0 = c.loadavg()
        med, times = time_cmd(cmd.split(), args.n)
        mods = imported(cmd.split())
        tf_free = not any(m in mods for m in ("tensorflow", "keras", "jax"))
        rep.add(f"tflite-harness {cmd} (median of {args.n})", med, "s", f"< {target}", med < target,
                load=f"{load0} -> {c.loadavg()}", note=f"min {min(times):.3f} max {max(times):.3f}")
        rep.add(f"tflite-harness {cmd}: TensorFlow/Keras/JAX not imported", 1.0 if tf_free else 0.0, "bool",
                "1", tf_free, note="heavy modules imported: " + (", ".join(mods) or "none"))
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
