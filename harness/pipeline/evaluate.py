"""Stage two of a campaign: measure one artifact on one device and judge its outputs.

The device returns raw timings and outputs; this module turns them into a result row:
latency statistics from the raw samples (or from benchmark_model's aggregates), memory,
health checks, then drift against the original model's outputs.
"""

from __future__ import annotations

import time

import numpy as np

from harness.config import Settings
from harness.core import statuses
from harness.core.result import Result
from harness.core.runtimes import INTERPRETER
from harness.core.stats import (
    FAR_COSINE,
    ValidityBounds,
    aggregate_problems,
    align_outputs,
    compute_drift,
    health_problems,
    is_classifier_like,
    latency_stats,
    quantile_ci,
    spread_figures,
    unique_argmax,
    validity_problems,
)
from harness.devices.base import MeasureJob, Measurement, RunnerReport
from harness.pipeline.artifacts import Artifact, Prepared


def measure_job(art: Artifact, prepared: Prepared, threads: int, s: Settings,
                runtime_api: str = "interpreter", accelerator: str = "cpu") -> MeasureJob:
    return MeasureJob(
        runtime_api=runtime_api, accelerator=accelerator,
        artifact=art.path, artifact_sha=art.sha, inputs_npz=prepared.dir / "eval.npz",
        input_names=prepared.meta.input_names, threads=threads, xnnpack=s.xnnpack,
        warmup_runs=s.warmup_runs, runs=s.runs, min_seconds=s.min_seconds, max_seconds=s.max_seconds,
        timeout_s=s.timeout_s, repeat=s.repeat, pin_cpu=s.pin_cpu,
    )


# The settings that decide a latency figure besides threads and xnnpack (which are in a row's key):
# compare calls two rows "the same artifact" only when these are equal too.
MEASUREMENT_SETTINGS = ("warmup_runs", "runs", "min_seconds", "max_seconds", "repeat", "pin_cpu")


def measurement_settings(s: Settings) -> dict:
    return {name: getattr(s, name) for name in MEASUREMENT_SETTINGS}


def measure_on(device, art: Artifact, prepared: Prepared, threads: int, s: Settings,
               result: Result) -> tuple[Result, Measurement]:
    """Run the job on DEVICE and fill RESULT; returns the raw measurement too (its outputs)."""
    result.eval_source = prepared.meta.eval_source
    result.settings = measurement_settings(s)
    result.inputs_dir = str(prepared.dir) if prepared.dir else None
    # how the model's data was read (samples that kept a batch axis, the graph loader): once per row
    result.warnings.extend(n for n in prepared.meta.notes if n not in result.warnings)
    result.started_at = time.time()
    try:
        result.device_info = device.info()
    except Exception as exc:  # noqa: BLE001 - info is informative; the measurement decides
        result.warnings.append(f"device info unavailable: {exc}")
    m = device.measure(measure_job(art, prepared, threads, s, result.runtime_api, result.accelerator))
    result.finished_at = time.time()
    fill_result(result, m, prepared, s)
    notes = list(dict.fromkeys([*art.meta.notes, *prepared.meta.notes]))
    if result.fully_accelerated is False and result.accelerator != "cpu":  # the accelerator took only part
        notes.append(next(w for w in result.warnings if w.startswith("fully_accelerated: no")))
    if notes and result.status == statuses.OK and not result.reason:  # the reason column: "or a note"
        result.reason = "note: " + "; ".join(notes)
    return result, m


def judge_validity(result: Result, report: RunnerReport, s: Settings) -> None:
    """`valid`, or the reasons not to trust the p50: too few runs or seconds, an unstable
    estimate (its 95 % CI, processes that disagree under --repeat), throttling. The spread
    (CV, tail) is kept with the latency figures as information, not as a reason."""
    bounds = ValidityBounds(s.max_cv, s.max_tail_ratio)
    runs = s.runs * max(1, report.processes)
    if result.samples_us:
        for q, key in ((0.5, "p50_ci"), (0.9, "p90_ci")):
            ci = quantile_ci(result.samples_us, q)
            if ci is not None and result.latency_us is not None:
                result.latency_us[key] = list(ci)
        spread = spread_figures(result.samples_us)
        if result.latency_us is not None:
            result.latency_us.update(spread)
        if spread.get("cv", 0) > bounds.max_cv or spread.get("tail_ratio", 0) > bounds.max_tail_ratio:
            result.warnings.append(f"wide spread (CV {spread['cv']:.0%}, p99/p50 {spread['tail_ratio']:.1f}): "
                                   "information only, the p50 CI decides validity")
        problems = validity_problems(
            result.samples_us, runs=runs, min_seconds=s.min_seconds, timed_s=report.timed_s, bounds=bounds,
            process_medians=report.process_medians_us,
        )
    elif report.latency_aggregate:
        problems = aggregate_problems(report.latency_aggregate, runs=runs, bounds=bounds)
    else:
        problems = ["no latency samples nor aggregates"]
    if report.measured_during_conversion:
        problems.append("measured while conversions were running")
    problems += [w for w in report.warnings if "throttl" in w or "temperature" in w or "hot" in w]
    result.validity = "valid" if not problems else "; ".join(problems)


def fill_result(result: Result, m: Measurement, prepared: Prepared, s: Settings | None = None) -> None:
    rep = m.report
    result.runtime = rep.runtime
    result.runtime_version = rep.runtime_version
    result.warnings.extend(rep.warnings)
    if rep.device_state:
        result.device_info = {**result.device_info, "state": rep.device_state}
    if rep.delegate:
        result.device_info = {**result.device_info, "delegate": rep.delegate}
    fill_runtime(result, rep)
    if m.status not in statuses.MEASURED:
        result.status, result.reason = m.status, m.reason
        if m.status == statuses.UNSUPPORTED and result.runtime_api == INTERPRETER:
            flex = [o for o in result.ops if o.startswith("Flex")]
            custom = [o for o in result.ops if o not in flex and not o.isupper()]
            if flex:
                result.reason = (f"Flex ops {', '.join(flex)} need the Flex delegate, which this runtime lacks; "
                                 "run it with a Flex-enabled benchmark_model build")
            elif custom:
                result.reason = f"custom ops {', '.join(custom)} have no registered kernel here"
        return
    result.init_us = rep.init_us
    result.first_us = rep.first_us
    result.warmup_us = float(np.mean(rep.warmup_us)) if rep.warmup_us else rep.warmup_avg_us
    # numpy, not a Python loop: a fast model gives ~10^5 samples per row
    result.samples_us = (np.round(np.asarray(rep.samples_us, dtype=np.float64), 3).tolist()
                         if rep.samples_us else [])
    stats = latency_stats(result.samples_us)
    if stats:
        result.latency_us = stats.to_dict()
    elif rep.latency_aggregate:
        # benchmark_model prints aggregates only: keep what it gives, say that it is not ours
        result.latency_us = {k: v for k, v in rep.latency_aggregate.items() if v is not None}
        result.warnings.append("latency from benchmark_model aggregates (no raw samples)")
    if s is not None:
        judge_validity(result, rep, s)
    if rep.peak_rss_delta_kb is not None:
        result.peak_rss_mb = rep.peak_rss_delta_kb / 1024.0
    elif rep.peak_memory_mb is not None:
        result.peak_rss_mb = rep.peak_memory_mb
    if rep.init_rss_delta_kb is not None:
        result.init_memory_mb = rep.init_rss_delta_kb / 1024.0
    elif rep.init_memory_mb is not None:
        result.init_memory_mb = rep.init_memory_mb
    coverage = rep.delegate_coverage
    if coverage is not None and coverage < 1.0:
        result.warnings.append(f"delegate ran {coverage:.0%} of the nodes; the rest fell back to the CPU")
    if m.status == statuses.LATENCY_ONLY:  # the figures above hold; the outputs were never computed
        result.status, result.reason = m.status, m.reason
        return
    judge_outputs(result, m.outputs, m.output_names, prepared)


def judge_outputs(result: Result, outputs: list, names: list[str], prepared: Prepared) -> None:
    """Health first, then drift against the original model's outputs."""
    reference = None
    if prepared.meta.has_reference:
        with np.load(prepared.dir / "reference.npz", allow_pickle=False) as data:
            reference = [data[str(k)] for k in range(len(data.files))]
    with np.load(prepared.dir / "eval.npz", allow_pickle=False) as data:
        labels = data["labels"] if "labels" in data.files else None
    if reference is not None:
        outputs = align_outputs(prepared.meta.output_names, names, outputs)
    problems = health_problems(outputs, names, reference)
    drift = None
    if reference is not None:
        try:
            drift = compute_drift(reference, outputs, labels)
        except ValueError as exc:
            problems.append(str(exc))
    elif labels is not None and outputs and is_classifier_like(outputs[0]):
        acc = float((unique_argmax(outputs[0].reshape(len(outputs[0]), -1)) == labels).mean())
        result.drift = {"accuracy": acc, "samples": int(len(labels))}
    if drift is not None:
        result.drift = drift.to_dict()
        if drift.cosine < FAR_COSINE and not problems:
            problems.append(f"outputs are far from the original (cosine {drift.cosine:.2f})")
    if problems:
        result.status = statuses.UNHEALTHY
        result.reason = "; ".join(problems)
    else:
        result.status = statuses.OK
        result.reason = "" if reference is not None else "no original model: drift not measured"


def drift_between(a: list[np.ndarray], b: list[np.ndarray]) -> dict | None:
    """Drift of one device's outputs against another's for the same artifact (e.g. phone vs local)."""
    try:
        return compute_drift(a, b).to_dict()
    except ValueError:
        return None


# What is_fully_accelerated() says on the CPU accelerator (found out: docs/runtimes.md): True
# exactly when XNNPACK took every op (benchmark_model's "completely executed by the delegate",
# 29 of 29 demo artifacts); False when some stay with LiteRT's builtin CPU kernels (int8, int16x8,
# LSTM, dynamic reshapes), always with --no-xnnpack. All of it still runs on the CPU: a warning
# for information, not a reason.
CPU_PARTLY = ("fully_accelerated: no: on the cpu accelerator this means some ops run in LiteRT's builtin CPU "
              "kernels instead of XNNPACK; everything still runs on the CPU")


def fill_runtime(result: Result, rep: RunnerReport) -> None:
    """CompiledModel's own figures: its accelerator coverage and what a caller pays per inference."""
    if rep.fully_accelerated is not None:
        result.fully_accelerated = rep.fully_accelerated
        if not rep.fully_accelerated:
            note = CPU_PARTLY if result.accelerator == "cpu" else (
                f"fully_accelerated: no: part of the model runs outside {result.accelerator.split('+')[0]} "
                f"({'on the CPU, as ' + result.accelerator + ' allows' if '+' in result.accelerator else 'partly'})")
            if note not in result.warnings:
                result.warnings.append(note)
    trips = latency_stats(rep.roundtrip_us) if rep.roundtrip_us else None
    if trips is not None:
        result.roundtrip_us = {k: v for k, v in trips.to_dict().items() if k in ("mean", "min", "p50", "p90", "n")}
