"""Report generation for 100,000 stored results.

Fills a fresh store with one run of N synthetic but realistic rows (N = 100,000 by
default: 1,000 models x 10 flag sets x 10 devices; every row with 50 raw latency samples,
latency statistics, drift, ops, tool versions and device info, written with
`Store.add_results` exactly as a run writes them, report columns included), then times
`tflite-harness report --format FMT --out FILE` in a subprocess for each format: the whole
command, from process start to file written. Target: under 5 s per report.

    .venv/bin/python bench/report_100k.py [--rows 100000] [--formats table,md,csv,json,html]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET_S = 5.0
FLAG_SETS = ["fp32", "dynamic_range", "float16", "int8", "int8_float_io", "int16x8", "fs6", "fs7", "fs8", "fs9"]
STATUSES = ["ok"] * 17 + ["unhealthy", "conversion_failed", "runtime_failed"]


def synthetic_results(n: int, seed: int = 0):
    from harness.core.result import Result

    rng = random.Random(seed)
    devices = [f"adb:device{i}" for i in range(9)] + ["local"]
    per_model = len(FLAG_SETS) * len(devices)
    versions = {"tflite-harness": "0.1.0", "tensorflow": "2.20.0", "ai-edge-litert": "2.1.0", "keras": "3.12.0",
                "numpy": "2.3.5"}
    info = {"model": "SimPhone", "abi": "arm64-v8a", "os": "Android 14", "soc": "simboard", "cores": 8,
            "governor": "schedutil", "temperature_c": 38.5}
    for i in range(n):
        m, rest = divmod(i, per_model)
        fs, d = divmod(rest, len(devices))
        status = rng.choice(STATUSES) if FLAG_SETS[fs] != "fp32" else "ok"
        base = 200.0 + 50 * (m % 40)
        samples = [round(base * (1 + abs(rng.gauss(0, 0.05))), 3) for _ in range(50)]
        srt = sorted(samples)
        lat = {"mean": sum(samples) / 50, "std": base * 0.05, "min": srt[0], "p50": srt[25], "p90": srt[45],
               "p99": srt[49], "max": srt[49], "n": 50, "p50_ci": [srt[20], srt[30]], "p90_ci": [srt[42], srt[48]]}
        ok = status in ("ok", "unhealthy")
        yield Result(
            model=f"model{m:04d}", flag_set=FLAG_SETS[fs], device=devices[d], threads=1, status=status,
            reason="" if status == "ok" else "synthetic failure: the converter said no (see log)",
            runtime="ai_edge_litert", runtime_version="2.1.0", artifact=f"{rng.getrandbits(256):064x}",
            artifact_path="/x/y.tflite", size_bytes=rng.randint(10_000, 5_000_000), convert_s=rng.random() * 5,
            converted=False, ops=["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "ADD", "MEAN"],
            init_us=rng.random() * 5000 if ok else None, first_us=base * 3 if ok else None,
            warmup_us=base if ok else None, latency_us=lat if ok else None, samples_us=samples if ok else [],
            peak_rss_mb=rng.random() * 30 if ok else None,
            drift={"max_abs": rng.random() * 0.1, "mean_abs": rng.random() * 0.01, "rmse": rng.random() * 0.02,
                   "cosine": 1 - rng.random() * 0.01, "snr_db": 30 + rng.random() * 20, "top1_agreement": 0.97,
                   "accuracy": 0.95, "reference_accuracy": 0.96, "samples": 32} if ok else None,
            representative="samples", eval_source="samples", tool_versions=versions,
            device_info={**info, "device": devices[d]}, validity="valid" if ok else None,
            plan_index=i, started_at=1.7e9 + i, finished_at=1.7e9 + i + 1.2,
        )


def add_in_batches(store, run_id: str, results) -> None:
    """Write rows as a run writes them (`Store.add_results`), 5,000 per transaction (fast)."""
    batch = []
    for r in results:
        batch.append(r)
        if len(batch) >= 5000:
            store.add_results(run_id, batch)
            batch.clear()
    if batch:
        store.add_results(run_id, batch)


def fill_store(path: Path, n: int) -> str:
    """One run with n synthetic rows."""
    from harness.store import Store

    s = Store(path)
    run_id = "bench-100k"
    s.start_run(run_id, campaign="bench", campaign_path=None, tool_versions={}, config={}, out_dir=str(path.parent))
    add_in_batches(s, run_id, synthetic_results(n))
    s.finish_run(run_id)
    s.close()
    return run_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--formats", default="md,csv,json,html,table")
    ap.add_argument("--timeout", type=float, default=90, help="seconds allowed per report")
    ap.add_argument("--store", type=Path, help="reuse this store (filled when missing)")
    args = ap.parse_args()
    c.header(f"report_100k: `tflite-harness report` over {args.rows:,} stored results")
    rep = c.Report("report_100k")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        store = args.store or Path(tmp) / "store.sqlite"
        if not store.is_file():
            t0 = time.perf_counter()
            fill_store(store, args.rows)
            print(f"  filled {store} with {args.rows:,} rows in {time.perf_counter() - t0:.1f} s "
                  f"({store.stat().st_size / 1e6:.0f} MB)", flush=True)
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"report.{fmt}"
            name = f"report --format {fmt}"
            t = c.timed_run([c.HARNESS, "report", "--store", str(store), "--format", fmt, "--out", str(out)],
                            args.timeout)
            if t.proc is None:
                rep.add(name, None, "s", f"< {TARGET_S}", False, load=t.load,
                        note=f"stopped after {args.timeout:.0f} s (--timeout)")
                continue
            if t.proc.returncode != 0:
                rep.add(name, None, "s", f"< {TARGET_S}", False,
                        note=f"exit {t.proc.returncode}: {t.proc.stderr.strip()[-300:]}")
                continue
            size = out.stat().st_size / 1e6 if out.is_file() else 0
            rep.add(name, t.wall_s, "s", f"< {TARGET_S}", t.wall_s < TARGET_S, load=t.load,
                    note=f"{size:.1f} MB written; CPU time {t.cpu_s:.2f} s (user+sys: what a quiet machine would take)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
