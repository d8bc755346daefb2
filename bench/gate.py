"""The regression gate under a busy neighbour: false alarms, detection, cost of confirmation.

    .venv/bin/python bench/gate.py [--compares 20]

Method (figures and targets in BENCHMARKS.md, section "regression gate"):
- Background load: one child process streams a 64 MB array (memory-bound, the shared-runner
  neighbour of issue 13) pinned to the last core; it exits on its own after 40 minutes at
  most and is stopped in a `finally`.
- Models: float MLPs of 20 identical 128 x 128 layers (+ 8 -> 128 in, 128 -> 4 softmax out),
  converted once with TensorFlow in a child process: `base`, `same` (other weights: other
  bytes, equal work), `slow10` (22 layers) and `slow25` (25 layers): more layers of the same
  kind under the same model and flag-set names, so the extra work is a fixed share of the
  total whatever the neighbour does. A calibration (10 interleaved rounds) says what the
  planted slowdowns measure here.
- A "run" of a row is one `LocalDevice.measure` at the default settings (5 warm-up runs,
  50 runs, 0.5 s), the path `tflite-harness run` takes; the row stores what a run stores
  for latency (samples, artifact hash and path, runtime, settings).
- Each of N iterations runs base twice and same, +10 %, +25 % once, then compares:
  identical (base vs base), equal work (base vs same: must go through confirmation when
  nominated) and the two slowdowns, each with `harness.pipeline.confirm.gate` (defaults:
  5 % threshold, 6 rounds).
- Cost: a confirmation's wall time over the wall time of the two rows' run measurements.
  `--confirm-processes exec` measures confirmation as it was before the zygote (one exec'd
  runner per measurement), for a comparison on the same machine state.
  Runs exec a fresh runner per measurement; confirmation forks each of its fresh
  processes from a runner zygote (harness/devices/zygote.py), started inside the
  confirmation and so counted in its cost.
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
WIDTH, BASE_LAYERS = 128, 20  # slow10: 22 layers, slow25: 25 layers of the same kind

_BUILD = textwrap.dedent('''
    import sys, numpy as np, tensorflow as tf
    out = sys.argv[1]
    def mlp(name, seed, layers):
        rng = np.random.default_rng(seed)
        sizes = [(8, WIDTH)] + [(WIDTH, WIDTH)] * layers + [(WIDTH, 4)]
        ws = [tf.constant((rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32)) for s in sizes]
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def f(x):
            for w in ws[:-1]:
                x = tf.nn.relu(tf.matmul(x, w))
            return {"probs": tf.nn.softmax(tf.matmul(x, ws[-1]))}
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        open(f"{out}/{name}.tflite", "wb").write(conv.convert())
    mlp("base", 0, BASE_LAYERS)
    mlp("same", 1, BASE_LAYERS)
    mlp("slow10", 0, BASE_LAYERS + BASE_LAYERS // 10)
    mlp("slow25", 0, BASE_LAYERS + BASE_LAYERS // 4)
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
    names = ["base", "same", "slow10", "slow25"]
    stamp = OUT / f"built-{WIDTH}x{BASE_LAYERS}"
    if not stamp.is_file() or not all((OUT / f"{n}.tflite").is_file() for n in names):
        source = _BUILD.replace("WIDTH", str(WIDTH)).replace("BASE_LAYERS", str(BASE_LAYERS))
        c.run([sys.executable, "-c", source, str(OUT)], timeout=900)
        stamp.write_text("")
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


def calibrate(paths: dict[str, Path], rounds: int = 10) -> dict[str, float]:
    """The planted slowdowns as measured here: geometric mean of interleaved paired ratios."""
    from harness.core.confirmation import paired_change
    from harness.pipeline.confirm import remeasure

    out = {}
    base = _row(paths["base"])
    for name in ("slow10", "slow25"):
        rem = remeasure([("k", base, _row(paths[name]))], rounds, cache_dirs=())["k"]
        pc = paired_change(rem.base_us, rem.new_us)
        med = paired_change(rem.base_medians_us, rem.new_medians_us)
        out[name] = pc.change
        print(f"  calibration: {name}: p10 {pc.change:+.1%} [{pc.ci_low:+.1%}, {pc.ci_high:+.1%}], median "
              f"{med.change:+.1%} [{med.ci_low:+.1%}, {med.ci_high:+.1%}] over {rounds} rounds", flush=True)
    return out


def _row(path: Path):
    from harness.core.hashing import hash_path
    from harness.core.result import Result

    r = Result(model="mlp", flag_set="fp32", device="local", threads=1, status="ok", artifact=hash_path(path),
               artifact_path=str(path))
    r.settings = {"warmup_runs": 5, "runs": 50, "min_seconds": 0.5, "max_seconds": 150.0, "repeat": 1,
                  "pin_cpu": None}
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compares", type=int, default=20)
    ap.add_argument("--confirm-processes", choices=("fork", "exec"), default="fork",
                    help="fork: confirmation as shipped (runner zygote); exec: one exec'd runner per "
                         "measurement, as before the zygote, for comparison on the same machine")
    args = ap.parse_args()
    from harness.config import Settings
    from harness.core.confirmation import paired_change
    from harness.devices.local import LocalDevice
    from harness.devices.registry import open_device
    from harness.pipeline.confirm import gate

    class ExecEachMeasurement(LocalDevice):
        """The local device as confirmation used it before the zygote: `for_confirmation`
        forks only for a plain LocalDevice, so this one execs a runner per measurement."""
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
        device, settings = LocalDevice(), Settings()
        opener = (lambda name: ExecEachMeasurement()) if args.confirm_processes == "exec" else open_device
        print(f"  confirmation processes: {args.confirm_processes}", flush=True)
        counts = {"identical": 0, "same_work": 0, "same_work_nominated": 0, "slow10": 0, "slow25": 0}
        by_median = dict.fromkeys(counts, 0)
        costs, confirm_s, pair_s = [], [], []
        for i in range(args.compares):
            base, t_base = run_row(device, paths["base"], inputs, settings)
            again, t_again = run_row(device, paths["base"], inputs, settings)
            same, t_same = run_row(device, paths["same"], inputs, settings)
            s10, t10 = run_row(device, paths["slow10"], inputs, settings)
            s25, t25 = run_row(device, paths["slow25"], inputs, settings)
            verdicts = []
            for name, new, t_new in (("identical", again, t_again), ("same_work", same, t_same),
                                     ("slow10", s10, t10), ("slow25", s25, t25)):
                comp = gate([base], [new], Thresholds(), cache_dirs=(), opener=opener)
                row = comp.rows[0]
                verdicts.append(f"{name}={row.verdict}")
                counts[name] += row.verdict == REGRESSED
                if name == "same_work" and row.remeasured is not None:
                    counts["same_work_nominated"] += 1
                if row.remeasured is not None and row.remeasured.rounds >= 2:  # the medians' verdict, for the record
                    med = paired_change(row.remeasured.base_medians_us, row.remeasured.new_medians_us)
                    by_median[name] += med.change > 0.05 and med.ci_low > 0
                elif row.verdict == REGRESSED:
                    by_median[name] += 1
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
        report.add(f"detected, planted +25% (measured {found['slow25']:+.0%})", counts["slow25"], f"of {n}",
                   ">= 19", counts["slow25"] >= 19 * n / 20)
        report.add(f"detected, planted +10% (measured {found['slow10']:+.0%})", counts["slow10"], f"of {n}",
                   ">= 16", counts["slow10"] >= 16 * n / 20)
        report.add("same four figures if rounds compared medians instead of p10", None, "",
                   note=f"false alarms {by_median['identical']}+{by_median['same_work']}, detected +25% "
                        f"{by_median['slow25']}, +10% {by_median['slow10']} of {n}")
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
