#!/usr/bin/env python3
"""The device-side runner: loads one .tflite, times it, runs the evaluation samples.

This file is self-contained on purpose (stdlib + numpy + whichever LiteRT runtime
imports): the local device runs it in a fresh subprocess, and Linux edge boards get
it pushed as-is. It never imports TensorFlow unless nothing else is there, so the
measuring process carries no 570 MB framework and the numbers are the runtime's own.

Usage: python runner.py JOB.json
       python runner.py --serve   (the zygote: see `serve`)
JOB.json: {"model", "inputs" (npz: "0", "1", ... one array per input, first axis =
sample), "input_names", "outputs" (npz to write), "threads", "xnnpack",
"warmup_runs", "runs", "min_seconds", "max_seconds", "runtime_api" (interpreter |
compiled_model), "accelerator" (cpu, gpu, npu, or a fallback chain: gpu+cpu)}.
The last stdout line starting with RESULT_PREFIX is the JSON result.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

RESULT_PREFIX = "TFLITE-HARNESS-RESULT "
_START = time.perf_counter()


def proc_status_kb(field: str) -> int | None:
    """VmRSS / VmHWM of this process in kB (None where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def maxrss_kb() -> int | None:
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss // 1024 if sys.platform == "darwin" else rss
    except (ImportError, OSError):
        return None


def _load_runtime():
    """(module with Interpreter, runtime name, version); prefers ai_edge_litert."""
    errors = []
    try:
        from ai_edge_litert import interpreter as mod

        try:
            from importlib.metadata import version

            ver = version("ai-edge-litert")
        except Exception:  # noqa: BLE001 - metadata may be missing on devices
            ver = "unknown"
        return mod, "ai_edge_litert", ver
    except ImportError as exc:
        errors.append(f"ai_edge_litert: {exc}")
    try:
        from tflite_runtime import interpreter as mod

        return mod, "tflite_runtime", getattr(sys.modules.get("tflite_runtime"), "__version__", "unknown")
    except ImportError as exc:
        errors.append(f"tflite_runtime: {exc}")
    try:
        import tensorflow as tf

        return tf.lite, "tensorflow.lite", tf.__version__
    except ImportError as exc:
        errors.append(f"tensorflow: {exc}")
    raise RuntimeError("no TFLite runtime found (" + "; ".join(errors) + "); pip install ai-edge-litert")


def _classify(message: str) -> str:
    low = message.lower()
    if "select tensorflow op" in low or "flex" in low or "unresolved custom op" in low:
        return "unsupported"
    return "runtime_failed"


def quantize(x, detail, np):
    dtype = detail["dtype"]
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale and np.issubdtype(x.dtype, np.floating):
        info = np.iinfo(dtype)
        q = np.round(x / scale) + zero
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(y, detail, np):
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(y.dtype, np.integer) and scale:
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y


def match_inputs(details, names):
    """Order the interpreter's inputs like the job's arrays: by name when all match, else by position."""
    by_name = {d["name"]: d for d in details}
    if names and all(n in by_name for n in names):
        return [by_name[n] for n in names]
    if len(details) != len(names):
        raise RuntimeError(f"model has {len(details)} inputs but {len(names)} input arrays were given")
    return list(details)


class Unsupported(RuntimeError):
    """The runtime cannot run this artifact as asked (an accelerator, a dtype): an `unsupported` row."""


def run(job: dict) -> dict:
    if job.get("cpus") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in job["cpus"]})  # before the runtime starts its threads
    import numpy as np

    result: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "pid": os.getpid(),
    }
    mod, runtime, runtime_version = _load_runtime()
    result.update(runtime=runtime, runtime_version=runtime_version)
    result["import_s"] = time.perf_counter() - _START
    api, accel = job.get("runtime_api", "interpreter"), job.get("accelerator", "cpu")
    result.update(runtime_api=api, accelerator=accel)
    with np.load(job["inputs"], allow_pickle=False) as data:
        arrays = [data[str(i)] for i in range(len(job["input_names"]))]
    if api == "compiled_model":
        return _compiled(job).run_compiled(job, result, mod, arrays, np, sys.modules[__name__])
    if accel != "cpu":
        raise Unsupported(f"{accel}: the Interpreter runs on the CPU here (XNNPACK or builtin kernels); "
                          "measure other accelerators with runtime_api compiled_model")
    baseline_kb = proc_status_kb("VmRSS") or maxrss_kb()

    kwargs = {"model_path": job["model"], "num_threads": int(job.get("threads", 1))}
    if not job.get("xnnpack", True) and hasattr(mod, "OpResolverType"):
        kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter_ns()
    interpreter = mod.Interpreter(**kwargs)
    inputs, in_details, out_details, names_in, names_out = _interpreter_io(interpreter, job, arrays)
    interpreter.allocate_tensors()
    t1 = time.perf_counter_ns()
    result["init_us"] = (t1 - t0) / 1000.0
    init_kb = proc_status_kb("VmRSS")
    in_details = {d["index"]: d for d in interpreter.get_input_details()}
    out_details = interpreter.get_output_details()
    result["inputs"] = [
        {"name": names_in.get(d["index"], d["name"]), "dtype": str(np.dtype(in_details[d["index"]]["dtype"])),
         "shape": [int(s) for s in in_details[d["index"]]["shape"]]}
        for d in inputs
    ]
    result["outputs"] = [
        {"name": names_out.get(d["index"], d["name"]), "dtype": str(np.dtype(d["dtype"])),
         "shape": [int(s) for s in d["shape"]]}
        for d in out_details
    ]

    def feed(i: int) -> None:
        for d, arr in zip(inputs, arrays, strict=True):
            interpreter.set_tensor(d["index"], quantize(arr[i : i + 1], in_details[d["index"]], np))

    def fetch() -> list:
        return [dequantize(interpreter.get_tensor(d["index"]), d, np)[0] for d in out_details]

    feed(0)
    time_runs(interpreter.invoke, job, result, baseline_kb, init_kb, np)
    evaluate_samples(job, arrays, feed, interpreter.invoke, fetch, len(out_details), result, np)
    return result


def _compiled(job: dict):
    """runner_compiled.py, the CompiledModel path: beside this file, or where the job says (a board,
    where both files are pushed under content-hashed names)."""
    import importlib.util

    path = job.get("compiled_runner") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "runner_compiled.py")
    spec = importlib.util.spec_from_file_location("tflite_harness_runner_compiled", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _interpreter_io(interpreter, job: dict, arrays: list):
    """Inputs in the job's order (resized to batch 1), and the signature's names for every tensor."""
    # Signature names are what TensorFlow called the inputs; fall back to tensor names.
    # (a SignatureRunner would hold tensor references that forbid resizing later)
    full = getattr(interpreter, "_get_full_signature_list", dict)()
    in_details = interpreter.get_input_details()
    out_details = interpreter.get_output_details()
    names_in = {d["index"]: d["name"] for d in in_details}
    names_out = {d["index"]: d["name"] for d in out_details}
    if len(full) == 1:
        sig = next(iter(full.values()))
        names_in.update({idx: n for n, idx in sig.get("inputs", {}).items()})
        names_out.update({idx: n for n, idx in sig.get("outputs", {}).items()})
    for d in in_details:
        d["name"] = names_in.get(d["index"], d["name"])
    inputs = match_inputs(in_details, job["input_names"])
    for d, arr in zip(inputs, arrays, strict=True):
        want = (1, *arr.shape[1:])
        if tuple(d["shape"]) != want:
            interpreter.resize_tensor_input(d["index"], want, strict=False)
    return inputs, in_details, out_details, names_in, names_out


def time_runs(call, job: dict, result: dict, baseline_kb, init_kb, np) -> None:
    """First run, warm-up, memory, then the timed loop: CALL alone is timed, whatever the runtime."""
    t0 = time.perf_counter_ns()
    call()
    result["first_us"] = (time.perf_counter_ns() - t0) / 1000.0
    warmup = []
    for _ in range(int(job.get("warmup_runs", 1))):
        t0 = time.perf_counter_ns()
        call()
        warmup.append((time.perf_counter_ns() - t0) / 1000.0)
    result["warmup_us"] = warmup

    # Memory measures the model, not the harness: the peak is read here, after loading, the
    # first inference and the warm-up, before the timed loop, whose samples would otherwise
    # count (a list of 3 million floats is ~100 MB). The samples go into preallocated int64
    # storage, sized from the warm-up; it doubles only if the estimate was short.
    peak_kb = proc_status_kb("VmHWM") or maxrss_kb()
    result["baseline_rss_kb"] = baseline_kb
    result["peak_rss_kb"] = peak_kb
    if peak_kb is not None and baseline_kb is not None:
        result["peak_rss_delta_kb"] = max(0, peak_kb - baseline_kb)
    if init_kb is not None and baseline_kb is not None:
        result["init_rss_delta_kb"] = max(0, init_kb - baseline_kb)

    runs, min_s = int(job.get("runs", 50)), float(job.get("min_seconds", 0.0))
    max_s = float(job.get("max_seconds", 150.0))
    per_run_s = max(min(warmup) if warmup else result["first_us"], 0.5) / 1e6
    buf = np.empty(max(runs, min(int(1.2 * min_s / per_run_s) + 64, 50_000_000)), dtype=np.int64)
    count = 0
    clock = time.perf_counter_ns
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        if count == len(buf):
            buf = np.concatenate([buf, np.empty_like(buf)])
        buf[count] = t1 - t0
        count += 1
        elapsed = (t1 - start) / 1e9
        if (count >= runs and elapsed >= min_s) or elapsed >= max_s:
            break
    result["timed_s"] = (clock() - start) / 1e9
    result["samples_us"] = (buf[:count] / 1000.0).tolist()


def evaluate_samples(job: dict, arrays: list, feed, call, fetch, n_out: int, result: dict, np) -> None:
    """Each evaluation sample once: FEED it, CALL, FETCH the dequantized outputs; save them."""
    n = len(arrays[0]) if arrays and job.get("outputs") else 0  # no evaluation pass for latency-only jobs
    collected: list[list] = [[] for _ in range(n_out)]
    for i in range(n):
        feed(i)
        call()
        for k, y in enumerate(fetch()):
            collected[k].append(y)
    if job.get("outputs"):
        np.savez(job["outputs"], **{str(k): np.stack(c) for k, c in enumerate(collected) if c})
    result["eval_samples"] = n
    result["status"] = "ok"


DONE_PREFIX = "TFLITE-HARNESS-EXIT "


def serve() -> int:
    """The zygote: import NumPy and the runtime once, then fork one fresh child per job.

    Reads one JOB.json path per stdin line; for each, forks a child that runs the job
    exactly as `runner.py JOB.json` would (its own pid, address space, interpreter and
    model: nothing but the imported modules is shared), prints the child's result line,
    then `DONE_PREFIX <exit status>` (negative: killed by that signal). No interpreter is
    ever created here, so no child inherits a loaded model or a warmed runtime. The child's
    peak RSS starts at its RSS when forked (Linux resets VmHWM on fork), so the memory
    figures, read against the child's own baseline, still count the model only.
    """
    import numpy  # noqa: F401 - imported once, shared copy-on-write by every child

    _load_runtime()
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            global _START
            _START = time.perf_counter()
            code = 1
            try:
                code = main([sys.argv[0], path])
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.stdout.write(f"{DONE_PREFIX}{code}\n")
        sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--serve":
        return serve()
    if len(argv) != 2:
        print("usage: runner.py JOB.json | runner.py --serve", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        job = json.load(f)
    try:
        result = run(job)
    except Unsupported as exc:  # no silent fallback: the runtime's reason, as its own row
        result = {"status": "unsupported", "reason": str(exc)[:500], "error_type": "Unsupported",
                  "runtime_api": job.get("runtime_api", "interpreter"), "accelerator": job.get("accelerator", "cpu")}
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reported result
        message = " ".join(str(exc).split()) or type(exc).__name__
        result = {"status": _classify(message), "reason": message[:500], "error_type": type(exc).__name__}
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
