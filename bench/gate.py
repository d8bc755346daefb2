"""The regression gate under a busy neighbour: false alarms, detection, cost of confirmation.

    .venv/bin/python bench/gate.py [--compares 20]

Method (figures and targets in BENCHMARKS.md, section "regression gate"):
- Background load: one child process streams a 64 MB array (memory-bound, the shared-runner
  neighbour of issue 13) pinned to the last core; it exits on its own after 40 minutes at
  most and is stopped in a `finally`.
- Models: float MLPs 8 -> 256 -> 256 -> 4 converted once with TensorFlow in a child process:
  `base`, `same` (other weights: other bytes, equal work) and slower variants with one extra
  256 -> k -> 256 block under the same model and flag-set names. The variants planted at
  +10 % and +25 % are picked by a calibration (8 interleaved rounds per candidate k).
- A "run" of a row is one `LocalDevice.measure` at the default settings (5 warm-up runs,
  50 runs, 0.5 s), the path `tflite-harness run` takes; the row stores what a run stores
  for latency (samples, artifact hash and path, runtime, settings).
- Each of N iterations runs base twice and same, +10 %, +25 % once, then compares:
  identical (base vs base), equal work (base vs same: must go through confirmation when
  nominated) and the two slowdowns, each with `harness.pipeline.confirm.gate` (defaults:
  5 % threshold, 6 rounds).
- Cost: a confirmation's wall time over the wall time of the two rows' run measurements.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

OUT = c.WORK / "gate"
CANDIDATES = (4, 8, 12, 16, 24, 32, 48, 64)

_BUILD = textwrap.dedent('''
    import sys, numpy as np, tensorflow as tf
    out = sys.argv[1]
    def mlp(name, seed, extra):
        rng = np.random.default_rng(seed)
        sizes = [(8, 256), (256, 256)] + ([(256, extra), (extra, 256)] if extra else []) + [(256, 4)]
        ws = [tf.constant((rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32)) for s in sizes]
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def f(x):
            for w in ws[:-1]:
                x = tf.nn.relu(tf.matmul(x, w))
            return {"probs": tf.nn.softmax(tf.matmul(x, ws[-1]))}
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        open(f"{out}/{name}.tflite", "wb").write(conv.convert())
    mlp("base", 0, 0)
    mlp("same", 1, 0)
    for k in sys.argv[2:]:
        mlp(f"extra{k}", 0, int(k))
''')

_LOAD = textwrap.dedent('''
    import os, time, numpy as np
    os.sched_setaffinity(0, {int(os.environ["CORE"])})
    a = np.ones(8 << 20)  # 64 MB: far beyond the caches, every pass goes to memory
    b = np.empty_like(a)
    end = time.time() + 2400
    while time.time() < end:
        np.copyto(b, a)
        a, b = b, a
''')


def start_load() -> subprocess.Popen:
    core = (os.cpu_count() or 1) - 1
    return subprocess.Popen([sys.executable, "-c", _LOAD], env={**os.environ, "CORE": str(core)})


def build_models() -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    names = ["base", "same", *[f"extra{k}" for k in CANDIDATES]]
    if not all((OUT / f"{n}.tflite").is_file() for n in names):
        c.run([sys.executable, "-c", _BUILD, str(OUT), *map(str, CANDIDATES)], timeout=900)
    return {n: OUT / f"{n}.tflite" for n in names}


def make_inputs() -> Path:
    import numpy as np

    path = OUT / "inputs" / "eval.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{"0": np.random.default_rng(0).random((8, 8), dtype=np.float32)})
    (path.parent / "meta.json").write_text('{"inputs": [{"name": "x"}]}')
    return path.parent


def run_row(device, path: Path, inputs: Path, settings):
    """One 'run' of one row: the measurement `tflite-harness run` makes, stored as a Result."""
    from harness.core.hashing import hash_path
    from harness.core.result import Result
    from harness.core.stats import latency_stats
    from harness.pipeline.artifacts import Artifact, Prepared
    from harness.pipeline.evaluate import measure_job, measurement_settings

    sha = hash_path(path)
    art = Artifact(model=None, flag_set="fp32", ok=True, sha=sha, path=path)
    prepared = Prepared(model=None, ok=True, dir=inputs, meta={"inputs": [{"name": "x"}]})
    t0 = time.perf_counter()
    m = device.measure(measure_job(art, prepared, 1, settings))
    took = time.perf_counter() - t0
    if m.status != "ok":
        raise SystemExit(f"{path.name}: {m.status} {m.reason}")
    r = Result(model="mlp", flag_set="fp32", device="local", threads=1, status="ok", artifact=sha,
               artifact_path=str(path), size_bytes=path.stat().st_size, runtime=m.report.runtime,
               runtime_version=m.report.runtime_version, samples_us=list(m.report.samples_us),
               settings=measurement_settings(settings), inputs_dir=str(inputs))
    r.latency_us = latency_stats(r.samples_us).to_dict()
    return r, took


def calibrate(paths: dict[str, Path], rounds: int = 8) -> dict[int, float]:
    """True slowdown of each candidate vs base: geometric mean of interleaved paired ratios."""
    from harness.core.confirmation import paired_change
    from harness.pipeline.confirm import remeasure

    out = {}
    base = _row(paths["base"])
    for k in CANDIDATES:
        rem = remeasure([("k", base, _row(paths[f"extra{k}"]))], rounds, cache_dirs=())["k"]
        pc = paired_change(rem.base_medians_us, rem.new_medians_us)
        out[k] = pc.change
        print(f"  calibration: extra block {k:>3}: {pc.change:+.1%} [{pc.ci_low:+.1%}, {pc.ci_high:+.1%}]",
              flush=True)
        if pc.change > 0.35:
            break
    return out


def _row(path: Path):
    from harness.core.hashing import hash_path
    from harness.core.result import Result

    r = Result(model="mlp", flag_set="fp32", device="local", threads=1, status="ok", artifact=hash_path(path),
               artifact_path=str(path))
    r.settings = {"warmup_runs": 5, "runs": 50, "min_seconds": 0.5, "max_seconds": 150.0, "repeat": 1,
                  "pin_cpu": None}
    return r


def closest(found: dict[int, float], target: float) -> int:
    return min(found, key=lambda k: abs(found[k] - target))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compares", type=int, default=20)
    args = ap.parse_args()
    from harness.config import Settings
    from harness.devices.local import LocalDevice
    from harness.pipeline.confirm import gate
    from harness.report.compare import REGRESSED, Thresholds

    c.header("regression gate under a memory-bound neighbour")
    report = c.Report("gate")
    paths = build_models()
    inputs = make_inputs()
    load = start_load()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops the load
    try:
        time.sleep(1.0)
        found = calibrate(paths)
        k10, k25 = closest(found, 0.10), closest(found, 0.25)
        print(f"  planted: +10% -> extra{k10} (measured {found[k10]:+.1%}), +25% -> extra{k25} "
              f"(measured {found[k25]:+.1%})", flush=True)
        device, settings = LocalDevice(), Settings()
        counts = {"identical": 0, "same_work": 0, "same_work_nominated": 0, "slow10": 0, "slow25": 0}
        costs, confirm_s, pair_s = [], [], []
        for i in range(args.compares):
            base, t_base = run_row(device, paths["base"], inputs, settings)
            again, t_again = run_row(device, paths["base"], inputs, settings)
            same, t_same = run_row(device, paths["same"], inputs, settings)
            s10, t10 = run_row(device, paths[f"extra{k10}"], inputs, settings)
            s25, t25 = run_row(device, paths[f"extra{k25}"], inputs, settings)
            verdicts = []
            for name, new, t_new in (("identical", again, t_again), ("same_work", same, t_same),
                                     ("slow10", s10, t10), ("slow25", s25, t25)):
                comp = gate([base], [new], Thresholds(), cache_dirs=())
                row = comp.rows[0]
                verdicts.append(f"{name}={row.verdict}")
                counts[name] += row.verdict == REGRESSED
                if name == "same_work" and row.remeasured is not None:
                    counts["same_work_nominated"] += 1
                if row.remeasured is not None and row.remeasured.rounds:
                    costs.append(row.remeasured.seconds / (t_base + t_new))
                    confirm_s.append(row.remeasured.seconds)
                    pair_s.append(t_base + t_new)
            print(f"  compare {i + 1:>2}/{args.compares}: " + ", ".join(verdicts) + f"  [load {c.loadavg()}]",
                  flush=True)
        n = args.compares
        report.add("false alarms, identical runs (same artifact)", counts["identical"], f"of {n}", "0",
                   counts["identical"] == 0)
        report.add("false alarms, equal work, other bytes (confirmed)", counts["same_work"], f"of {n}", "0",
                   counts["same_work"] == 0, note=f"{counts['same_work_nominated']} of {n} went to confirmation")
        report.add(f"detected, planted +25% (extra{k25}, measured {found[k25]:+.0%})", counts["slow25"], f"of {n}",
                   ">= 19", counts["slow25"] >= 19 * n / 20)
        report.add(f"detected, planted +10% (extra{k10}, measured {found[k10]:+.0%})", counts["slow10"], f"of {n}",
                   ">= 16", counts["slow10"] >= 16 * n / 20)
        if costs:
            report.add("confirmation cost / one run measurement of the two rows (median)",
                       statistics.median(costs), "x", "<= 3", statistics.median(costs) <= 3,
                       note=f"max {max(costs):.2f}x; confirmation median {statistics.median(confirm_s):.1f} s, "
                            f"two rows {statistics.median(pair_s):.1f} s")
    finally:
        load.terminate()
        load.wait(timeout=10)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
