"""Intermediate tensors of a `.tflite`, run on LiteRT, and the accumulated error between two models.

The accumulated view of quantization error compares each quantized op's output tensor
with the tensor of the same name in the float model, both run on the same inputs, so a
layer's number includes everything that went wrong upstream. Both models run on the
LiteRT interpreter (`ai_edge_litert`, never TensorFlow) with
`experimental_preserve_all_tensors`, so intermediate tensors stay readable after
`invoke()`; quantized values are dequantized with their own scale and zero point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class _Sums:
    """Running sums over samples for one tensor (float64)."""

    sq_err: float = 0.0
    signal: float = 0.0
    count: int = 0
    max_abs: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    cosines: list[float] = field(default_factory=list)
    scale: float | None = None


def _interpreter(path: Path):
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is what we do
        warnings.simplefilter("ignore", UserWarning)
        interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    return interp


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), dtype=np.float64)
    if value.dtype.kind in "iu" and scales.size:
        zps = np.asarray(q.get("zero_points", [0] * scales.size), dtype=np.float64)
        if scales.size > 1:  # per-axis: broadcast along the quantized dimension
            shape = [1] * value.ndim
            shape[q.get("quantized_dimension", 0)] = scales.size
            scales, zps = scales.reshape(shape), zps.reshape(shape)
        return (value.astype(np.float64) - zps) * scales
    return value.astype(np.float64)


def _feed(interp, input_names: list[str], arrays: list[np.ndarray], i: int) -> None:
    details = interp.get_input_details()
    for k, d in enumerate(details):
        hit = next((n for n in input_names if d["name"] in (n, f"serving_default_{n}:0") or f"_{n}:" in d["name"]), None)
        x = arrays[input_names.index(hit)] if hit else arrays[k]
        v = x[i : i + 1]
        scale, zp = d["quantization"]
        if np.dtype(d["dtype"]).kind in "iu" and scale:
            info = np.iinfo(d["dtype"])
            v = np.clip(np.round(v / scale + zp), info.min, info.max)
        interp.set_tensor(d["index"], v.astype(d["dtype"]))


def _by_name(interp) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in interp.get_tensor_details():
        out.setdefault(d["name"], d)
    return out


def accumulated_error(float_model: Path, quant_model: Path, tensors: Iterable[str], input_names: list[str],
                      arrays: list[np.ndarray], samples: int) -> dict[str, dict[str, float]]:
    """Per tensor name: rmse_scale, rmse_range, cosine, snr_db and max_abs of quantized vs float.

    Tensors missing from either model (renamed by the converter) are left out."""
    f_interp, q_interp = _interpreter(float_model), _interpreter(quant_model)
    f_names, q_names = _by_name(f_interp), _by_name(q_interp)
    wanted = [t for t in tensors if t in f_names and t in q_names]
    sums = {t: _Sums() for t in wanted}
    for i in range(min(samples, len(arrays[0]))):
        _feed(f_interp, input_names, arrays, i)
        _feed(q_interp, input_names, arrays, i)
        f_interp.invoke()
        q_interp.invoke()
        for t in wanted:
            fd, qd = f_names[t], q_names[t]
            try:
                a = _dequantize(f_interp.get_tensor(fd["index"]), fd)
                b = _dequantize(q_interp.get_tensor(qd["index"]), qd)
            except ValueError:  # a tensor the runtime did not keep (e.g. folded away)
                continue
            if a.shape != b.shape:
                continue
            s = sums[t]
            err = b - a
            s.sq_err += float(np.sum(err**2))
            s.signal += float(np.sum(a**2))
            s.count += a.size
            s.max_abs = max(s.max_abs, float(np.max(np.abs(err))) if err.size else 0.0)
            s.lo, s.hi = min(s.lo, float(a.min())), max(s.hi, float(a.max()))
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            s.cosines.append(float(a.ravel() @ b.ravel() / (na * nb)) if na and nb else float(na == nb))
            scales = (qd.get("quantization_parameters") or {}).get("scales", [])
            s.scale = float(np.mean(scales)) if len(scales) else None
    out = {}
    for t, s in sums.items():
        if not s.count:
            continue
        rmse = math.sqrt(s.sq_err / s.count)
        span = s.hi - s.lo
        out[t] = {
            "rmse_scale": rmse / s.scale if s.scale else math.nan,
            "rmse_range": rmse / span if span > 0 else math.nan,
            "cosine": float(np.mean(s.cosines)),
            "snr_db": math.inf if s.sq_err == 0 else (10 * math.log10(s.signal / s.sq_err) if s.signal else -math.inf),
            "max_abs": s.max_abs,
        }
    return out
