"""The statistics behind `compare`: change of the median with a bootstrap CI, and the test.

Numbers only (lists or arrays of samples in, tuples out), so `compare.py` keeps the verdicts
and the rows. `latency_stats` is the many-rows form of `median_change_ci` + Mann-Whitney and
gives the same numbers bit for bit (tests/test_compare.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PairStats:
    """One matched row's stored-sample statistics: medians, relative change of the median with
    its 95 % bootstrap interval, and the two-sided Mann-Whitney p-value."""

    base_p50: float
    new_p50: float
    change: float
    ci_low: float
    ci_high: float
    p_value: float


def median_change_ci(base, new, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Relative change of the median (new/base - 1) with a percentile-bootstrap CI.

    Each bootstrap median is drawn from its exact distribution instead of by resampling
    n values: the median of a resample of sorted x is x[j] with
    P(median <= x[j]) = P(Binomial(n, (j+1)/n) >= ceil(n/2)), so B draws cost
    O(n + B log n) even for 50 000 samples. (For even n this is the lower median.)
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    b = np.sort(np.asarray(base, dtype=float))
    a = np.sort(np.asarray(new, dtype=float))
    boot_b = _bootstrap_medians(b, n_boot, rng)
    boot_a = _bootstrap_medians(a, n_boot, rng)
    ratios = boot_a / boot_b - 1.0
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    change = float(np.median(a) / np.median(b) - 1.0)
    return change, float(low), float(high)


def _bootstrap_medians(sorted_x, n_boot: int, rng):
    import numpy as np
    from scipy.stats import binom

    n = len(sorted_x)
    k = (n + 1) // 2  # the lower median is the k-th smallest (1-based)
    cdf = binom.sf(k - 1, n, np.arange(1, n + 1) / n)  # P(median <= x[j]) for j = 0..n-1
    idx = np.searchsorted(cdf, rng.random(n_boot), side="left")
    return sorted_x[np.minimum(idx, n - 1)]


_BATCH_ROWS = 2048  # rows per vectorised block: 2 x 2048 x 2000 bootstrap medians, ~65 MB


def latency_stats(pairs: list[tuple], n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> list[PairStats]:
    """A `PairStats` for each (base samples, new samples) pair.

    The same numbers as `median_change_ci` and `mannwhitneyu` row by row, computed for all rows
    of equal sample counts at once: every row's bootstrap starts from the same seed, so the
    order-statistic indices it draws depend only on the sample counts and are drawn once per
    count; the test runs on 2-D blocks (only where both sides have over 8 samples: there scipy
    always takes the asymptotic test; for smaller rows its exact-or-asymptotic choice looks at
    ties in the whole input, so those rows go one by one as before).
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    out: list = [None] * len(pairs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (b, a) in enumerate(pairs):
        groups.setdefault((len(b), len(a)), []).append(i)
    tail = (1.0 - level) / 2 * 100

    def block(rows: list[int], nb: int, na: int, idx_b, idx_a) -> None:
        B = np.sort(np.asarray([pairs[i][0] for i in rows], dtype=float), axis=1)
        A = np.sort(np.asarray([pairs[i][1] for i in rows], dtype=float), axis=1)
        if nb > 8 and na > 8:
            pvals = mannwhitneyu(A, B, alternative="two-sided", axis=1).pvalue
        else:
            pvals = [mannwhitneyu(pairs[i][1], pairs[i][0], alternative="two-sided").pvalue for i in rows]
        low, high = _percentile_ci(A, B, idx_a, idx_b, tail)
        med_b, med_a = np.median(B, axis=1), np.median(A, axis=1)
        change = med_a / med_b - 1.0
        for j, i in enumerate(rows):
            out[i] = PairStats(float(med_b[j]), float(med_a[j]), float(change[j]), float(low[j]), float(high[j]),
                      float(pvals[j]))

    jobs = []
    for (nb, na), members in groups.items():
        rng = np.random.default_rng(seed)
        idx_b = _bootstrap_indices(nb, n_boot, rng)
        idx_a = _bootstrap_indices(na, n_boot, rng)
        jobs += [(members[k:k + _BATCH_ROWS], nb, na, idx_b, idx_a) for k in range(0, len(members), _BATCH_ROWS)]
    if len(jobs) > 1:  # NumPy's sorting, partitioning and indexing release the GIL: use the cores
        import os
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1, 4)) as pool:
            list(pool.map(lambda job: block(*job), jobs))
    for job in jobs[:1] if len(jobs) == 1 else ():
        block(*job)
    return out


def _percentile_ci(A, B, idx_a, idx_b, tail: float):
    """np.percentile(A[:, idx_a] / B[:, idx_b] - 1, [tail, 100 - tail], axis=1), bit for bit, cheaper.

    The n_boot (order statistic of NEW, order statistic of BASE) pairs repeat: bootstrap medians
    of 50 samples fall on ~20 order statistics, so 2000 draws are ~300 distinct pairs. Each row
    computes the ratio once per distinct pair, sorts those, and finds the two order statistics
    of the full multiset that numpy's linear percentile interpolates between (by the pairs'
    counts), with numpy's own index and interpolation arithmetic. ~5x less CPU than building
    and partitioning rows x n_boot ratios. Rows with a NaN ratio take numpy's path.
    """
    import numpy as np

    n_boot = len(idx_a)
    code, counts = np.unique(idx_a.astype(np.int64) * B.shape[1] + idx_b, return_counts=True)
    R = A[:, code // B.shape[1]] / B[:, code % B.shape[1]] - 1.0
    if np.isnan(R).any():
        return np.percentile(A[:, idx_a] / B[:, idx_b] - 1.0, [tail, 100 - tail], axis=1)
    order = np.argsort(R, axis=1)
    R = np.take_along_axis(R, order, axis=1)
    cum = np.cumsum(counts[order], axis=1)  # cum[r, j]: how many of row r's draws are <= R[r, j]
    rows, last = np.arange(len(R)), R.shape[1] - 1
    q = np.true_divide(np.asarray([tail, 100 - tail], dtype=float), 100)
    virtual = (n_boot - 1) * q  # numpy's 'linear' method
    prev = np.floor(virtual)
    gamma = virtual - prev
    out = []
    for p, g in zip(prev.astype(np.int64), gamma, strict=True):
        a = R[rows, np.minimum((cum <= p).sum(axis=1), last)]  # the p-th smallest of the multiset
        b = R[rows, np.minimum((cum <= p + 1).sum(axis=1), last)]
        d = b - a
        out.append(b - d * (1 - g) if g >= 0.5 else a + d * g)  # numpy's _lerp
    return out[0], out[1]


def _bootstrap_indices(n: int, n_boot: int, rng):
    """Which order statistic each of n_boot bootstrap medians of n samples is (see below)."""
    import numpy as np
    from scipy.stats import binom

    k = (n + 1) // 2
    cdf = binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    return np.minimum(np.searchsorted(cdf, rng.random(n_boot), side="left"), n - 1)
