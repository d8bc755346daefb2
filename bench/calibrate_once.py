"""Calibrate once: the int8 family on EfficientNetB0 (160x160), one worker, cold cache; and one search step.

Targets (issue 15):
- `--flag-sets int8,int8_float_io,int16x8` takes at most 1.35x the wall time of `--flag-sets int8`
  alone (measured before calibrate-once: 1.98x);
- one search step costs at most 25% of one full int8 conversion.

In-process through `Builder.build` (what `tflite-harness run` uses: preparation, reference
outputs, conversions), each time into a new, empty cache with one worker, so every run pays
TensorFlow's import, the model's load and its export. The model is keras.applications'
EfficientNetB0 with weights=None (nothing downloaded), saved once under results/bench/;
the representative data are 32 seeded random images in [0, 255] (the model rescales).
`--standalone` also times the three flag sets with calibrate-once switched off
(TFLITE_HARNESS_CALIBRATE_ONCE=0), and checks that both give the same outputs.

    .venv/bin/python bench/calibrate_once.py [--standalone]
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

RATIO_TARGET = 1.35
STEP_TARGET = 0.25
FAMILY = ["int8", "int8_float_io", "int16x8"]


def model_files() -> tuple[Path, Path]:
    folder = c.WORK / "calibrate_once"
    model, samples = folder / "efficientnetb0_160.keras", folder / "efficientnetb0_160.samples.npz"
    if not model.is_file() or not samples.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys, numpy as np, keras\n"
            "keras.utils.set_random_seed(0)\n"
            "m = keras.applications.EfficientNetB0(weights=None, input_shape=(160, 160, 3))\n"
            "m.save(sys.argv[1])\n"
            "x = np.random.default_rng(0).uniform(0, 255, (32, 160, 160, 3)).astype('float32')\n"
            "np.savez(sys.argv[2], x=x)\n")
        c.run([sys.executable, "-c", code, str(model), str(samples)], timeout=900)
    return model, samples


def cold_build(model: Path, samples: Path, flag_sets: list[str], cache: Path) -> dict:
    from harness.config import Campaign, Settings, model_from_path
    from harness.convert.cache import Cache
    from harness.core.flag_sets import resolve_flag_sets
    from harness.pipeline.build import Builder
    from harness.pipeline.campaign import tool_versions

    spec = model_from_path(str(model), samples=samples)
    campaign = Campaign("bench", (spec,), tuple(resolve_flag_sets(flag_sets, {})), ("local",), Settings())
    load0 = c.loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-cal-out-") as out:
        t0 = time.perf_counter()
        b = Builder(campaign, Cache(cache), tool_versions(), Path(out), 1)
        try:
            b.start_workers()
            arts = b.build({}, lambda a: None)
        finally:
            b.close()
        wall = time.perf_counter() - t0
    bad = [f"{a.flag_set}: {a.reason}" for a in arts if not a.ok]
    if bad:
        raise SystemExit("conversion failed: " + "; ".join(bad))
    return {"wall": wall, "load": f"{load0} -> {c.loadavg()}", "arts": {a.flag_set: a for a in arts},
            "convert_s": {a.flag_set: a.meta.convert_s for a in arts}}


def outputs(path: Path, x) -> list:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    got = []
    for k in range(len(x)):
        v = x[k : k + 1]
        if i["dtype"] != np.float32:
            s, z = i["quantization"]
            v = np.clip(np.round(v / s + z), -128, 127).astype(i["dtype"])
        it.set_tensor(i["index"], v)
        it.invoke()
        got.append(it.get_tensor(o["index"]).copy())
    return got


def search_step(model: Path, samples: Path, cache: Path) -> dict:
    """A warm session on CACHE (the int8 run's): diagnose once, then one step with 3 layers float."""
    from harness.config import Settings
    from harness.core.budget import parse_budget
    from harness.pipeline.search import measure_step
    from harness.pipeline.session import open_session

    session = open_session(model, "int8", samples=samples, cache_dir=cache, settings=Settings(
        runs=20, warmup_runs=2, min_seconds=0.1))
    try:
        t0 = time.perf_counter()
        layers = session.diagnosis().layers
        diagnose_s = time.perf_counter() - t0
        worst = [x.tensor for x in layers[:3]]
        load0 = c.loadavg()
        t0 = time.perf_counter()
        step = measure_step(session, worst, [x.label for x in layers[:3]], parse_budget("top1>=0.99"), "grow")
        step_s = time.perf_counter() - t0
    finally:
        session.close()
    return {"diagnose_s": diagnose_s, "step_s": step_s, "quantize_s": step.quantize_s, "layers": len(layers),
            "load": f"{load0} -> {c.loadavg()}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--standalone", action="store_true", help="also time the family without calibrate-once")
    args = ap.parse_args()
    c.header("calibrate_once: int8 family on EfficientNetB0 160x160, one worker, cold cache")
    rep = c.Report("calibrate_once")
    model, samples = model_files()
    root = c.WORK / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-cal-", dir=root) as tmp:
        alone = cold_build(model, samples, ["int8"], Path(tmp) / "cache-int8")
        rep.add("cold --flag-sets int8", alone["wall"], "s", load=alone["load"],
                note=f"int8 convert_s {alone['convert_s']['int8']:.1f} s")
        family = cold_build(model, samples, FAMILY, Path(tmp) / "cache-family")
        ratio = family["wall"] / alone["wall"]
        rep.add("cold --flag-sets int8,int8_float_io,int16x8", family["wall"], "s", load=family["load"],
                note="convert_s " + ", ".join(f"{k} {v:.1f} s" for k, v in family["convert_s"].items()))
        rep.add("family / int8 alone", ratio, "x", f"<= {RATIO_TARGET}", ratio <= RATIO_TARGET,
                load=f"{alone['load']} | {family['load']}", note="before calibrate-once: 1.98x")
        if args.standalone:
            import numpy as np

            os.environ["TFLITE_HARNESS_CALIBRATE_ONCE"] = "0"
            try:
                old = cold_build(model, samples, FAMILY, Path(tmp) / "cache-standalone")
            finally:
                os.environ.pop("TFLITE_HARNESS_CALIBRATE_ONCE")
            rep.add("cold family, calibrate-once off", old["wall"], "s", load=old["load"],
                    note=f"ratio to int8 alone {old['wall'] / alone['wall']:.2f}x")
            with np.load(samples) as data:
                x = data["x"][:8]
            same = {n: all(np.array_equal(a, b) for a, b in zip(outputs(family["arts"][n].path, x),
                                                                 outputs(old["arts"][n].path, x), strict=True))
                    for n in FAMILY}
            rep.add("flag sets with bit-identical outputs, once vs standalone", sum(same.values()), "of 3",
                    "= 3", all(same.values()), note=", ".join(f"{k}: {'same' if v else 'DIFFERENT'}"
                                                             for k, v in same.items()))
        step = search_step(model, samples, Path(tmp) / "cache-int8")
        int8_s = alone["convert_s"]["int8"]
        rep.add("diagnose (isolated + accumulated, warm calibration)", step["diagnose_s"], "s", load=step["load"],
                note=f"{step['layers']} quantized layers")
        rep.add("one search step (quantize + local measurement)", step["step_s"], "s", load=step["load"],
                note=f"quantize alone {step['quantize_s']:.2f} s")
        rep.add("search step / full int8 conversion", step["step_s"] / int8_s, "x", f"<= {STEP_TARGET}",
                step["step_s"] / int8_s <= STEP_TARGET, load=step["load"],
                note=f"quantize alone / conversion {step['quantize_s'] / int8_s:.3f}x")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
