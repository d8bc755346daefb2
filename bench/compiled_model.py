"""CompiledModel overhead: the harness's CompiledModel p50 vs a bare run_by_index loop vs litert-benchmark.

For each model (fp32 artifacts of the bundled models), in one run and interleaved, the
order alternating each round (A B C, then C B A, ...) so that drift of the machine cancels:

  A  the harness: `LocalDevice.measure` with runtime_api compiled_model, accelerator cpu (a fresh
     `harness/devices/runner.py` process per job loading `runner_compiled.py`), p50 of its samples;
  B  a bare loop in a fresh `python -I` process: CompiledModel.from_file on the CPU with one thread,
     buffers created once, the input written once, the same warm-up count, then `run_by_index`
     timed with perf_counter_ns;
  C  `litert-benchmark` (ai_edge_litert/tools/benchmark_litert_model.py), run unchanged through the
     small wrapper of bench/overhead.py that records the unrounded per-run times (its JSON rounds
     to 0.01 ms).

All three: the same artifact, 1 thread, the same timed runs and warm-up runs. The figure is the
median over rounds of the per-round ratio. Target: A/B within 2% (0.98-1.02). A/C is informative:
the tool times `run_by_name` (a dict of buffers built per call) with time.perf_counter.
The harness's write + run + read p50 is printed beside, as what an app pays per inference.

    .venv/bin/python bench/compiled_model.py [--rounds 6] [--seconds 1.0] [--models digits_cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from overhead import _last, make_inputs, tool_p50  # noqa: E402

MODELS = ("digits_cnn", "digits_transformer", "digits_mobilenet")
WARMUP = 5
TARGET = 0.02

BARE = r"""
import sys, time, statistics
import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.cpu_options import CpuOptions
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.options import Options
model, npz, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = CompiledModel.from_file(model, options=Options(hardware_accelerators=HardwareAccelerator.CPU,
                                                   cpu_options=CpuOptions(num_threads=1)))
ins, outs = m.create_input_buffers(0), m.create_output_buffers(0)
with np.load(npz) as d:
    for k, b in enumerate(ins):
        b.write(d[str(k)][0:1].astype(np.float32))
m.run_by_index(0, ins, outs)
for _ in range(warmup):
    m.run_by_index(0, ins, outs)
clock = time.perf_counter_ns
samples = []
for _ in range(runs):
    t0 = clock()
    m.run_by_index(0, ins, outs)
    samples.append((clock() - t0) / 1000.0)
print("BARE-P50-US", statistics.median(samples))
"""


def harness_p50(artifact: Path, npz: Path, names: list[str], runs: int) -> tuple[float, float]:
    """(p50 of the timed run_by_index calls, p50 of write + run + read) from one harness measurement."""
    import numpy as np

    from harness.devices.base import MeasureJob
    from harness.devices.local import LocalDevice

    job = MeasureJob(artifact=artifact, artifact_sha="bench", inputs_npz=npz, input_names=names, threads=1,
                     xnnpack=True, warmup_runs=WARMUP, runs=runs, min_seconds=0.0, max_seconds=150.0,
                     timeout_s=300.0, runtime_api="compiled_model", accelerator="cpu")
    m = LocalDevice().measure(job)
    if m.status != "ok":
        raise SystemExit(f"harness measurement failed: {m.status} {m.reason}")
    return float(np.median(m.report.samples_us)), float(np.median(m.report.roundtrip_us))


def bare_p50(artifact: Path, npz: Path, runs: int) -> float:
    proc = c.run([sys.executable, "-I", "-c", BARE, str(artifact), str(npz), str(runs), str(WARMUP)], timeout=600)
    return _last(proc, "BARE-P50-US")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement (sets runs)")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    c.header("compiled_model: harness CompiledModel p50 vs bare run_by_index loop vs litert-benchmark")
    rep = c.Report("compiled_model")
    with tempfile.TemporaryDirectory(prefix="bench-cm-") as tmp:
        for model in args.models.split(","):
            art = c.fp32_artifact(model)
            npz = Path(tmp) / f"{model}.npz"
            names = make_inputs(art, npz)
            probe = bare_p50(art, npz, 200)
            runs = int(min(20000, max(300, args.seconds * 1e6 / probe)))
            load0 = c.loadavg()
            rows = []
            for i in range(args.rounds):
                got = {}
                for k in ("abc" if i % 2 == 0 else "cba"):  # the order alternates each round
                    got[k] = (harness_p50(art, npz, names, runs) if k == "a" else
                              bare_p50(art, npz, runs) if k == "b" else tool_p50(art, runs))
                (a, trip), b, t = got["a"], got["b"], got["c"]
                rows.append((a, b, t, trip))
                print(f"    {model}: harness {a:.2f} us (write+run+read {trip:.2f}), bare {b:.2f} us, "
                      f"litert-benchmark {t:.2f} us", flush=True)
            load = f"{load0} -> {c.loadavg()}"
            ab = c.median([a / b for a, b, _, _ in rows])
            ac = c.median([a / t for a, _, t, _ in rows])
            p50s = [c.median([r[i] for r in rows]) for i in range(4)]
            detail = (f"p50 us: harness {p50s[0]:.1f}, bare {p50s[1]:.1f}, tool {p50s[2]:.1f}, harness write+run+read "
                      f"{p50s[3]:.1f}; {runs} runs x {args.rounds} rounds; per-round A/B "
                      + json.dumps([round(a / b, 3) for a, b, _, _ in rows]))
            rep.add(f"{model}: harness CompiledModel / bare run_by_index", ab, "x",
                    f"{1 - TARGET:.2f}-{1 + TARGET:.2f}", abs(ab - 1) <= TARGET, load=load, note=detail)
            rep.add(f"{model}: harness CompiledModel / litert-benchmark", ac, "x", "informative", None, load=load,
                    note="the tool times run_by_name (buffer dict per call)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
