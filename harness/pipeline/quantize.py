"""Quantizer flag sets in a campaign: the fp32 artifact, one shared calibration, the recipe.

A quantizer flag set's artifact is the AI Edge Quantizer's output on the model's fp32
artifact, the one the campaign converts and caches anyway (a given `.tflite` is its own
float model). Static recipes need activation ranges: they are recorded once per float model
and representative data (keyed like the int8 family's calibration) and shared by every
static flag set. The quantizer's jobs run in a worker pool that never imports TensorFlow
(`WorkerPool(light=True)`), with the same crash isolation and time limit as conversions.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from harness.convert.cache import CACHE_FORMAT, hash_json, hash_path, savez_atomic
from harness.convert.pool import WorkerAnswer, WorkerPool
from harness.core import statuses
from harness.core.flag_sets import BUILTIN_FLAG_SETS, FlagSet

if TYPE_CHECKING:
    from harness.config import ModelSpec
    from harness.pipeline.artifacts import Prepared
    from harness.pipeline.build import Builder

QUANTIZER_INPUT = "quantizer_input"  # failure category: the recipe, its rules or its data as given


def quantizer_version() -> str | None:
    """The installed ai-edge-quantizer's version, for cache keys (no import of the package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-quantizer")
    except PackageNotFoundError:
        return None


def tool_key(fs: FlagSet) -> dict | None:
    """What the cache key holds about FS's tool beyond its options (the recipe is in those)."""
    return {"tool": "quantizer", "version": quantizer_version()} if fs.quantizer else None


class _Failed(Exception):
    def __init__(self, answer: WorkerAnswer):
        super().__init__(answer.error)
        self.answer = answer


class QuantizeState:
    """One builder's quantizer pool, fp32 artifacts and calibrations (each made once)."""

    def __init__(self, b: Builder):
        self.lock = threading.Lock()
        self.floats: dict[str, Future] = {}
        self.calibrations: dict[str, Future] = {}
        self.pool = WorkerPool(b.workers, b.out_dir / "logs", b.campaign.settings.timeout_s, light=True)

    def once(self, table: dict[str, Future], key: str, make) -> object:
        """MAKE() the first time KEY is asked for; later callers wait for that answer."""
        with self.lock:
            fut = table.get(key)
            mine = fut is None
            if mine:
                fut = table[key] = Future()
        if mine:
            try:
                fut.set_result(make())
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the same failure
                fut.set_exception(exc)
        return fut.result()

    def close(self, kill: bool = False) -> None:
        self.pool.close(kill=kill)


def state(b: Builder) -> QuantizeState:
    st = getattr(b, "quantize_state", None)
    if st is None:
        st = b.quantize_state = QuantizeState(b)
    return st


def start_quantize(b: Builder, m: ModelSpec, fs: FlagSet, p: Prepared | None, out_path: Path) -> Future:
    """Future[WorkerAnswer] of FS's recipe on M's fp32 artifact (a thread waits for its steps)."""
    st = state(b)
    fut: Future = Future()

    def run() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            answer = _quantize(b, st, m, fs, p, out_path)
        except _Failed as failed:
            answer = failed.answer
        except Exception as exc:  # noqa: BLE001 - becomes the row's reason
            answer = WorkerAnswer(False, error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
        fut.set_result(answer)

    threading.Thread(target=run, daemon=True, name=f"quantize-{m.name}-{fs.name}").start()
    return fut


def float_artifact(b: Builder, st: QuantizeState, m: ModelSpec, p: Prepared | None) -> Path:
    """M's fp32 artifact: cached, or converted once now (and cached as the fp32 flag set's)."""
    if m.kind == "tflite":
        return m.path
    fp32 = BUILTIN_FLAG_SETS["fp32"]

    def make() -> Path:
        key = b.conversion_key(m, fp32)
        cached = b.cache.conversion(key)
        if cached is None and planned(b, m, key):  # the campaign converts it (here or on a cluster): wait
            b.adopted(key).wait(timeout=b.campaign.settings.timeout_s + 60)
            cached = b.cache.conversion(key)
        if cached is None:
            job, out = b._convert_job(m, fp32, p)
            art = b._finish_conversion(m, fp32, key, out, b.submit(job).result(), p)
            cached = b.cache.conversion(key) or {"artifact": art.sha if art.ok else None, "reason": art.reason}
        if not cached.get("artifact"):
            raise _Failed(WorkerAnswer(False, error=f"the fp32 conversion it starts from failed: "
                                                    f"{cached.get('reason')}", error_type="FloatFailed"))
        return b.cache.artifact_path(cached["artifact"])

    return st.once(st.floats, m.name, make)


def planned(b: Builder, m: ModelSpec, key: str) -> bool:
    """Whether the campaign itself converts M to fp32 (conversion KEY): then the quantizer waits
    for that conversion. Converting it again would import TensorFlow a second time, on the
    driver when the campaign's conversions run on a Ray cluster."""
    return any(not fs.quantizer and not fs.budget and b.conversion_key(m, fs) == key for fs in b.campaign.flag_sets)


def rep_path(m: ModelSpec, p: Prepared | None) -> Path | None:
    if p is None or p.dir is None:
        return None
    rep = p.dir / "representative.npz"
    return rep if rep.is_file() else (p.dir / "eval.npz" if (p.dir / "eval.npz").is_file() else None)


def calibration_file(b: Builder, st: QuantizeState, m: ModelSpec, fs: FlagSet, float_path: Path,
                 rep: Path) -> Path:
    """The float model's tensor ranges on its representative data: once per model and data."""
    count = int(fs.options.get("representative_count", 100))
    key = hash_json({"format": CACHE_FORMAT, "float": hash_path(float_path), "data": hash_path(rep),
                     "count": count, "quantizer": quantizer_version()})
    path = b.cache.root / "quantizer-calibrations" / f"{key}.npz"

    def make() -> Path:
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        answer = st.pool.submit({"op": "tool", "tool": "quantizer", "action": "calibrate",
                                 "float_path": str(float_path), "rep_path": str(rep), "count": count,
                                 "out_path": str(path)}).result()
        if not answer.ok:
            raise _Failed(answer)
        b.events.note(f"{m.name}: quantizer calibration recorded ({answer.data.get('tensors')} tensors)")
        return path

    return st.once(st.calibrations, key, make)


def _quantize(b: Builder, st: QuantizeState, m: ModelSpec, fs: FlagSet, p: Prepared | None,
              out_path: Path) -> WorkerAnswer:
    float_path = float_artifact(b, st, m, p)
    rep = rep_path(m, p)
    calibration = None
    if fs.needs_representative_data and rep is not None:
        calibration = calibration_file(b, st, m, fs, float_path, rep)
    answer = st.pool.submit({
        "op": "tool", "tool": "quantizer", "float_path": str(float_path), "quantizer": fs.quantizer,
        "calibration": str(calibration) if calibration else None, "rep_path": str(rep) if rep else None,
        "count": int(fs.options.get("representative_count", 100)), "out_path": str(out_path),
    }).result()
    if answer.ok and calibration is not None and rep is not None and rep.name == "eval.npz":
        answer.data.setdefault("notes", []).append("calibrated on the evaluation inputs (no representative data)")
    return answer


def failure(answer: WorkerAnswer) -> tuple[str, str, str] | None:
    """(status, reason, category) of a quantizer job's failure, or None: classify it as usual."""
    if answer.error_type == "QuantizerInputError":
        return statuses.INPUT_ERROR, answer.error or "", QUANTIZER_INPUT
    if answer.error_type == "QuantizerUnsupported":
        return statuses.CONVERSION_FAILED, answer.error or "", "quantization_unsupported"
    if answer.error_type in ("ToolFailed", "ToolMissing"):  # tflite_convert: its own words, not the log's
        return statuses.CONVERSION_FAILED, answer.error or "", "tool_failed" if answer.error_type == "ToolFailed" \
            else "tool_missing"
    return None


def tflite_flag_sets(b: Builder, m: ModelSpec) -> list[FlagSet]:
    """The flag sets a given float `.tflite` takes besides itself: the quantizer's."""
    return [fs for fs in b.campaign.flag_sets if fs.quantizer] if m.kind == "tflite" else []


def float_reference(m: ModelSpec, folder: Path, arrays: list) -> bool:
    """Reference outputs of a given float `.tflite` on its evaluation inputs, so its quantizer
    rows have drift against it (LiteRT only, as the runner; no TensorFlow). False: quantized
    inputs or outputs (scales), not a float model to compare to, or LiteRT could not run it
    (its rows then say so when they run it). A user's file: LiteRT runs it in a child process."""

    from harness.tflite.native import NativeCrash, call_in_child

    try:
        outputs = call_in_child(float_outputs, str(m.path), arrays, what="LiteRT")
    except (NativeCrash, RuntimeError):
        return False
    if outputs is None:
        return False
    savez_atomic(folder / "reference.npz", **{str(k): o for k, o in enumerate(outputs)})
    return True


def float_outputs(path: str, arrays: list) -> list | None:
    """The model's outputs on ARRAYS, one sample at a time (batch 1); None for quantized I/O."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if any(d["quantization"][0] for d in [*ins, *outs]):
        return None
    collected: list[list] = [[] for _ in outs]
    for i in range(len(arrays[0])):
        for d, a in zip(ins, arrays, strict=True):
            interp.set_tensor(d["index"], a[i:i + 1].astype(d["dtype"]))
        interp.invoke()
        for k, d in enumerate(outs):
            collected[k].append(interp.get_tensor(d["index"])[0].copy())
    return [np.stack(c) for c in collected]
