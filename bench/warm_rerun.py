"""Warm re-run of the default campaign: conversions performed, and time beyond measurement.

`tflite-harness run` twice with a shared conversion cache (results/bench/cache, filled by
the first run when empty) into a fresh store and out dir; figures come from the second
run: the conversions it performed (target 0: its "converted nothing" line and every row's
`converted` flag) and its wall time minus the measurement itself (the sum over rows of
finished_at - started_at in results.json): process start-up, cache look-ups, reference
loading, drift, store and exports.

    .venv/bin/python bench/warm_rerun.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def run_once(tmp: Path, label: str, cache: Path, extra: list[str]) -> tuple[float, str, list[dict]]:
    out = tmp / label
    t0 = time.perf_counter()
    proc = c.run([c.HARNESS, "run", "--out", str(out), "--store", str(tmp / "store.sqlite"),
                  "--cache-dir", str(cache), *extra], timeout=3600)
    wall = time.perf_counter() - t0
    return wall, proc.stdout, json.loads((out / "results.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=c.SHARED_CACHE)
    args = ap.parse_args()
    c.header("warm_rerun: second run of the default campaign")
    rep = c.Report("warm_rerun")
    root = c.WORK / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-warm-", dir=root) as tmp:
        w1, _, rows1 = run_once(Path(tmp), "run1", args.cache_dir, [])
        print(f"  first run: {w1:.1f} s, {sum(bool(r.get('converted')) for r in rows1)} conversions performed",
              flush=True)
        load0 = c.loadavg()
        wall, stdout, rows = run_once(Path(tmp), "run2", args.cache_dir, [])
        load = f"{load0} -> {c.loadavg()}"
    said_nothing = "converted nothing" in stdout
    line = next((x.strip() for x in stdout.splitlines() if x.strip().startswith("converted")), "(no line)")
    performed = sum(bool(r.get("converted")) for r in rows)
    spans = [r["finished_at"] - r["started_at"] for r in rows if r.get("started_at") and r.get("finished_at")]
    measured = sum(spans)
    timed = sum(len(r.get("samples_us") or []) for r in rows)
    timed_s = sum(sum(r.get("samples_us") or []) for r in rows) / 1e6
    rep.add("conversions performed on the warm re-run", performed, "", "0",
            performed == 0 and said_nothing, load=load, note=f"CLI said: {line!r}")
    rep.add("warm re-run wall time", wall, "s", load=load, note=f"{len(rows)} rows, {len(spans)} measured")
    rep.add("  of which measurement (sum of finished_at - started_at)", measured, "s", load=load,
            note=f"timed invoke() total {timed_s:.1f} s over {timed} runs")
    beyond = wall - measured
    rep.add("time beyond the measurement", beyond, "s", load=load,
            note=f"{beyond / max(1, len(rows)):.2f} s per row; {100 * beyond / wall:.0f}% of the wall time")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
