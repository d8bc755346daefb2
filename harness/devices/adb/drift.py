"""On-device outputs through benchmark_model: one invocation per evaluation sample.

benchmark_model has no batch mode for our samples, so: per input, one blob holding every
sample's raw bytes (quantized when the input tensor is) is pushed once (content-hashed);
a pushed shell script cuts sample i out with ``dd`` and runs the tool once
(``--num_runs=1 --warmup_runs=0 --min_secs=0``) with ``--input_layer_value_files`` and
``--output_filepath``, appending each output file to one file that we pull and split.
Shapes, dtypes and quantization come from the .tflite itself (`harness.tflite.file`).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import shlex
import tempfile
from pathlib import Path

import numpy as np

from harness.devices import benchmark_model as bm
from harness.devices.adb.scripts import DeviceScript, drift_script, script_failure
from harness.devices.adb.session import DEADLINE_EXIT, DriftError, Session, run_bounded
from harness.devices.base import MeasureJob
from harness.tflite.file import TensorInfo, read_tflite


def _quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    dtype = np.dtype(t.dtype)
    q = t.quantization
    if np.issubdtype(dtype, np.integer) and q and q.scales and np.issubdtype(x.dtype, np.floating):
        info = np.iinfo(dtype)
        v = np.round(x / q.scales[0]) + (q.zero_points[0] if q.zero_points else 0)
        return np.clip(v, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _dequantize(y: np.ndarray, t: TensorInfo) -> np.ndarray:
    q = t.quantization
    if np.issubdtype(y.dtype, np.integer) and q and q.scales and q.scales[0]:
        zero = q.zero_points[0] if q.zero_points else 0
        return ((y.astype(np.float32) - zero) * q.scales[0]).astype(np.float32)
    return y


def ordered_inputs(model, names: list[str]) -> list[TensorInfo]:
    """Model inputs in the job's order: by signature name, by tensor name, else by position."""
    by_index = {t.index: t for t in model.inputs}
    if len(model.signatures) == 1 and names and all(n in model.signatures[0].inputs for n in names):
        sig = model.signatures[0].inputs
        if all(sig[n] in by_index for n in names):
            return [by_index[sig[n]] for n in names]
    by_name = {t.name: t for t in model.inputs}
    if names and all(n in by_name for n in names):
        return [by_name[n] for n in names]
    if len(names) != len(model.inputs):
        raise DriftError(f"model has {len(model.inputs)} inputs but {len(names)} input arrays")
    return list(model.inputs)


def _output_names(model) -> list[str]:
    names = {t.index: t.name for t in model.outputs}
    if len(model.signatures) == 1:
        names.update({idx: n for n, idx in model.signatures[0].outputs.items()})
    return [names[t.index] for t in model.outputs]


def _batch1(t: TensorInfo) -> tuple[int, ...]:
    shape = list(t.shape)
    if shape:
        shape[0] = 1
    if any(d < 0 for d in shape):
        raise DriftError(f"output {t.name!r} has unknown dimensions {tuple(t.shape)}")
    return tuple(shape)


def run_drift(s: Session, job: MeasureJob, binary: str, model_name: str, scripts: list[DeviceScript]):
    """(outputs stacked per sample, output names, output tensor meta) computed on the device.

    The pushed script, its output and exit code are appended to SCRIPTS (for the run's logs/);
    any failure is a DriftError whose message names the step and what it printed."""
    f = s.folder
    model = read_tflite(job.artifact)
    with np.load(job.inputs_npz, allow_pickle=False) as data:
        arrays = [data[str(i)] for i in range(len(job.input_names))]
    if not arrays or len(arrays[0]) == 0:
        return [], [], []
    n = len(arrays[0])
    tensors = ordered_inputs(model, list(job.input_names))
    blobs, layers_shapes = [], []
    for t, arr in zip(tensors, arrays, strict=True):
        q = np.ascontiguousarray(_quantize(arr, t))
        blobs.append((q.tobytes(), q[0:1].nbytes))
        layers_shapes.append((t.name, (1, *arr.shape[1:])))
    out_specs = [(t.name, _batch1(t), t.dtype) for t in model.outputs]
    per_sample = sum(math.prod(shape) * np.dtype(dt).itemsize for _n, shape, dt in out_specs)

    jid = secrets.token_hex(6)
    blob_names = [f"in-{hashlib.sha256(b).hexdigest()[:32]}.bin" for b, _ in blobs]
    cut = [f"job-{jid}-in{k}.bin" for k in range(len(blobs))]
    out_one, out_all, log = f"job-{jid}-out.bin", f"job-{jid}-outall.bin", f"job-{jid}-log.txt"
    settings = bm.BenchmarkSettings(
        num_threads=job.threads, num_runs=1, warmup_runs=0, min_secs=0.0, warmup_min_secs=0.0,
        delegate="xnnpack" if job.xnnpack else "none", report_peak_memory=False)
    try:
        argv = bm.build_args(
            binary, model_name, settings,
            input_layers=[(name, shape, c) for (name, shape), c in zip(layers_shapes, cut, strict=True)],
            output_filepath=out_one, extra=s.profile.extra_args)
    except ValueError as exc:
        raise DriftError(str(exc)) from exc
    script = drift_script(bm.shell_command(argv), n, blobs, blob_names, cut, out_one, out_all, log)
    temp_names = [f"job-{jid}.sh", out_one, out_all, log, *cut]
    try:
        def push() -> None:
            for (b, _), name in zip(blobs, blob_names, strict=True):
                with tempfile.TemporaryDirectory(prefix="tflite-harness-blob-") as tmp:
                    p = Path(tmp) / "blob"
                    p.write_bytes(b)
                    f.ensure(p, name)
            f.push_bytes(script.encode(), f"job-{jid}.sh")

        s.step("push", push)
        r = s.step("run", lambda: run_bounded(s, f"cd {shlex.quote(f.root)} && sh job-{jid}.sh",
                                              job.timeout_s))
        scripts.append(DeviceScript(f"job-{jid}.sh", "on-device drift", script, r.output, r.returncode))
        if r.returncode == DEADLINE_EXIT:
            raise DriftError(f"stopped after {job.timeout_s:.0f} s (settings.timeout_s)")
        if r.returncode != 0:
            raise DriftError(script_failure(s, r.output, r.returncode))
        with tempfile.TemporaryDirectory(prefix="tflite-harness-pull-") as tmp:
            local = Path(tmp) / "outall.bin"
            s.step("pull", lambda: f.pull(out_all, local))
            data = local.read_bytes()
    finally:
        f.remove(*temp_names)
    if len(data) != n * per_sample:
        raise DriftError(f"output file has {len(data)} bytes, expected {n} x {per_sample}")
    per_output: list[list[np.ndarray]] = [[] for _ in out_specs]
    for i in range(n):
        arrays_i = bm.decode_output_file(data[i * per_sample:(i + 1) * per_sample], out_specs)
        for k, (a, t) in enumerate(zip(arrays_i, model.outputs, strict=True)):
            per_output[k].append(_dequantize(a, t)[0])
    meta = [{"name": name, "dtype": t.dtype, "shape": list(shape)}
            for name, t, (_n, shape, _d) in zip(_output_names(model), model.outputs, out_specs, strict=True)]
    return [np.stack(c) for c in per_output], _output_names(model), meta
