"""Statistics, drift metrics and health checks on hand-made arrays with known answers."""

import math

import numpy as np
import pytest

from harness.core.stats import (
    align_outputs,
    compute_drift,
    health_problems,
    is_classifier_like,
    latency_stats,
    unique_argmax,
)


def test_latency_stats_match_numpy():
    rng = np.random.default_rng(1)
    samples = rng.gamma(3.0, 100.0, size=1001)
    s = latency_stats(samples)
    assert s.n == 1001
    assert s.p50 == pytest.approx(np.median(samples))
    assert s.p90 == pytest.approx(np.percentile(samples, 90))
    assert s.p99 == pytest.approx(np.percentile(samples, 99))
    assert s.min == samples.min() and s.max == samples.max()
    assert s.std == pytest.approx(samples.std(ddof=1))
    assert latency_stats([]) is None


def test_unique_argmax_marks_ties():
    scores = np.array([[1, 5, 5, 0], [0, 1, 9, 2], [3, 3, 3, 3]], dtype=np.int8)
    assert unique_argmax(scores).tolist() == [-1, 2, -1]


def test_top1_ties_do_not_count_as_agreement():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]], dtype=np.float32)
    # A quantized output that ties classes 0 and 1 in row 0; np.argmax would say 0 (wrong)
    # and for row 0 of a reference whose top is 1 that is a miss either way, so use a tie at the top.
    got = np.array([[0.5, 0.5, 0.0], [0.8, 0.1, 0.1]], dtype=np.float32)
    d = compute_drift([ref], [got])
    assert d.top1_agreement == pytest.approx(0.5)
    ref2 = np.array([[0.9, 0.1, 0.0]], dtype=np.float32)
    got2 = np.array([[0.5, 0.5, 0.0]], dtype=np.float32)  # argmax would be 0 == ref: accidental agreement
    assert compute_drift([ref2], [got2]).top1_agreement == 0.0


def test_drift_identical_and_perturbed():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(16, 10)).astype(np.float32)
    same = compute_drift([ref], [ref.copy()])
    assert same.max_abs == 0 and same.rmse == 0 and math.isinf(same.snr_db)
    assert same.cosine == pytest.approx(1.0)
    noise = rng.normal(scale=0.1, size=ref.shape).astype(np.float32)
    d = compute_drift([ref], [ref + noise])
    assert d.max_abs == pytest.approx(np.abs(noise).max(), rel=1e-5)
    assert d.mean_abs == pytest.approx(np.abs(noise).mean(), rel=1e-5)
    assert d.rmse == pytest.approx(np.sqrt((noise.astype(np.float64) ** 2).mean()), rel=1e-4)
    expected_snr = 10 * math.log10((ref.astype(np.float64) ** 2).sum() / (noise.astype(np.float64) ** 2).sum())
    assert d.snr_db == pytest.approx(expected_snr, rel=1e-4)
    assert 0.9 < d.cosine < 1.0


def test_accuracy_against_labels():
    ref = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    got = np.eye(4, dtype=np.float32)[[0, 1, 3, 3]]
    d = compute_drift([ref], [got], labels=np.array([0, 1, 2, 2]))
    assert d.accuracy == pytest.approx(0.5)
    assert d.reference_accuracy == pytest.approx(0.75)
    assert d.top1_agreement == pytest.approx(0.75)


def test_non_classifier_has_no_top1():
    ref = np.ones((4, 1), dtype=np.float32)
    assert not is_classifier_like(ref)
    assert compute_drift([ref], [ref]).top1_agreement is None


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="shapes differ"):
        compute_drift([np.zeros((2, 3))], [np.zeros((2, 4))])


@pytest.mark.parametrize(
    "arr, expect",
    [
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), "NaN"),
        (np.array([[np.inf, 1.0], [1.0, 2.0]]), "Inf"),
        (np.zeros((3, 4)), "all zeros"),
        (np.tile([[0.2, 0.8]], (5, 1)), "same for every input"),
    ],
)
def test_health_problems(arr, expect):
    ref = np.array([[0.1, 0.9], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])[: len(arr)]
    problems = health_problems([arr], ["y"], [ref])
    assert problems and expect in problems[0]


def test_healthy_outputs_have_no_problems():
    rng = np.random.default_rng(3)
    assert health_problems([rng.random((5, 3))], ["y"]) == []


def test_constant_is_fine_when_the_original_is_constant_too():
    const = np.tile([[0.2, 0.8]], (4, 1))
    assert health_problems([const], ["y"], [const.copy()]) == []


def test_align_outputs_by_name_then_position():
    a, b = np.zeros(1), np.ones(1)
    assert align_outputs(["p", "q"], ["q", "p"], [b, a])[0] is a
    assert align_outputs(["output_0"], ["Identity"], [a])[0] is a


def test_validity_judges_the_p50_not_the_spread():
    """Few runs, short timing, an unstable p50 or disagreeing processes make a row invalid; a
    wide but well-sampled distribution does not (its spread stays as information)."""
    from harness.core.stats import aggregate_problems, spread_figures, validity_problems

    rng = np.random.default_rng(5)
    steady = list(rng.normal(100.0, 2.0, size=200))
    assert validity_problems(steady, runs=100, min_seconds=0.1, timed_s=0.5) == []
    few = validity_problems(steady[:10], runs=100, min_seconds=0.1, timed_s=0.5)
    assert any("only 10 of 100 runs" in p for p in few)
    short = validity_problems(steady, runs=100, min_seconds=1.0, timed_s=0.5)
    assert any("below min_seconds" in p for p in short)
    # CV ~15 % over 20 000 runs (a 3 us model): the p50 is known to +/-0.3 %, the row is valid
    wide_but_many = list(rng.lognormal(np.log(3.0), 0.15, size=20_000))
    assert spread_figures(wide_but_many)["cv"] > 0.12
    assert validity_problems(wide_but_many, runs=50, min_seconds=0, timed_s=1) == []
    # the same spread over 30 runs: the p50 itself is uncertain
    unstable = validity_problems(list(rng.uniform(10, 200, size=30)), runs=30, min_seconds=0, timed_s=1)
    assert any("p50 unstable" in p for p in unstable), unstable
    split = validity_problems(steady, runs=100, min_seconds=0, timed_s=1, process_medians=[100.0, 101.0, 125.0])
    assert any("processes disagree" in p for p in split)
    # benchmark_model rows: judged from the aggregates it prints
    assert aggregate_problems({"count": 500, "std": 2.0, "p5": 97.0, "median": 100.0, "p95": 103.5}, runs=50) == []
    bad = aggregate_problems({"count": 8, "std": 60.0, "p5": 20.0, "median": 100.0, "p95": 300.0}, runs=50)
    assert any("only 8 of 50" in p for p in bad) and any("p50 unstable" in p for p in bad)


def test_quantile_ci_covers_the_true_median():
    from harness.core.stats import quantile_ci

    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(200):
        lo, hi = quantile_ci(rng.exponential(1.0, size=101), 0.5)
        hits += lo <= np.log(2) <= hi
    assert 0.9 <= hits / 200 <= 0.995  # nominal 95%
