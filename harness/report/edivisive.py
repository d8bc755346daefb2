"""E-Divisive means with a permutation test: where a series' distribution changed, and how sure.

Matteson, D. S. and James, N. A. (2014), "A Nonparametric Approach for Multiple Change Point
Analysis of Multivariate Data", JASA 109(505):334-345. The same method MongoDB runs in CI over
thousands of performance series (Daly et al., "The Use of Change Point Detection to Identify
Software Performance Regressions in a Continuous Integration System", ICPE 2020).

For a segment x[0:m] and a split tau, with X = x[:tau] (a points) and Y = x[tau:] (b points),
the divergence (alpha = 1) is

    E(tau) = 2/(a b) sum|X_i - Y_j| - 1/C(a,2) sum_{i<k}|X_i - X_k| - 1/C(b,2) sum_{j<l}|Y_j - Y_l|

and the statistic Q(tau) = a b / m * E(tau). The best split maximises Q; a permutation test
(shuffle the segment, take the best Q again) says whether that maximum is larger than chance.
Segments split recursively until no segment has a significant split (binary segmentation,
each segment tested on its own, as Otava does).

One departure from the paper, for speed: the statistic is computed on the segment's *ranks*
(average ranks for ties). Under the null every ordering of ranks is equally likely, so the
permutation distribution of max Q depends only on the segment's length and can be drawn once
per length and shared by every series: 1,000 series x 200 runs need one set of permutations,
not 1,000. Ranks also make one outlier run unable to fake a change point on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_PERMUTATIONS = 199
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SIZE = 3
_CHUNK_CELLS = 4_000_000  # cells of (k, m, m) per block: ~16 MB of float32


@dataclass(frozen=True)
class ChangePoint:
    """A change at `index`: x[index] is the first value of the new segment."""

    index: int
    p_value: float
    statistic: float


def _q_profile(ranks: np.ndarray, min_size: int) -> np.ndarray:
    """Q(tau) for every split of each row of `ranks` (k, m); -inf where a side is under min_size.

    Block sums of the distance matrix d for every split at once: the pairs inside the first
    tau points are the running sum of each row's sum below the diagonal, and the rows of the
    first tau points are the running sum of the row sums, so two reductions over d suffice.
    """
    k, m = ranks.shape
    r = ranks.astype(np.float32)  # half the memory traffic; sums of <= 40k terms <= 1 keep 6 digits
    d = np.abs(r[:, :, None] - r[:, None, :])
    below = np.einsum("ktj,tj->kt", d, np.tri(m, m, -1, dtype=np.float32)).astype(float)
    row_sums = d.sum(axis=2, dtype=float)
    tau = np.arange(1, m)
    a = tau.astype(float)
    b = m - a
    within_x = 2 * np.cumsum(below, axis=1)[:, :-1]  # pairs both < tau, each counted twice
    rows_x = np.cumsum(row_sums, axis=1)[:, :-1]  # rows < tau, all columns
    total = row_sums.sum(axis=1, keepdims=True)
    cross = rows_x - within_x
    within_y = total - 2 * rows_x + within_x
    with np.errstate(divide="ignore", invalid="ignore"):
        e = 2 * cross / (a * b) - within_x / (a * (a - 1)) - within_y / (b * (b - 1))
    q = a * b / m * e
    q[:, (a < min_size) | (b < min_size)] = -np.inf
    return q  # column j is the split tau = j + 1


def _best_splits(ranks: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The best split and its statistic for each row, computed in memory-bounded blocks."""
    k, m = ranks.shape
    step = max(1, _CHUNK_CELLS // (m * m))
    taus = np.empty(k, dtype=int)
    stats = np.empty(k)
    for lo in range(0, k, step):
        q = _q_profile(ranks[lo:lo + step], min_size)
        j = np.argmax(q, axis=1)
        taus[lo:lo + step] = j + 1
        stats[lo:lo + step] = q[np.arange(len(j)), j]
    return taus, stats


EXACT_NULL_UP_TO = 40  # longer segments share the null of the next length on a 10 % grid


def null_length(m: int) -> int:
    """The length whose null a segment of length m uses: m itself up to EXACT_NULL_UP_TO, else
    the next point of a geometric grid. On ranks scaled to [0, 1) the null of max Q changes
    slowly with m and grows with it (more splits to maximise over), so the next longer grid
    length is a slightly conservative stand-in, and a 200-run history needs ~15 nulls, not 200."""
    g = float(EXACT_NULL_UP_TO)
    while g < m:
        g *= 1.1
    return m if m <= EXACT_NULL_UP_TO else int(g)


@lru_cache(maxsize=512)
def null_distribution(m: int, min_size: int, permutations: int, seed: int) -> np.ndarray:
    """Sorted max-Q of `permutations` random orderings of ranks 0..m-1: the null for length m."""
    rng = np.random.default_rng([seed, m, min_size])
    perms = np.argsort(rng.random((permutations, m)), axis=1) / m
    _, stats = _best_splits(perms, min_size)
    return np.sort(stats)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks from 0 (ties share one), scaled to [0, 1) so statistics of nearby lengths
    compare. NumPy only: importing scipy.stats costs seconds, more than the whole analysis."""
    k, m = values.shape
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    pos = np.broadcast_to(np.arange(m), (k, m))
    starts = np.ones((k, m), dtype=bool)
    starts[:, 1:] = v[:, 1:] != v[:, :-1]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)  # where each run of ties begins
    ends = np.ones((k, m), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    last = np.minimum.accumulate(np.where(ends, pos, m - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((k, m))
    np.put_along_axis(ranks, order, (first + last) / 2.0, axis=1)
    return ranks / m


def change_points(series: list[np.ndarray], *, alpha: float = DEFAULT_ALPHA,
                  permutations: int = DEFAULT_PERMUTATIONS, min_size: int = DEFAULT_MIN_SIZE,
                  seed: int = 0) -> list[list[ChangePoint]]:
    """Significant change points of each series (1-D float arrays, no NaN), sorted by index.

    All segments of one length, across all series, are tested in one vectorised block
    against one shared null distribution; segments split until none has a split with
    p < alpha. p = (1 + #null >= observed) / (1 + permutations).
    """
    if min_size < 2:
        raise ValueError("min_size must be at least 2 (a segment's within-distance needs two points)")
    found: list[list[ChangePoint]] = [[] for _ in series]
    todo = [(i, 0, len(x)) for i, x in enumerate(series) if len(x) >= 2 * min_size]
    while todo:
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for seg in todo:
            by_length.setdefault(seg[2] - seg[1], []).append(seg)
        todo = []
        for m, segs in by_length.items():
            values = np.stack([series[i][lo:hi] for i, lo, hi in segs])
            taus, stats = _best_splits(_ranks(values), min_size)
            null = null_distribution(null_length(m), min_size, permutations, seed)
            exceed = len(null) - np.searchsorted(null, stats - 1e-9 * np.abs(stats), side="left")
            p = (1 + exceed) / (1 + permutations)
            for (i, lo, hi), tau, stat, pv in zip(segs, taus, stats, p, strict=True):
                if pv < alpha and np.isfinite(stat) and stat > 0:
                    found[i].append(ChangePoint(lo + int(tau), float(pv), float(stat)))
                    for a, b in ((lo, lo + int(tau)), (lo + int(tau), hi)):
                        if b - a >= 2 * min_size:
                            todo.append((i, a, b))
    for cps in found:
        cps.sort(key=lambda c: c.index)
    return found


def split_p_value(x: np.ndarray, tau: int, *, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                  exact_up_to: int = 5000) -> float:
    """p-value of the statistic Q at one given split (x[:tau] | x[tau:]), on ranks.

    For a split that something else pins (the run where a row's bytes changed), testing that
    one split needs far fewer runs than searching all of them: 3 runs before and 5 after
    can reach p = 2/56. Every relabelling is enumerated when there are at most `exact_up_to`
    of them (an exact test), else `permutations` random ones are drawn.
    """
    from itertools import combinations
    from math import comb

    m = len(x)
    r = _ranks(np.asarray(x, dtype=float)[None, :])[0]
    d = np.abs(r[:, None] - r[None, :])
    if comb(m, tau) <= exact_up_to:
        masks = np.zeros((comb(m, tau), m), dtype=bool)
        for i, idx in enumerate(combinations(range(m), tau)):
            masks[i, list(idx)] = True
        observed_mask = np.zeros(m, dtype=bool)
        observed_mask[:tau] = True
        masks = np.vstack([observed_mask, masks])
        plus_one = 0
    else:
        rng = np.random.default_rng([seed, m, tau])
        masks = np.argsort(rng.random((permutations + 1, m)), axis=1) < tau
        masks[0] = np.arange(m) < tau
        plus_one = 1
    xm = masks.astype(float)
    ym = 1.0 - xm
    a, b = float(tau), float(m - tau)
    within_x = np.einsum("ki,ij,kj->k", xm, d, xm)
    within_y = np.einsum("ki,ij,kj->k", ym, d, ym)
    cross = np.einsum("ki,ij,kj->k", xm, d, ym)
    q = a * b / m * (2 * cross / (a * b) - within_x / (a * (a - 1)) - within_y / (b * (b - 1)))
    observed, rest = q[0], q[1:]
    return float((plus_one + np.sum(rest >= observed - 1e-9 * abs(observed))) / (plus_one + len(rest)))
