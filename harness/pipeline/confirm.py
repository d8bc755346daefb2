"""The regression gate with confirmation: re-measure base and new now, interleaved, then judge.

`gate(base, new)` is what `tflite-harness compare` and the Python API (`harness.compare`) run. Stored results
only nominate latency changes (harness/report/compare.py); for each nominated pair whose
two artifacts are at hand (the path the row names, or the content-addressed cache, checked
against the row's sha256) and whose device opens, it measures the pair again:

- on the row's device (`open_device`), through the same `MeasureJob` path as a run
  (`measure_job` + `device.measure`), each measurement a fresh runner process (locally
  forked by a runner zygote that imported NumPy and LiteRT once: `for_confirmation`);
- for `rounds` rounds, alternating which goes first (A B, B A, A B, ...): on a busy machine
  the second of two back-to-back processes reads a few percent slower, and a fixed order
  would turn that into a change;
- each process timed for the row's min_seconds / rounds (at least 0.05 s) and runs / rounds
  (at least 5), without the evaluation pass: the whole confirmation costs about one
  measurement's timing plus one process start per measurement.

Each process is summarised by its p10 (and median, kept); the decision from the per-round
ratios is harness/core/confirmation.py's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from harness.config import Settings
from harness.core.confirmation import ROUND_QUANTILE, Remeasurement
from harness.core.hashing import hash_path
from harness.core.result import Result
from harness.devices.local import LocalDevice
from harness.devices.registry import open_device
from harness.devices.zygote import ForkingLocalDevice
from harness.pipeline.artifacts import Artifact, Prepared
from harness.pipeline.evaluate import measure_job
from harness.report.compare import Comparison, Thresholds, compare_results

DEFAULT_ROUNDS = 6
DEFAULT_CACHE_DIRS = (Path("results/cache"),)


def gate(base: list[Result], new: list[Result], thresholds: Thresholds | None = None, *,
         ignore: tuple[str, ...] = (), confirm: bool = True, rounds: int = DEFAULT_ROUNDS,
         cache_dirs: tuple[Path, ...] = DEFAULT_CACHE_DIRS, opener: Callable = open_device,
         progress: Callable[[str], None] | None = None) -> Comparison:
    """Compare NEW against BASE; confirm nominated latency changes by interleaved re-measurement.

    Without `confirm` (or when a pair cannot be re-measured) a latency change stays
    `unconfirmed`, and `thresholds.unconfirmed` ("warn" or "fail") says what that means.
    `Comparison.failed` is the gate's answer (the CLI's exit code 1).
    """
    if rounds < 2:
        raise ValueError(f"rounds={rounds}: confirmation needs at least 2 rounds")
    c = compare_results(base, new, thresholds, ignore)
    todo = c.to_confirm if confirm else []
    if not todo:
        return c
    by_key = {r.key: r for r in base}
    new_by_key = {r.key: r for r in new}
    pairs = [(row.key, by_key[row.key], new_by_key[row.new_key]) for row in todo]
    remeasured = remeasure(pairs, rounds, cache_dirs=cache_dirs, opener=opener, progress=progress)
    out = compare_results(base, new, thresholds, ignore, remeasured=remeasured)
    out.confirm_rounds = rounds if any(m.rounds for m in remeasured.values()) else None
    out.confirm_seconds = sum(m.seconds for m in remeasured.values())
    return out


def remeasure(pairs: list[tuple[tuple, Result, Result]], rounds: int, *,
              cache_dirs: tuple[Path, ...] = DEFAULT_CACHE_DIRS, opener: Callable = open_device,
              progress: Callable[[str], None] | None = None) -> dict[tuple, Remeasurement]:
    """Each (key, base row, new row) measured `rounds` times alternately on the new row's device."""
    out: dict[tuple, Remeasurement] = {}
    devices: dict[str, object] = {}
    failed_devices: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tflite-harness-confirm-") as tmp:
            for key, b, n in pairs:
                rem = Remeasurement(device=n.device)
                out[key] = rem
                jobs = []
                for row in (b, n):
                    job = _job(row, rounds, cache_dirs, Path(tmp) / f"{len(out)}-{len(jobs)}")
                    if isinstance(job, str):
                        rem.error = job
                        break
                    jobs.append(job)
                if rem.error:
                    continue
                if n.device not in devices and n.device not in failed_devices:
                    try:
                        devices[n.device] = for_confirmation(opener(n.device))
                    except Exception as exc:  # noqa: BLE001 - an unreachable device leaves the change unconfirmed
                        failed_devices[n.device] = f"device {n.device} unreachable ({' '.join(str(exc).split())})"
                if n.device in failed_devices:
                    rem.error = failed_devices[n.device]
                    continue
                if progress:
                    progress(f"confirming {n.model}/{n.flag_set} on {n.device}: {rounds} rounds A/B interleaved")
                _rounds(devices[n.device], jobs, rounds, rem)
    finally:
        for d in devices.values():
            try:
                d.close()
            except Exception:  # noqa: BLE001
                pass
    return out


def for_confirmation(device):
    """The device confirmation measures on: a local device's measurements forked by a runner
    zygote (harness/devices/zygote.py: a fresh process each, without paying the imports);
    any other device as it is."""
    if type(device) is LocalDevice:
        return ForkingLocalDevice(device.python)
    return device


def _rounds(device, jobs: list, rounds: int, rem: Remeasurement) -> None:
    start = time.perf_counter()
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        figures: dict[int, tuple[float, float]] = {}
        for side in order:
            m = device.measure(jobs[side])
            got = _figures(m) if m.status == "ok" else None
            if got is None:
                rem.error = f"re-measuring {'base' if side == 0 else 'new'} failed: {m.status} {m.reason}".strip()
                rem.seconds = time.perf_counter() - start
                return
            figures[side] = got
        rem.base_us.append(figures[0][0])
        rem.new_us.append(figures[1][0])
        rem.base_medians_us.append(figures[0][1])
        rem.new_medians_us.append(figures[1][1])
        rem.orders.append("AB" if order == (0, 1) else "BA")
    rem.seconds = time.perf_counter() - start


def _figures(m) -> tuple[float, float] | None:
    """(the deciding low quantile, the median) of one measurement."""
    if m.report.samples_us:
        low, median = np.percentile(m.report.samples_us, [ROUND_QUANTILE, 50])
        return float(low), float(median)
    agg = m.report.latency_aggregate or {}  # benchmark_model prints p5, its median, the mean
    median = agg.get("median", agg.get("avg"))
    low = agg.get("p5", median)
    return (float(low), float(median)) if low and median else None


def confirm_settings(row: Result, rounds: int) -> Settings:
    """The row's own settings (defaults where it has none), timed for 1/rounds of them."""
    known = {f.name for f in fields(Settings)}
    stored = {k: v for k, v in (getattr(row, "settings", None) or {}).items() if k in known}
    s = replace(Settings(), **stored, xnnpack=row.xnnpack)
    return replace(s, runs=max(5, s.runs // rounds), min_seconds=max(0.05, s.min_seconds / rounds), repeat=1)


def locate_artifact(row: Result, cache_dirs: tuple[Path, ...]) -> Path | None:
    """The .tflite whose bytes the row measured: its artifact_path or the cache's copy, sha-checked."""
    candidates = [Path(row.artifact_path)] if getattr(row, "artifact_path", None) else []
    if row.artifact:
        candidates += [Path(d) / "artifacts" / f"{row.artifact}.tflite" for d in cache_dirs]
    for path in candidates:
        if path.is_file() and (not row.artifact or hash_path(path) == row.artifact):
            return path
    return None


def _job(row: Result, rounds: int, cache_dirs: tuple[Path, ...], scratch: Path):
    """The row's MeasureJob for confirmation, or why there is none (a string)."""
    path = locate_artifact(row, cache_dirs)
    if path is None:
        where = ", ".join(str(d) for d in cache_dirs)
        return (f"artifact {(row.artifact or '?')[:12]} of {row.model}/{row.flag_set} not at hand "
                f"(not at its artifact_path nor in {where}; pass --cache-dir)")
    prepared = _prepared(row, path, scratch)
    if isinstance(prepared, str):
        return prepared
    art = Artifact(model=None, flag_set=row.flag_set, ok=True, sha=row.artifact or hash_path(path), path=path)
    # the row's own runtime API and accelerator: a CompiledModel row is confirmed through CompiledModel
    job = measure_job(art, prepared, row.threads, confirm_settings(row, rounds),
                      getattr(row, "runtime_api", None) or "interpreter", getattr(row, "accelerator", None) or "cpu")
    job.collect_outputs = False
    return job


def _prepared(row: Result, artifact: Path, scratch: Path) -> Prepared | str:
    """The evaluation inputs the row was measured on, or inputs of the right shapes from the file."""
    import json

    folder = Path(row.inputs_dir) if getattr(row, "inputs_dir", None) else None
    if folder is not None and (folder / "eval.npz").is_file() and (folder / "meta.json").is_file():
        return Prepared(model=None, ok=True, dir=folder, meta=json.loads((folder / "meta.json").read_text()))
    from harness.tflite.file import TFLiteFormatError, read_tflite

    try:
        info = read_tflite(artifact)
    except (TFLiteFormatError, OSError) as exc:
        return f"cannot read {artifact}: {exc}"
    rng = np.random.default_rng(0)
    arrays, names = {}, []
    for i, t in enumerate(info.inputs):
        shape = (1, *[d if d > 0 else 1 for d in t.shape[1:]])
        float_input = t.quantization is not None or t.dtype.startswith("float")
        arrays[str(i)] = (rng.random(shape, dtype=np.float32) if float_input
                          else np.zeros(shape, dtype=t.dtype))
        names.append(t.name)
    scratch.mkdir(parents=True, exist_ok=True)
    np.savez(scratch / "eval.npz", **arrays)
    return Prepared(model=None, ok=True, dir=scratch, meta={"inputs": [{"name": n} for n in names]})
