"""Where quantization hurts: rank a quantized model's layers by their error against float.

For each quantized op, two views:
- isolated: the op fed float inputs, so only its own quantization counts (TensorFlow's
  NumericVerify model, as QuantizationDebugger runs it; worker job `diagnose`);
- accumulated: the quantized tensor against the float tensor of the same name, both
  models run on the same evaluation samples on LiteRT (`tflite/tensors.py`), so errors
  carried from upstream count too.
Both read the model's shared calibration (`convert/calibration.py`), so diagnosing and
every search step after it cost a quantization each, not a conversion.

The quantizer backend (`quantize_search.py`) has no NumericVerify model: its layers carry
`added_cosine_loss` (the accumulated cosine loss an op adds over its inputs) instead of
`isolated`, and every presentation names that metric (`Diagnosis.metric`).

`DiagnoseSession` holds what diagnosis and the budget search share: a prepared model,
the converter pool and the local device. The Python API is `pipeline/session.py: diagnose`.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, Settings, model_payload
from harness.convert.cache import atomic_write, hash_json
from harness.convert.calibration import why_not_diagnosable
from harness.core.errors import HarnessError, UsageError
from harness.core.flag_sets import FlagSet
from harness.core.native_log import native_stderr_to
from harness.pipeline.artifacts import Prepared

DIAGNOSIS_FORMAT = 1
ACCUMULATED_SAMPLES = 16  # each sample runs both models with every tensor kept
_SKIP_OPS = {"QUANTIZE", "DEQUANTIZE"}  # I/O conversions, not layers one could keep float
ADDED_COSINE_LOSS = "added_cosine_loss"
RANKING = {"metric": ADDED_COSINE_LOSS,
           "meaning": "1 - cosine of the op's output against float (accumulated, on LiteRT), less the worst "
                      "of its inputs': the error the op adds; there is no isolated (NumericVerify) figure"}


@dataclass
class Layer:
    """One quantized op: where it is, and how far its output is from float.

    Which figure ranks it depends on the backend, and only that one is filled: `isolated`
    (TensorFlow's NumericVerify: rmse_scale, rmse_range, cosine, snr_db, max_abs) on the TF
    backend, `{}` on the quantizer's; `added_cosine_loss` (1 - cosine of the op's accumulated
    output, less the worst of its inputs') on the quantizer backend, None on TF's."""

    index: int  # position of the op in the quantized model's subgraph 0 (-1: not found there)
    tensor: str  # output tensor name: what `float_layers` / denylisted_nodes name
    label: str  # a short name for tables (the Keras layer, where the name shows it)
    op: str
    isolated: dict[str, float]
    accumulated: dict[str, float] | None = None
    scale: float | None = None
    zero_point: int | None = None
    added_cosine_loss: float | None = None


@dataclass
class Diagnosis:
    model: str
    flag_set: str
    layers: list[Layer]  # worst first by `metric`
    isolated_samples: int
    accumulated_samples: int
    quantized_path: str
    float_path: str
    float_layers: list[str] = field(default_factory=list)  # tensors kept float in the diagnosed model
    search: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # isolated_s (worker), accumulated_s (LiteRT)
    backend: str = "tf_converter"  # which path made the quantized models: tf_converter or quantizer

    @property
    def metric(self) -> str:
        """What ranks the layers: `isolated` (TF's NumericVerify rmse/scale) or `added_cosine_loss`."""
        return ADDED_COSINE_LOSS if self.backend == "quantizer" else "isolated"

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `diagnose --json`. The TF backend's shape is unchanged (`isolated` per layer);
        the quantizer's has `ranking` and each layer's `added_cosine_loss` instead, no `isolated`."""
        from harness.core.result import json_safe

        drop = "isolated" if self.metric == ADDED_COSINE_LOSS else ADDED_COSINE_LOSS
        samples = ({"accumulated": self.accumulated_samples} if self.metric == ADDED_COSINE_LOSS
                   else {"isolated": self.isolated_samples, "accumulated": self.accumulated_samples})
        return json_safe({
            "model": self.model, "flag_set": self.flag_set,
            **({"ranking": RANKING} if self.metric == ADDED_COSINE_LOSS else {}),
            "layers": [{k: v for k, v in asdict(x).items() if k != drop} for x in self.layers],
            "samples": samples,
            "quantized_model": self.quantized_path, "float_model": self.float_path,
            "float_layers": self.float_layers, "timings": self.timings, "backend": self.backend,
            **({"search": self.search} if self.search is not None else {}),
        })

    def compact(self) -> dict[str, Any]:
        """What a result row keeps (store and reports): the ranking with one figure per view
        (TF: isolated and accumulated rmse/scale; quantizer: added cosine loss and accumulated rmse/scale)."""
        if self.metric == ADDED_COSINE_LOSS:
            return {"ranking": RANKING,
                    "layers": [{"tensor": x.tensor, "label": x.label, "op": x.op, "index": x.index,
                                ADDED_COSINE_LOSS: x.added_cosine_loss,
                                "accumulated": (x.accumulated or {}).get("rmse_scale")} for x in self.layers]}
        return {"layers": [{"tensor": x.tensor, "label": x.label, "op": x.op, "index": x.index,
                            "isolated": x.isolated.get("rmse_scale"),
                            "accumulated": (x.accumulated or {}).get("rmse_scale")} for x in self.layers]}


def short_labels(tensors: list[str]) -> dict[str, str]:
    """'functional_1/functional_1/culprit_1/MatMul;...' -> 'culprit': the Keras layer that made the tensor.

    The model's own scope (the first component every long name shares, and functional_N /
    sequential_N / model_N) is dropped; where two tensors would get one label, both keep their
    longer path, and the tensor name itself if that still collides."""
    split = {t: [p for p in t.split(";")[0].split("/") if p] for t in tensors}
    while True:
        long = [v for v in split.values() if len(v) > 2]
        heads = {v[0] for v in long}
        if len(long) < 2 or len(heads) != 1:
            break
        head = heads.pop()
        split = {t: v[1:] if len(v) > 2 and v[0] == head else v for t, v in split.items()}
    for t, v in split.items():
        while len(v) > 2 and re.fullmatch(r"(functional|sequential|model)(_\d+)?", v[0]):
            v = v[1:]
        split[t] = v or [t]
    short = {t: re.sub(r"_\d+$", "", v[0]) if len(v) > 1 else v[0] for t, v in split.items()}
    longer = {t: "/".join(v) for t, v in split.items()}
    counts = {x: list(short.values()).count(x) for x in short.values()}
    labels = {t: short[t] if counts[short[t]] == 1 else longer[t] for t in tensors}
    counts = {x: list(labels.values()).count(x) for x in labels.values()}
    return {t: labels[t] if counts[labels[t]] == 1 else t for t in tensors}


class DiagnoseSession:
    """One model under one int8-family flag set: its diagnosis and any number of search steps."""

    def __init__(self, builder, m: ModelSpec, fs: FlagSet, p: Prepared, settings: Settings):
        if not p.ok:
            raise HarnessError(f"{m.name}: preparing the model failed: {p.reason}")
        if m.kind == "tflite":
            raise UsageError(f"{m.name}: diagnose needs the original model (float reference and calibration), "
                             "not a .tflite; give the .keras, SavedModel or file.py:function")
        self.builder, self.model, self.flag_set, self.prepared, self.settings = builder, m, fs, p, settings
        why = why_not_diagnosable(fs.converter_options())
        if why:
            raise UsageError(f"flag set {fs.name!r}: {why}")
        self.calibration = builder.calibration_path(m, fs)
        if self.calibration is None:
            raise UsageError(f"flag set {fs.name!r} is not full-integer quantization from representative data; "
                             "diagnose one of int8, int8_float_io, int16x8 or a flag set like them")
        self.input_names = p.meta.input_names
        self._diagnosis: Diagnosis | None = None

    # ------------------------------------------------------------------ worker jobs
    def job(self, op: str, out_path: Path, float_nodes: list[str] | tuple = (), **extra: Any) -> dict:
        p = self.prepared
        return {"op": op, "model": model_payload(self.model), "options": self.flag_set.converter_options(),
                "rep_path": str(p.dir / "representative.npz"), "shapes": p.meta.input_shapes,
                "calibration": str(self.calibration), "out_path": str(out_path), "float_nodes": list(float_nodes),
                **extra}

    def run_job(self, job: dict) -> dict:
        answer = self.builder.submit(job).result()
        if not answer.ok:
            raise HarnessError(f"{self.model.name}/{self.flag_set.name}: {job['op']} failed: "
                               f"{answer.error or 'the worker gave no answer'}")
        return answer.data

    def quantized(self, float_nodes: list[str]) -> tuple[dict, str, Path]:
        """The model quantized from the calibration with FLOAT_NODES float: (worker data, sha,
        path). Cached like the diagnosis (calibration, flag set, float layers): a second search
        of the model, with another budget, from the API or a campaign, re-quantizes none of the
        steps it shares with an earlier one (each was a worker job, and a TensorFlow import for
        the first)."""
        cache = self.builder.cache
        key = hash_json({"format": DIAGNOSIS_FORMAT, "op": "quantize", "calibration": self.calibration.name,
                         "options": self.flag_set.converter_options(), "float": sorted(float_nodes)})
        meta_path = cache.root / "quantized" / f"{key}.json"
        if meta_path.is_file() and self.calibration.is_file():
            raw = json.loads(meta_path.read_text())
            path = cache.artifact_path(raw["sha"])
            if path.is_file():
                return raw["data"], raw["sha"], path
        out = cache.tmp_path(".tflite")
        data = self.run_job(self.job("quantize", out, float_nodes))
        sha, path = cache.adopt_artifact(out)
        atomic_write(meta_path, json.dumps({"sha": sha, "data": data}).encode())
        return data, sha, path

    # ------------------------------------------------------------------ diagnosis
    def _diagnosis_key(self, float_nodes: list[str]) -> str:
        return hash_json({"format": DIAGNOSIS_FORMAT, "calibration": self.calibration.name,
                          "options": self.flag_set.converter_options(), "float": sorted(float_nodes),
                          "data": self.builder.reference_key(self.model)})

    def diagnosis(self, float_nodes: list[str] | tuple = ()) -> Diagnosis:
        """The per-layer ranking (cached by calibration, flag set, float layers and data)."""
        float_nodes = list(float_nodes)
        if self._diagnosis is not None and self._diagnosis.float_layers == float_nodes:
            return self._diagnosis
        cache = self.builder.cache
        key = self._diagnosis_key(float_nodes)
        meta_path = cache.root / "diagnoses" / f"{key}.json"
        if meta_path.is_file():
            raw = json.loads(meta_path.read_text())
            if Path(raw["quantized_path"]).is_file() and self.calibration.is_file():
                raw["layers"] = [Layer(**{**x, "isolated": _numbers(x["isolated"]),
                                          "accumulated": _numbers(x["accumulated"]) if x["accumulated"] else None})
                                 for x in raw["layers"]]
                self._diagnosis = Diagnosis(**raw)
                return self._diagnosis
        out = cache.tmp_path(".tflite")
        data = self.run_job(self.job("diagnose", out, float_nodes, eval_path=str(self.prepared.dir / "eval.npz"),
                                     input_names=self.input_names))
        _sha, qpath = cache.adopt_artifact(out)
        self._diagnosis = self._build(data, qpath, float_nodes)
        from harness.core.result import json_safe

        atomic_write(meta_path, json.dumps(json_safe(asdict(self._diagnosis))).encode())
        return self._diagnosis

    def _build(self, data: dict, qpath: Path, float_nodes: list[str]) -> Diagnosis:
        import numpy as np

        from harness.tflite.file import read_tflite
        from harness.tflite.tensors import accumulated_error

        info = read_tflite(qpath)
        producer = {}
        for k, (_ins, outs) in enumerate(info.operator_io):
            for t in outs:
                if t >= 0:
                    producer.setdefault(info.tensors[t].name, k)
        raw = [x for x in data["layers"] if x["op"] not in _SKIP_OPS]
        with np.load(self.prepared.dir / "eval.npz", allow_pickle=False) as ev:
            arrays = [ev[str(i)] for i in range(len(self.input_names))]
        n_acc = min(ACCUMULATED_SAMPLES, len(arrays[0]))
        t0 = time.perf_counter()
        with native_stderr_to(self.builder.out_dir / "logs" / "runtime.log"):  # LiteRT's INFO lines: the log's
            acc = accumulated_error(self.calibration, qpath, [x["tensor"] for x in raw], self.input_names, arrays,
                                    n_acc)
        timings = {"isolated_s": float(data.get("diagnose_s", 0.0)), "accumulated_s": time.perf_counter() - t0}
        labels = short_labels([x["tensor"] for x in raw])
        layers = [Layer(index=producer.get(x["tensor"], -1), tensor=x["tensor"], label=labels[x["tensor"]],
                        op=x["op"], isolated=x["isolated"], accumulated=acc.get(x["tensor"]), scale=x["scale"],
                        zero_point=x["zero_point"]) for x in raw]
        layers.sort(key=lambda x: -_finite(x.isolated.get("rmse_scale")))
        return Diagnosis(self.model.name, self.flag_set.name, layers, int(data["isolated_samples"]), n_acc,
                         str(qpath), str(self.calibration), float_nodes, timings=timings)

    def resolve_layers(self, names: list[str]) -> list[str]:
        """Tensor names for NAMES given as tensor names or short labels; a one-line error otherwise."""
        layers = self.diagnosis().layers
        by_label = {x.label: x.tensor for x in layers} | {x.tensor: x.tensor for x in layers}
        missing = [n for n in names if n not in by_label]
        if missing:
            known = ", ".join(x.label for x in layers[:8])
            raise UsageError(f"--float-layers: {', '.join(missing)} is not a quantized layer of {self.model.name}; "
                             f"use a name from `diagnose` (worst first: {known})")
        return [by_label[n] for n in names]

    def close(self) -> None:
        self.builder.close()


def _numbers(d: dict) -> dict:
    """JSON's 'inf'/'-inf' strings (core/result.py json_safe) back to floats."""
    return {k: float(v) if v in ("inf", "-inf") else (math.nan if v is None else v) for k, v in d.items()}


def _finite(v: float | None) -> float:
    return v if v is not None and math.isfinite(v) else (-1.0 if v is None or math.isnan(v) else 1e30)


def op_profile_text(binary: Path, model: Path, threads: int = 1, timeout_s: float = 300.0) -> str:
    """benchmark_model's output for MODEL with per-op profiling, on this host.

    XNNPACK off: ops inside the delegate are profiled under XNNPACK's own names, which do
    not say which graph node they are; builtin kernels are named by their output tensor."""
    import subprocess

    cmd = [str(binary), f"--graph={model}", "--enable_op_profiling=true", "--use_xnnpack=false",
           f"--num_threads={threads}", "--num_runs=20", "--min_secs=0", "--warmup_runs=2", "--warmup_min_secs=0"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"--benchmark-model {binary}: could not profile {model.name}: {exc}") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split()[-30:])
        raise HarnessError(f"--benchmark-model {binary} exited {proc.returncode}: {tail}")
    return proc.stdout + proc.stderr
