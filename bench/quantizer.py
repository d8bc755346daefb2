"""Quantizer flag sets against one TF int8 conversion of the same model (issue 20).

Target: the five quantizer rows of one model (static_wi8_ai8, dynamic_wi8_afp32,
weight_only_wi4_afp32, blockwise int4 `dynamic_wi4b32_afp32`, static_wi8_ai16), with their
one shared calibration, take at most 1.0x the time of one TF int8 conversion of that model.

Both sides run as the harness runs them: the TF int8 conversion is a `convert` job in a
converter worker (TensorFlow imported first, not timed; the model's load and export are, as
in a campaign), the quantizer rows are `tool` jobs in a light worker (no TensorFlow; its
~1.5 s import of ai_edge_quantizer is timed separately) on the fp32 artifact, which the
campaign converts anyway (its conversion is printed too, not counted).

    .venv/bin/python bench/quantizer.py [--model digits_mobilenet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

RECIPES = ["static_wi8_ai8", "dynamic_wi8_afp32", "weight_only_wi4_afp32", "dynamic_wi4b32_afp32",
           "static_wi8_ai16"]


def main() -> int:
    from harness.convert.pool import WorkerPool
    from harness.core.flag_sets import BUILTIN_FLAG_SETS

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="digits_mobilenet")
    args = ap.parse_args()
    c.header(f"quantizer flag sets vs one TF int8 conversion: {args.model}")
    report = c.Report("quantizer")
    tmp = Path(tempfile.mkdtemp(prefix="bench-quantizer-"))
    calib = np.load(c.MODELS / f"{args.model}.calib.npz")
    rep = tmp / "rep.npz"
    np.savez(rep, **{"0": calib[calib.files[0]][:100].astype(np.float32)})
    model = {"name": args.model, "kind": "keras", "path": str(c.MODELS / f"{args.model}.keras"), "entry": None,
             "signature": "serving_default", "samples": None, "representative": None, "input_shapes": {}}

    tf_pool = WorkerPool(1, tmp / "logs")
    tf_pool.submit({"op": "versions"}).result()  # TensorFlow imported: not timed
    times = {}
    for name in ("fp32", "int8"):
        job = {"op": "convert", "model": model, "options": BUILTIN_FLAG_SETS[name].converter_options(),
               "rep_path": str(rep) if name == "int8" else None, "shapes": None, "calibration": None,
               "out_path": str(tmp / f"{name}.tflite")}
        t0 = time.perf_counter()
        answer = tf_pool.submit(job).result()
        times[name] = time.perf_counter() - t0
        if not answer.ok:
            raise SystemExit(f"{name}: {answer.error}")
    tf_pool.close()
    report.add("fp32 conversion (the quantizer's input, converted by the campaign anyway)", times["fp32"], "s")
    report.add("TF int8 conversion (wall, in the worker)", times["int8"], "s")

    light = WorkerPool(1, tmp / "logs", light=True)
    t0 = time.perf_counter()
    light.submit({"op": "tool", "tool": "quantizer", "action": "warm"}).result()
    report.add("light worker start + ai_edge_quantizer import (no TensorFlow; not counted)",
               time.perf_counter() - t0, "s")
    fp32 = str(tmp / "fp32.tflite")
    t0 = time.perf_counter()
    cal = light.submit({"op": "tool", "tool": "quantizer", "action": "calibrate", "float_path": fp32,
                        "rep_path": str(rep), "out_path": str(tmp / "cal.npz")}).result()
    took = {"calibration": time.perf_counter() - t0}
    if not cal.ok:
        raise SystemExit(f"calibration: {cal.error}")
    for recipe in RECIPES:
        spec = {"recipe": recipe, "recipe_json": None, "recipe_file": None, "rules": []}
        t0 = time.perf_counter()
        a = light.submit({"op": "tool", "tool": "quantizer", "float_path": fp32, "quantizer": spec,
                          "calibration": str(tmp / "cal.npz"), "out_path": str(tmp / f"{recipe}.tflite")}).result()
        took[recipe] = time.perf_counter() - t0
        report.add(f"  {recipe}", took[recipe], "s", note="ok" if a.ok else f"failed: {(a.error or '')[:80]}")
    light.close()
    report.add("  shared calibration", took["calibration"], "s")
    total = sum(took.values())
    report.add("five quantizer rows with their calibration", total, "s")
    ratio = total / times["int8"]
    report.add("quantizer rows / one TF int8 conversion", ratio, "x", "<= 1.0", ratio <= 1.0)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
