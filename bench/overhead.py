"""Measurement overhead: the harness's p50 vs a bare invoke() loop vs LiteRT's own tool.

For each model (tiny CNN, transformer, MobileNet-style; fp32 artifacts), in one run and
interleaved A, B, C, A, B, C, ... so that drift of the machine cancels:

  A  the harness: `LocalDevice.measure` (a fresh `harness/devices/runner.py` process per job),
     p50 of its raw samples;
  B  a bare loop in a fresh `python -I` process: Interpreter, allocate_tensors, the same
     input, the same warm-up count, then `invoke()` timed with perf_counter_ns;
  C  `ai_edge_litert/tools/benchmark_litert_model.py` (CompiledModel API), run unchanged;
     its median is printed rounded to 0.01 ms, so a small wrapper records the unrounded
     per-run times the tool hands to `statistics.median`.

All three use the same artifact, 1 thread, the same number of timed runs and warm-up runs.
Per round the ratios A/B and A/C are taken between neighbours in time; the figure is the
median over rounds. Target: A/B within 2% (0.98-1.02). A/C is informative: the tool uses a
different API (CompiledModel, its own buffers) and is not an overhead measurement.

    .venv/bin/python bench/overhead.py [--rounds 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

MODELS = ("digits_cnn", "digits_transformer", "digits_mobilenet")
WARMUP = 5
TARGET = 0.02

BARE = r"""
import sys, time, statistics
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, npz, runs, warmup, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
it = Interpreter(model_path=model, num_threads=threads)
it.allocate_tensors()
with np.load(npz) as d:
    for k, det in enumerate(it.get_input_details()):
        it.set_tensor(det["index"], d[str(k)][0:1].astype(det["dtype"]))
it.invoke()
for _ in range(warmup):
    it.invoke()
clock = time.perf_counter_ns
samples = []
for _ in range(runs):
    t0 = clock()
    it.invoke()
    samples.append((clock() - t0) / 1000.0)
print("BARE-P50-US", statistics.median(samples))
"""

TOOL = r"""
import importlib.util, statistics, sys, types
spec = importlib.util.spec_from_file_location("benchmark_litert_model", sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
seen = []
def median(xs):
    seen.append(list(xs))
    return statistics.median(xs)
tool.statistics = types.SimpleNamespace(mean=statistics.mean, stdev=statistics.stdev, median=median)
sys.argv = ["benchmark_litert_model.py", *sys.argv[2:]]
tool.main() if hasattr(tool, "main") else tool.run_benchmark(tool.parse_args())
print("TOOL-P50-US", statistics.median(seen[-1]) * 1000.0)
"""


def tool_path() -> Path:
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).parent / "tools" / "benchmark_litert_model.py"


def make_inputs(artifact: Path, out: Path) -> list[str]:
    import numpy as np

    from harness.tflite.file import read_tflite

    info = read_tflite(artifact)
    rng = np.random.default_rng(0)
    arrays = {str(i): rng.random((1, *t.shape[1:])).astype(np.float32) for i, t in enumerate(info.inputs)}
    np.savez(out, **arrays)
    names = [t.name for t in info.inputs]
    if len(info.signatures) == 1:
        by_index = {idx: name for name, idx in info.signatures[0].inputs.items()}
        names = [by_index.get(t.index, t.name) for t in info.inputs]
    return names


def harness_p50(artifact: Path, npz: Path, names: list[str], runs: int) -> float:
    import numpy as np

    from harness.devices.base import MeasureJob
    from harness.devices.local import LocalDevice

    job = MeasureJob(artifact=artifact, artifact_sha="bench", inputs_npz=npz, input_names=names, threads=1,
                     xnnpack=True, warmup_runs=WARMUP, runs=runs, min_seconds=0.0, max_seconds=150.0,
                     timeout_s=300.0)
    m = LocalDevice().measure(job)
    if m.status != "ok":
        raise SystemExit(f"harness measurement failed: {m.status} {m.reason}")
    return float(np.median(m.report.samples_us))


def _last(proc: subprocess.CompletedProcess, tag: str) -> float:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(tag):
            return float(line.split()[1])
    raise SystemExit(f"no {tag} in output: {proc.stdout[-1500:]} {proc.stderr[-1500:]}")


def bare_p50(artifact: Path, npz: Path, runs: int) -> float:
    proc = c.run([sys.executable, "-I", "-c", BARE, str(artifact), str(npz), str(runs), str(WARMUP), "1"], timeout=600)
    return _last(proc, "BARE-P50-US")


def tool_p50(artifact: Path, runs: int) -> float:
    proc = c.run([sys.executable, "-I", "-c", TOOL, str(tool_path()), f"--model={artifact}", f"--num_runs={runs}",
                  f"--warmup_runs={WARMUP}", "--num_threads=1"], timeout=600)
    return _last(proc, "TOOL-P50-US")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement (sets runs)")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    c.header("overhead: harness p50 vs bare invoke() loop vs benchmark_litert_model.py")
    rep = c.Report("overhead")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        for model in args.models.split(","):
            art = c.fp32_artifact(model)
            npz = Path(tmp) / f"{model}.npz"
            names = make_inputs(art, npz)
            probe = bare_p50(art, npz, 200)
            runs = int(min(20000, max(300, args.seconds * 1e6 / probe)))
            load0 = c.loadavg()
            rows = []
            for _ in range(args.rounds):
                a = harness_p50(art, npz, names, runs)
                b = bare_p50(art, npz, runs)
                t = tool_p50(art, runs)
                rows.append((a, b, t))
                print(f"    {model}: harness {a:.2f} us, bare {b:.2f} us, litert tool {t:.2f} us", flush=True)
            load = f"{load0} -> {c.loadavg()}"
            ab = c.median([a / b for a, b, _ in rows])
            ac = c.median([a / t for a, _, t in rows])
            p50s = [c.median([r[i] for r in rows]) for i in range(3)]
            detail = (f"p50 us: harness {p50s[0]:.1f}, bare {p50s[1]:.1f}, tool {p50s[2]:.1f}; "
                      f"{runs} runs x {args.rounds} rounds; per-round A/B " + json.dumps([round(a / b, 3) for a, b, _ in rows]))
            rep.add(f"{model}: harness / bare loop", ab, "x", f"{1 - TARGET:.2f}-{1 + TARGET:.2f}",
                    abs(ab - 1) <= TARGET, load=load, note=detail)
            rep.add(f"{model}: harness / benchmark_litert_model.py", ac, "x", "informative", None, load=load,
                    note="different API (CompiledModel)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
