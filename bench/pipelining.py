"""Campaign pipelining: wall time of a cold campaign on one ADB device vs the ideal bound.

`tflite-harness run --devices adb:127.0.0.1:PORT` (python runner) against the simulated
ADB device (`tests/support/adb_device.py`, in-process of its own helper) with an empty
conversion cache. Remote devices start measuring as soon as their first artifact exists,
so conversion and device work overlap. The ideal bound is

    max(sum of per-artifact convert_s / cores, sum of per-row (finished_at - started_at))

and the target is wall <= 1.15 x bound. The bound leaves out what cannot overlap by design
(CLI start, TensorFlow import in the workers, reference outputs before the first
conversion), so the ratio is an upper estimate of the pipelining loss.

Note: the "device" is simulated on this machine; its runner uses the same cores as the
converter workers, so device time here is inflated by the overlap itself.

    .venv/bin/python bench/pipelining.py [--models digits_cnn,digits_mobilenet,digits_transformer]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET = 1.15
FLAG_SETS = "fp32,dynamic_range,float16,int8,int8_float_io,int16x8"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits_cnn,digits_mobilenet,digits_transformer")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    args = ap.parse_args()
    c.header("pipelining: cold campaign on the simulated ADB device vs the ideal bound")
    rep = c.Report("pipelining")
    from harness.devices.transport import load_signers
    from tests.support.adb_device import SimulatedAdbDevice

    root = c.WORK / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-pipe-", dir=root) as tmp_s:
        tmp = Path(tmp_s)
        android = tmp / "android"
        _signers, key = load_signers(android / "adbkey")
        env = {"ANDROID_USER_HOME": str(android), "HOME": str(tmp)}
        models = []
        for m in args.models.split(","):
            models += ["--model", str(c.MODELS / f"{m}.keras")]
        with SimulatedAdbDevice(root=tmp / "device", authorized_keys=[str(key) + ".pub"]) as dev:
            load0 = c.loadavg()
            t0 = time.perf_counter()
            c.run([c.HARNESS, "run", *models, "--flag-sets", FLAG_SETS, "--devices", f"adb:{dev.serial}",
                   "--runs", str(args.runs), "--min-seconds", str(args.min_seconds),
                   "--out", str(tmp / "run"), "--store", str(tmp / "s.sqlite"), "--cache-dir", str(tmp / "cache")],
                  env=env, timeout=3600)
            wall = time.perf_counter() - t0
            load = f"{load0} -> {c.loadavg()}"
        rows = json.loads((tmp / "run" / "results.json").read_text())
    cores = os.cpu_count() or 1
    by_artifact = {}
    for r in rows:
        if r.get("converted") and r.get("convert_s"):
            by_artifact[(r["model"], r["flag_set"])] = r["convert_s"]
    conv = sum(by_artifact.values())
    spans = [r["finished_at"] - r["started_at"] for r in rows if r.get("started_at") and r.get("finished_at")]
    device = sum(spans)
    bound = max(conv / cores, device)
    ok_rows = sum(r["status"] == "ok" for r in rows)
    rep.add("campaign wall time", wall, "s", load=load, note=f"{len(rows)} rows ({ok_rows} ok)")
    rep.add("conversion time (sum of convert_s)", conv, "s", load=load,
            note=f"{len(by_artifact)} conversions; / {cores} cores = {conv / cores:.1f} s")
    rep.add("device time (sum of finished_at - started_at)", device, "s", load=load, note=f"{len(spans)} rows")
    ratio = wall / bound
    rep.add("wall / ideal bound", ratio, "x", f"<= {TARGET}", ratio <= TARGET, load=load,
            note="device simulated on the same cores")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
