"""Statistics over latency samples, accuracy drift against the original, output health.

Drift compares the artifact's (dequantized) outputs with the original model's outputs on
the same evaluation samples. Health checks come first: a model that outputs NaN, Inf,
zeros or the same answer for every input is `unhealthy`, whatever its latency.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

FAR_COSINE = 0.5  # below this the artifact no longer computes the same function


@dataclass(frozen=True)
class LatencyStats:
    """Microseconds. std is the sample standard deviation (ddof=1); percentiles interpolate linearly."""

    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def latency_stats(samples_us: list[float] | np.ndarray) -> LatencyStats | None:
    a = np.asarray(samples_us, dtype=np.float64)
    if a.size == 0:
        return None
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return LatencyStats(
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        max=float(a.max()),
        n=int(a.size),
    )


@dataclass(frozen=True)
class Drift:
    max_abs: float
    mean_abs: float
    rmse: float
    cosine: float
    snr_db: float  # +inf when the outputs are identical
    top1_agreement: float | None
    accuracy: float | None
    reference_accuracy: float | None
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def unique_argmax(scores: np.ndarray) -> np.ndarray:
    """Index of the maximum per row, or -1 where the maximum is shared (a tie).

    Quantized outputs often tie (several classes at the same int8 value); np.argmax would
    then pick the first index and could 'agree' with the reference by accident.
    """
    flat = scores.reshape(len(scores), -1)
    top = flat.max(axis=1, keepdims=True)
    ties = (flat == top).sum(axis=1) > 1
    idx = flat.argmax(axis=1)
    idx[ties] = -1
    return idx


def is_classifier_like(out: np.ndarray) -> bool:
    """(samples, classes) with at least two classes, after dropping size-1 axes."""
    squeezed = out.reshape(len(out), -1) if out.ndim >= 2 else None
    return squeezed is not None and squeezed.shape[1] >= 2 and sum(d > 1 for d in out.shape[1:]) == 1


def align_outputs(
    ref_names: list[str], got_names: list[str], got: list[np.ndarray]
) -> list[np.ndarray]:
    """Order the artifact's outputs like the reference: by name when all match, else by position."""
    if sorted(ref_names) == sorted(got_names) and len(set(got_names)) == len(got_names):
        index = {n: i for i, n in enumerate(got_names)}
        return [got[index[n]] for n in ref_names]
    return list(got)


def compute_drift(
    reference: list[np.ndarray], outputs: list[np.ndarray], labels: np.ndarray | None = None
) -> Drift:
    if len(reference) != len(outputs):
        raise ValueError(f"the artifact has {len(outputs)} outputs, the original {len(reference)}")
    refs, gots = [], []
    for r, o in zip(reference, outputs, strict=True):
        if r.size != o.size:
            raise ValueError(f"output shapes differ: original {r.shape}, artifact {o.shape}")
        refs.append(r.astype(np.float64).reshape(len(r), -1))
        gots.append(o.astype(np.float64).reshape(len(o), -1))
    ref = np.concatenate(refs, axis=1)
    got = np.concatenate(gots, axis=1)
    err = got - ref
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    dots = (ref * got).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1), np.where(
            (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(got, axis=1) == 0), 1.0, 0.0))
    signal_power = float((ref**2).sum())
    noise_power = float((err**2).sum())
    if noise_power == 0:
        snr = math.inf
    elif signal_power == 0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(signal_power / noise_power)
    top1 = accuracy = ref_accuracy = None
    first_ref, first_got = reference[0], outputs[0]
    if is_classifier_like(first_ref):
        r_idx = unique_argmax(first_ref.reshape(len(first_ref), -1))
        g_idx = unique_argmax(first_got.reshape(len(first_got), -1))
        top1 = float(((g_idx == r_idx) & (g_idx >= 0)).mean())
        if labels is not None and len(labels) == len(first_got):
            accuracy = float((g_idx == labels).mean())
            ref_accuracy = float((r_idx == labels).mean())
    return Drift(
        max_abs=float(np.abs(err).max()) if err.size else 0.0,
        mean_abs=float(np.abs(err).mean()) if err.size else 0.0,
        rmse=float(np.sqrt((err**2).mean())) if err.size else 0.0,
        cosine=float(cos.mean()) if cos.size else 1.0,
        snr_db=snr,
        top1_agreement=top1,
        accuracy=accuracy,
        reference_accuracy=ref_accuracy,
        samples=int(len(ref)),
    )


def health_problems(
    outputs: list[np.ndarray], names: list[str], reference: list[np.ndarray] | None = None
) -> list[str]:
    """Reasons the outputs cannot be trusted; empty when healthy."""
    problems = []
    for i, out in enumerate(outputs):
        label = f"output {names[i]!r}" if i < len(names) else f"output {i}"
        a = np.asarray(out)
        if a.size == 0:
            problems.append(f"{label} is empty")
            continue
        if np.issubdtype(a.dtype, np.floating):
            if np.isnan(a).any():
                problems.append(f"{label} has NaN values ({int(np.isnan(a).sum())} of {a.size})")
                continue
            if np.isinf(a).any():
                problems.append(f"{label} has Inf values ({int(np.isinf(a).sum())} of {a.size})")
                continue
        if not np.any(a):
            problems.append(f"{label} is all zeros")
            continue
        if len(a) >= 2 and np.all(a == a[0]):
            ref_varies = reference is not None and i < len(reference) and len(reference[i]) >= 2 and not np.all(
                reference[i] == reference[i][0]
            )
            if reference is None or ref_varies:
                problems.append(f"{label} is the same for every input")
    return problems


def quantile_ci(samples_us: list[float] | np.ndarray, q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval for the q-quantile from order statistics.

    The number of samples below the true quantile is Binomial(n, q); the interval runs
    between the order statistics at the binomial's two-sided bounds (no assumption about
    the latency distribution, which is skewed and often multi-modal).
    """
    from scipy.stats import binom

    a = np.sort(np.asarray(samples_us, dtype=np.float64))
    n = a.size
    if n < 2:
        return None
    alpha = 1.0 - confidence
    lo = int(binom.ppf(alpha / 2, n, q))
    hi = int(binom.ppf(1 - alpha / 2, n, q))
    lo = min(max(lo - 1, 0), n - 1)
    hi = min(max(hi, 0), n - 1)
    return float(a[lo]), float(a[hi])


@dataclass(frozen=True)
class ValidityBounds:
    """What makes a row's latency untrustworthy. The spread bounds (CV, tail) are information:
    a wide but well-sampled distribution still has a precise median."""

    max_cv: float = 0.15  # information: coefficient of variation of the timed runs up to their p99
    max_tail_ratio: float = 3.0  # information: p99 / p50
    max_temperature_rise_c: float = 10.0
    max_p50_ci: float = 0.05  # the p50's 95 % CI half-width, relative: wider than a 5 % gate threshold
    max_process_spread: float = 0.10  # with --repeat: (max - min) / median of the processes' medians


def spread_figures(samples_us: list[float] | np.ndarray) -> dict[str, float]:
    """CV of the body (samples up to p99: one preempted run of 100x the median would otherwise
    dominate std) and the tail ratio p99/p50; kept with the row as information."""
    a = np.asarray(samples_us, dtype=np.float64)
    if a.size < 2:
        return {}
    p50, p99 = np.percentile(a, [50, 99])
    body = a[a <= p99]
    cv = float(body.std(ddof=1) / body.mean()) if body.size >= 2 and body.mean() > 0 else 0.0
    return {"cv": cv, "tail_ratio": float(p99 / p50) if p50 > 0 else 0.0}


def validity_problems(
    samples_us: list[float], *, runs: int, min_seconds: float, timed_s: float | None,
    bounds: ValidityBounds = ValidityBounds(), process_medians: list[float] | None = None,
) -> list[str]:
    """Why a row's latency should not be trusted (empty when it is valid): too few runs or
    seconds, an unstable p50 (its CI, or processes that disagree). The spread is not a reason."""
    problems = []
    a = np.asarray(samples_us, dtype=np.float64)
    if a.size < runs:
        problems.append(f"only {a.size} of {runs} runs (max_seconds reached)")
    if timed_s is not None and timed_s + 1e-9 < min_seconds:
        problems.append(f"timed for {timed_s:.2f} s, below min_seconds {min_seconds:g}")
    ci = quantile_ci(a, 0.5) if a.size >= 2 else None
    p50 = float(np.median(a)) if a.size else 0.0
    if ci is not None and p50 > 0:
        half = (ci[1] - ci[0]) / 2 / p50
        if half > bounds.max_p50_ci:
            problems.append(f"p50 unstable: 95% CI +/-{half:.1%} > {bounds.max_p50_ci:.0%}")
    problems += process_problems(process_medians or [], bounds)
    return problems


def process_problems(medians: list[float], bounds: ValidityBounds = ValidityBounds()) -> list[str]:
    m = [x for x in medians if x > 0]
    if len(m) < 2:
        return []
    span = (max(m) - min(m)) / float(np.median(m))
    if span > bounds.max_process_spread:
        return [f"processes disagree: their medians span {span:.0%} > {bounds.max_process_spread:.0%}"]
    return []


def aggregate_problems(agg: dict, *, runs: int, bounds: ValidityBounds = ValidityBounds()) -> list[str]:
    """`validity_problems` from benchmark_model's aggregates (count, std, p5, median, p95).

    The p50's standard error is ~1.2533 sigma / sqrt(n) (normal approximation); sigma is
    taken robustly from p5..p95 (3.29 sigma wide) when the tool printed them, else std.
    """
    problems = []
    count = agg.get("count")
    median = agg.get("median") or agg.get("avg")
    if isinstance(count, (int, float)) and count < runs:
        problems.append(f"only {int(count)} of {runs} runs")
    p5, p95, std = agg.get("p5"), agg.get("p95"), agg.get("std")
    sigma = (p95 - p5) / 3.29 if p5 is not None and p95 is not None else std
    if sigma is not None and count and median:
        half = 1.96 * 1.2533 * sigma / math.sqrt(count) / median
        if half > bounds.max_p50_ci:
            problems.append(f"p50 unstable: ~95% CI +/-{half:.1%} > {bounds.max_p50_ci:.0%} (from aggregates)")
    else:
        problems.append("no run count or spread in the aggregates: p50 stability not checked")
    return problems
