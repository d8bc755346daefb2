"""Cold conversion of the default matrix with --workers 2 vs --workers 1.

In-process through `harness.pipeline.build.Builder.build` (what `tflite-harness run` uses): prepare
every bundled model (reference outputs) and convert every model x flag set of the default
campaign in one pipeline (`harness/pipeline/schedule.py`: preparations first, conversions
that need no representative data at once, largest model first), each time into a new,
empty cache. The time includes starting the TensorFlow worker processes, as a real cold
run pays it. "preparing references" is now the time until the last preparation finished,
which overlaps conversions. Target on 2 cores: the 2-worker time is
0.6x the 1-worker time or better.

    .venv/bin/python bench/parallel_convert.py [--workers-a 1 --workers-b 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET = 0.6


def cold_convert(workers: int, cache_dir: Path) -> dict:
    from harness.config import BUNDLED_CAMPAIGN, load_campaign
    from harness.convert.cache import Cache
    from harness.pipeline.build import Builder
    from harness.pipeline.campaign import tool_versions

    campaign = load_campaign(BUNDLED_CAMPAIGN)
    load0 = c.loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-conv-out-") as out:
        t0 = time.perf_counter()
        b = Builder(campaign, Cache(cache_dir), tool_versions(), Path(out), workers)
        try:
            b.start_workers()
            arts = b.build({}, lambda a: None)
        finally:
            b.close()
        wall = time.perf_counter() - t0
        start = time.time() - wall
        t_prep = max((e["t"] - start for e in b.timeline if e["event"] == "finished" and e["op"] == "prepare"),
                     default=0.0)
    conv_sum = sum(a.meta.convert_s or 0.0 for a in arts if a.ok)
    return {"wall": wall, "prepare": t_prep, "n": len(arts), "performed": b.conversions_performed,
            "failed": sum(not a.ok for a in arts), "convert_sum": conv_sum, "load": f"{load0} -> {c.loadavg()}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers-a", type=int, default=1)
    ap.add_argument("--workers-b", type=int, default=min(2, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 2)
    args = ap.parse_args()
    c.header("parallel_convert: cold conversion of the default matrix")
    rep = c.Report("parallel_convert")
    res = {}
    root = c.WORK / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-conv-", dir=root) as tmp:
        # the larger worker count first: a page cache warmed by the first run helps the second,
        # so this order favours the 1-worker baseline (the conservative side for the ratio)
        for w in (args.workers_b, args.workers_a):
            cache = Path(tmp) / f"cache-{w}"
            r = cold_convert(w, cache)
            res[w] = r
            print(f"  workers={w}: {r['wall']:.1f} s wall ({r['prepare']:.1f} s preparing references), "
                  f"{r['performed']} conversions performed ({r['failed']} failed), "
                  f"sum of convert_s {r['convert_sum']:.1f} s  [load {r['load']}]", flush=True)
            if w == args.workers_b:
                c.keep_as_shared_cache(cache)
    a, b = res[args.workers_a], res[args.workers_b]
    rep.add(f"cold conversion, {args.workers_a} worker(s)", a["wall"], "s", load=a["load"],
            note=f"{a['performed']} conversions")
    rep.add(f"cold conversion, {args.workers_b} worker(s)", b["wall"], "s", load=b["load"],
            note=f"{b['performed']} conversions")
    ratio = b["wall"] / a["wall"]
    rep.add(f"time ratio {args.workers_b} / {args.workers_a} workers", ratio, "x", f"<= {TARGET}",
            ratio <= TARGET, load=f"{a['load']} | {b['load']}", note=f"on {os.cpu_count()} cores")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
