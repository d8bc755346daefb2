"""The device-side runner's CompiledModel path (LiteRT 2.x), loaded by runner.py on demand.

Self-contained like runner.py (stdlib + numpy + ai_edge_litert) and pushed beside it to
boards. `run_compiled` gets the runner module R for the shared parts (quantize, the timed
loop, the evaluation pass, `Unsupported`), so both runtimes are measured by the same code:
buffers made once, inputs written before timing, only `run_by_index` timed.
"""

from __future__ import annotations

import os
import sys
import time

# CompiledModel accelerators by name; a job names one or a fallback chain ("gpu+cpu")
ACCELERATORS = ("cpu", "gpu", "npu")
# dtypes a LiteRT TensorBuffer takes (ai_edge_litert 2.3: no int16, no int64)
BUFFER_DTYPES = ("float32", "float16", "bfloat16", "int32", "int8", "uint8", "bool")


def _accelerator_flags(accel: str, hw, r):
    names = accel.split("+")
    if not names or any(n not in ACCELERATORS for n in names):
        raise r.Unsupported(f"{accel}: unknown accelerator; choose from {', '.join(ACCELERATORS)} "
                          "or a fallback chain such as gpu+cpu")
    flags = getattr(hw, names[0].upper())
    for n in names[1:]:
        flags |= getattr(hw, n.upper())
    return flags


class _Stderr:
    """Collects what the runtime writes to fd 2 while it compiles (its reasons live there), then
    writes it on to the real stderr so nothing is lost."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        sys.stderr.write(self.text)


def runtime_words(stderr: str, exc: BaseException) -> str:
    """The runtime's own reason for a failed compile: the exception's last line, or where that says
    only where it failed, the most telling ERROR line the runtime printed (e.g. 'No adapters found')."""
    def clean(line: str) -> str:
        line = line.split("] ", 1)[1] if line.startswith(("ERROR: [", "WARNING: [")) and "] " in line else line
        return line.strip(" └")

    message = clean(" ".join(str(exc).split("└")[-1].split()))
    if message and not message.startswith("ERROR: [") and "compiled_model" not in message:
        return message
    errors = [clean(x).split("] ", 1)[-1] for x in stderr.splitlines() if "ERROR" in x or x[:1] == "E"]
    errors = [e for e in errors if e and "compiled_model" not in e and not e.startswith("ERROR: [")]
    # the root cause: a line whose last part no other line wraps ("... : No adapters found")
    roots = [e for e in errors if not any(e.rsplit(": ", 1)[-1] in o for o in errors if o != e)]
    return (roots or errors or [message or type(exc).__name__])[-1]


def absent_accelerators(accel: str, stderr: str) -> list[str]:
    """The runtime's lines saying an accelerator of ACCEL's chain (other than the CPU) could not be
    loaded: LiteRT then compiles the whole model for the CPU and `is_fully_accelerated()` reads True."""
    wanted = [a.upper() for a in accel.split("+") if a != "cpu"]
    lines = [x.split("] ", 1)[-1].strip() for x in stderr.splitlines() if "accelerator could not be loaded" in x]
    return [x.rstrip(".") for x in lines if x.split(" ", 1)[0] in wanted]


def run_compiled(job: dict, result: dict, mod, arrays: list, np, r) -> dict:
    """CompiledModel: buffers made once, inputs written before timing, only `run_by_index` timed.
    Init is from_file + compilation + buffer creation. The Interpreter reads the I/O quantization
    (CompiledModel's tensor details carry none) before the memory baseline, and is let go."""
    try:
        from ai_edge_litert import compiled_model as cm
        from ai_edge_litert.cpu_kernel_mode import CpuKernelMode
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options
    except ImportError as exc:
        raise r.Unsupported(f"this {result['runtime']} {result['runtime_version']} has no CompiledModel ({exc}); "
                          "install ai-edge-litert 2.x on the device") from None
    accel = result["accelerator"]
    flags = _accelerator_flags(accel, HardwareAccelerator, r)
    meta = mod.Interpreter(model_path=job["model"])
    quant = {d["index"]: d for d in (*meta.get_input_details(), *meta.get_output_details())}
    del meta
    baseline_kb = r.proc_status_kb("VmRSS") or r.maxrss_kb()
    cpu = CpuOptions(num_threads=int(job.get("threads", 1)),
                     kernel_mode=None if job.get("xnnpack", True) else CpuKernelMode.BUILTIN)
    t0 = time.perf_counter_ns()
    with _Stderr() as err:
        try:
            model = cm.CompiledModel.from_file(job["model"], options=Options(hardware_accelerators=flags,
                                                                            cpu_options=cpu))
            failure = None
        except RuntimeError as exc:
            failure = exc
    if failure is not None:
        raise r.Unsupported(f"{accel}: {runtime_words(err.text, failure)}"[:400])
    missing = absent_accelerators(accel, err.text)
    if missing:  # npu+cpu without an NPU compiles and runs on the CPU: that is the cpu row, not this one
        raise r.Unsupported(f"{accel}: {missing[0]}; everything would run on the CPU (the cpu row measures that)"[:400])
    key = next(iter(model.get_signature_list()))
    in_by_name, out_by_name = model.get_input_tensor_details(key), model.get_output_tensor_details(key)
    sig = model.get_signature_by_index(0)
    # signature names, as the Interpreter path reports them (what TensorFlow called the tensors)
    ins = [{**in_by_name[n], "name": n} for n in sig["inputs"]]
    outs = [{**out_by_name[n], "name": n} for n in sig["outputs"]]
    bad = [f"{d['name']} ({d['dtype']})" for d in (*ins, *outs) if d["dtype"] not in BUFFER_DTYPES]
    if bad:
        raise r.Unsupported(f"CompiledModel TensorBuffers take {', '.join(BUFFER_DTYPES)}, not the I/O "
                          f"{', '.join(bad)}; measure it with the Interpreter")
    order = r.match_inputs(ins, job["input_names"])
    for d, arr in zip(order, arrays, strict=True):
        want = [1, *arr.shape[1:]]
        if list(d["shape"]) != want:
            model.resize_input_tensor(ins.index(d), want, 0, strict=False)
            d["shape"] = want
    in_bufs, out_bufs = model.create_input_buffers(0), model.create_output_buffers(0)
    result["init_us"] = (time.perf_counter_ns() - t0) / 1000.0
    init_kb = r.proc_status_kb("VmRSS")
    outs = [{**d, **model.get_output_tensor_details(key)[d["name"]], "name": d["name"]} for d in outs]
    for d in (*ins, *outs):
        q = quant.get(d["index"], {})
        d["quantization"] = q.get("quantization", (0.0, 0))
        d["dtype"] = np.dtype(d["dtype"]).type if d["dtype"] != "bfloat16" else d["dtype"]
    result["fully_accelerated"] = bool(model.is_fully_accelerated())
    def described(d: dict) -> dict:  # bfloat16 has no NumPy dtype: it stays a name
        kind = d["dtype"] if isinstance(d["dtype"], str) else np.dtype(d["dtype"]).name
        return {"name": d["name"], "dtype": kind, "shape": list(d["shape"])}

    result["inputs"], result["outputs"] = [described(d) for d in order], [described(d) for d in outs]
    sizes = [int(np.prod(d["shape"])) for d in outs]

    def feed(i: int) -> None:
        for d, arr in zip(order, arrays, strict=True):
            in_bufs[ins.index(d)].write(r.quantize(arr[i : i + 1], d, np))

    def call() -> None:
        model.run_by_index(0, in_bufs, out_bufs)

    def fetch() -> list:
        return [r.dequantize(b.read(n, d["dtype"]).reshape(d["shape"]), d, np)[0]
                for b, n, d in zip(out_bufs, sizes, outs, strict=True)]

    feed(0)
    r.time_runs(call, job, result, baseline_kb, init_kb, np)
    # What an app pays per inference: write the inputs, run, read the outputs back (own figure)
    staged = [r.quantize(arr[0:1], d, np) for d, arr in zip(order, arrays, strict=True)]
    slots = [in_bufs[ins.index(d)] for d in order]
    loop = max(1, min(len(result["samples_us"]), int(job.get("runs", 50))))
    trips = np.empty(loop, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(loop):
        t0 = clock()
        for b, x in zip(slots, staged, strict=True):
            b.write(x)
        call()
        for b, n, d in zip(out_bufs, sizes, outs, strict=True):
            b.read(n, d["dtype"])
        trips[k] = clock() - t0
    result["roundtrip_us"] = (trips / 1000.0).tolist()
    r.evaluate_samples(job, arrays, feed, call, fetch, len(outs), result, np)
    return result
