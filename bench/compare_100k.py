"""`tflite-harness compare` of two stored runs of 100,000 rows each.

Fills a fresh store with two runs of N rows (N = 100,000 by default) from report_100k's
synthetic filler: BASE as report_100k writes it, NEW the same rows with every row's
latency moved by a small per-row factor (run-to-run noise), a few rows deliberately slowed
by 50 % and a few with 0.05 more max_abs drift. Then times
`tflite-harness compare BASE NEW --max-drift-increase 0.01 --format FMT --out FILE` in a
subprocess for each format, from process start to file written, and checks that the
slowed and drifted rows (and only they, plus the rows whose status differs) are flagged.
Target: under 5 s per compare, like report.

    .venv/bin/python bench/compare_100k.py [--rows 100000] [--formats table,md,json] [--store PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from report_100k import add_in_batches, synthetic_results  # noqa: E402

TARGET_S = 5.0
BASE_RUN, NEW_RUN = "bench-cmp-base", "bench-cmp-new"
SLOWED_EVERY = 10_007  # every this-many-th ok row of NEW is 50 % slower (10 rows in 100k)
DRIFTED_EVERY = 9_001  # every this-many-th ok row of NEW has +0.05 max_abs (11 rows in 100k)


def _perturb(r, factor: float) -> None:
    r.samples_us = [round(v * factor, 3) for v in r.samples_us]
    r.latency_us = {k: (v if k == "n" else [x * factor for x in v] if isinstance(v, list) else v * factor)
                    for k, v in r.latency_us.items()}


def fill_two_runs(path: Path, n: int) -> tuple[set[str], set[str]]:
    """BASE and NEW runs of n rows each; returns the models/flag sets slowed and drifted in NEW."""
    from harness.store import Store

    s = Store(path)
    slowed, drifted = set(), set()
    rng = random.Random(1)
    for run_id, modify in ((BASE_RUN, False), (NEW_RUN, True)):
        s.start_run(run_id, campaign="bench", campaign_path=None, tool_versions={}, config={},
                    out_dir=str(path.parent))
        def rows(modify: bool = modify):
            for i, r in enumerate(synthetic_results(n)):
                if modify and r.status == "ok":
                    factor = 1.0 + rng.gauss(0, 0.01)  # between-process noise
                    if i % SLOWED_EVERY == SLOWED_EVERY - 1:
                        factor *= 1.5
                        # a slowdown the conversion could explain: other bytes (a same-artifact
                        # row's change is the machine's and is never flagged)
                        r.artifact = f"{int(r.artifact, 16) ^ 1:064x}"
                        slowed.add(f"{r.model}/{r.flag_set} on {r.device}")
                    _perturb(r, factor)
                    if i % DRIFTED_EVERY == DRIFTED_EVERY - 1:
                        r.drift = {**r.drift, "max_abs": r.drift["max_abs"] + 0.05}
                        drifted.add(f"{r.model}/{r.flag_set} on {r.device}")
                yield r

        add_in_batches(s, run_id, rows())
        s.finish_run(run_id)
    s.close()
    return slowed, drifted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows per run")
    ap.add_argument("--formats", default="md,json,table")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per compare")
    ap.add_argument("--store", type=Path, help="reuse this store (filled when missing)")
    args = ap.parse_args()
    c.header(f"compare_100k: `tflite-harness compare` of two stored runs of {args.rows:,} rows")
    rep = c.Report("compare_100k")
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        store = args.store or Path(tmp) / "store.sqlite"
        expected = None
        if not store.is_file():
            t0 = time.perf_counter()
            expected = fill_two_runs(store, args.rows)
            print(f"  filled {store} with 2 x {args.rows:,} rows in {time.perf_counter() - t0:.1f} s "
                  f"({store.stat().st_size / 1e6:.0f} MB); NEW has {len(expected[0])} rows slowed, "
                  f"{len(expected[1])} drifted", flush=True)
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"compare.{fmt}"
            name = f"compare --format {fmt}"
            t = c.timed_run([c.HARNESS, "compare", BASE_RUN, NEW_RUN, "--store", str(store), "--format", fmt,
                             "--max-drift-increase", "0.01", "--out", str(out)], args.timeout)
            if t.proc is None:
                rep.add(name, None, "s", f"< {TARGET_S}", False, load=t.load,
                        note=f"stopped after {args.timeout:.0f} s (--timeout)")
                continue
            proc, took = t.proc, t.wall_s
            if proc.returncode not in (0, 1):
                rep.add(name, None, "s", f"< {TARGET_S}", False,
                        note=f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
                continue
            note = f"exit {proc.returncode}; CPU time {t.cpu_s:.2f} s (user+sys: what a quiet machine would take)"
            if fmt == "json" and expected is not None and out.is_file():
                rows = json.loads(out.read_text())["rows"]
                # Exact figures regress at once; a latency change of rows with no artifact to re-measure
                # (these are synthetic) is `unconfirmed` since the gate confirms (issue 13): both count.
                why = {f"{r['model']}/{r['flag_set']} on {r['device']}": " ".join(r["regressions"] + r["unconfirmed"])
                       for r in rows if r["verdict"] in ("REGRESSED", "unconfirmed")}
                lat = {k for k, v in why.items() if "latency" in v}
                drift = {k for k, v in why.items() if "max_abs" in v}
                ok = lat == expected[0] and drift == expected[1]
                note += (f"; flagged {len(lat)} slowed + {len(drift)} drifted rows as planted"
                         if ok else f"; FLAGGED WRONG ROWS: latency {sorted(lat ^ expected[0])[:5]}, "
                                    f"drift {sorted(drift ^ expected[1])[:5]}")
            rep.add(name, took, "s", f"< {TARGET_S}", took < TARGET_S, load=t.load, note=note)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
