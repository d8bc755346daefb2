"""Worker jobs of the int8 family: quantize from the shared calibration, and per-layer error.

- `convert_calibrated`: a family flag set's artifact, quantized from the model's one
  calibration (made here, under a lock, by the first job that needs it);
- `quantize_step`: the same with some layers kept float (`denylisted_nodes`), one step
  of the budget search;
- `diagnose`: the isolated error of every quantized op, from TensorFlow's NumericVerify
  model (what `QuantizationDebugger` runs): each quantized op's output against the same
  op run in float on the same inputs, so only that op's own quantization counts. The
  accumulated view (quantized tensor vs float tensor, errors carried from upstream)
  runs outside TensorFlow, on LiteRT, in the parent (`harness/tflite/tensors.py`).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.convert.calibration import calibrate, calibrated_model, quantize

ISOLATED_SAMPLES = 32  # NumericVerify runs per sample in TF's interpreter: enough to rank layers


@dataclass(frozen=True)
class WorkerTools:
    """What these jobs borrow from the worker (passed in, so this module never imports it)."""

    model: Callable[[dict], Any]  # job -> LoadedModel (reused across jobs)
    inputs: Callable[[dict, Any], tuple]  # (job, model) -> (shapes, representative arrays, feed names)
    apply_options: Callable[..., None]  # (converter, options, rep, feed names)


def _calibration(job: dict, tools: WorkerTools) -> tuple[bytes, bool, float, float]:
    """(calibrated model, made by this job, seconds it took to get it, of which waiting for its lock)."""
    t0 = time.perf_counter()

    def make() -> bytes:
        model = tools.model(job)
        shapes, rep, feeds = tools.inputs(job, model)
        if rep is None:
            raise ValueError("calibration needs representative data; the job carries none")
        converter = model.make_converter(shapes)
        float_io = {k: v for k, v in job["options"].items()
                    if k not in ("inference_input_type", "inference_output_type")}
        tools.apply_options(converter, float_io, rep, feeds)
        return calibrate(converter)

    blob, made, waited = calibrated_model(Path(job["calibration"]), make)
    return blob, made, time.perf_counter() - t0, waited


def convert_calibrated(job: dict, tools: WorkerTools) -> dict:
    """A family flag set's artifact from the shared calibration (same outputs as a standalone conversion)."""
    import tensorflow as tf

    t0 = time.perf_counter()
    calibrated, made, calibrate_s, waited = _calibration(job, tools)
    blob = quantize(calibrated, job["options"], job.get("float_nodes") or ())
    extra: dict = {}
    if job["options"].get("metadata"):
        from harness.tflite.metadata import write_metadata

        blob = write_metadata(blob, job["options"]["metadata"])
        extra["metadata"] = sorted(job["options"]["metadata"])
    Path(job["out_path"]).write_bytes(blob)
    return {"convert_s": time.perf_counter() - t0, "size_bytes": len(blob), "tf_version": tf.__version__,
            "calibration": "made" if made else "reused", "calibrate_s": calibrate_s if made else 0.0,
            "calibration_wait_s": waited, **extra}


def quantize_step(job: dict, tools: WorkerTools) -> dict:
    """One search step: quantize with `float_nodes` kept float; seconds of the quantization alone."""
    calibrated, made, calibrate_s, _waited = _calibration(job, tools)
    t0 = time.perf_counter()
    blob = quantize(calibrated, job["options"], job.get("float_nodes") or ())
    quantize_s = time.perf_counter() - t0
    Path(job["out_path"]).write_bytes(blob)
    return {"size_bytes": len(blob), "quantize_s": quantize_s, "calibration": "made" if made else "reused",
            "calibrate_s": calibrate_s if made else 0.0}


def _direct_metrics() -> dict[str, Any]:
    """Per-sample metrics of (float op output, quantized op output, scale, zero point)."""

    def deq(q, scale, zp):
        return (q.astype(np.float64) - zp) * scale

    def rmse(f, q, scale, zp):
        return float(np.sqrt(np.mean((f.astype(np.float64) - deq(q, scale, zp)) ** 2)))

    def rmse_scale(f, q, scale, zp):
        return rmse(f, q, scale, zp) / scale if scale else float("nan")

    def rmse_range(f, q, scale, zp):
        span = float(np.max(f) - np.min(f))
        return rmse(f, q, scale, zp) / span if span > 0 else float("nan")

    def cosine(f, q, scale, zp):
        a, b = f.astype(np.float64).ravel(), deq(q, scale, zp).ravel()
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            return 1.0 if na == nb else 0.0
        return float(a @ b / (na * nb))

    def snr_db(f, q, scale, zp):
        a = f.astype(np.float64)
        noise = float(np.sum((a - deq(q, scale, zp)) ** 2))
        signal = float(np.sum(a**2))
        if noise == 0:
            return float("inf")
        return 10.0 * np.log10(signal / noise) if signal > 0 else float("-inf")

    def max_abs(f, q, scale, zp):
        return float(np.max(np.abs(f.astype(np.float64) - deq(q, scale, zp))))

    return {"rmse_scale": rmse_scale, "rmse_range": rmse_range, "cosine": cosine, "snr_db": snr_db,
            "max_abs": max_abs}


def _ordered(details: list[dict], names: list[str], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """ARRAYS (in the model's input order, NAMES) in the interpreter's input order."""
    if len(arrays) == 1:
        return arrays
    by_name = dict(zip(names, arrays, strict=True))
    out = []
    for d in details:
        hit = next((n for n in names if d["name"] in (n, f"serving_default_{n}:0") or f"_{n}:" in d["name"]), None)
        out.append(by_name[hit] if hit else arrays[len(out)])
    return out


def diagnose(job: dict, tools: WorkerTools) -> dict:
    """Isolated per-layer error of the job's flag set, and the quantized model it was measured on."""
    import tensorflow as tf

    calibrated, made, calibrate_s, _waited = _calibration(job, tools)
    float_io = {k: v for k, v in job["options"].items() if k not in ("inference_input_type", "inference_output_type")}
    float_nodes = job.get("float_nodes") or ()
    t0 = time.perf_counter()
    debug_model = quantize(calibrated, float_io, float_nodes, numeric_verify=True)
    quantized = quantize(calibrated, job["options"], float_nodes)
    Path(job["out_path"]).write_bytes(quantized)
    with np.load(job["eval_path"], allow_pickle=False) as data:
        arrays = [data[str(i)] for i in range(len(job["input_names"]))]
    count = min(len(arrays[0]), int(job.get("samples", ISOLATED_SAMPLES)))
    probe = tf.lite.Interpreter(model_content=debug_model)
    ordered = _ordered(probe.get_input_details(), job["input_names"], arrays)
    del probe

    def dataset():
        for i in range(count):
            yield [a[i : i + 1].astype(np.float32) for a in ordered]

    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model, debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics=_direct_metrics()))
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    layers = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        layers.append({
            "tensor": row["tensor_name"], "op": row["op_name"],
            "isolated": {k: float(row[k]) for k in ("rmse_scale", "rmse_range", "cosine", "snr_db", "max_abs")}
            | {"mean_error": float(row["mean_error"])},
            "scale": float(row["scale"]), "zero_point": int(float(row["zero_point"])),
        })
    return {"layers": layers, "isolated_samples": count, "diagnose_s": time.perf_counter() - t0,
            "calibration": "made" if made else "reused", "calibrate_s": calibrate_s if made else 0.0,
            "size_bytes": len(quantized), "tf_version": tf.__version__}
