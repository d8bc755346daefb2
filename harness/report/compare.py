"""Compare two runs row by row: the regression gate.

Pure functions on lists of rows (`Result` or the store's `ReportRow`). Rows match on
(model, flag set, device, threads, xnnpack). What decides a row:

- Deterministic figures (status, size, drift, accuracy) are exact: judged as they are.
- Latency depends on who measured when. First the gate asks whether the *artifact* could
  have changed (`artifact_identity`): same bytes, same runtime and version, same settings
  means any latency change is the machine's. Those rows are never a regression; together
  they say how far the machine moved between the runs ("3 unchanged artifacts moved +27%")
  and how much rows scatter around that move (the run-to-run noise for the others).
- For a changed artifact the stored numbers only nominate: a change beyond the limit
  (the threshold, or noise_factor x the run-to-run noise, after removing the machine's
  move) is `unconfirmed`. Only a confirmation (base and new re-measured now, interleaved,
  see harness/core/confirmation.py) makes it REGRESSED or improved.

The verdict words and the records filled in here (`Thresholds`, `RowComparison`,
`Comparison`) are `compare_outcome.py`'s, re-exported here.
"""

from __future__ import annotations

import math

from harness.core.confirmation import Remeasurement
from harness.core.result import Result
from harness.report.compare_identity import (  # noqa: F401 - re-exported
    ARTIFACT_CHANGED,
    DEVICE_CHANGED,
    NOISE_MIN_ROWS,
    RUNTIME_API_CHANGED,
    RUNTIME_CHANGED,
    SAME_ARTIFACT,
    SETTINGS_CHANGED,
    UNKNOWN,
    MachineMove,
    artifact_identity,
    machine_move,
    median_noise,
    run_to_run_noise,
    runtime_label,
    samples_of,
    tested_pair,
)
from harness.report.compare_outcome import (  # noqa: F401 - re-exported
    ADDED,
    IGNORABLE,
    IMPROVED,
    KEY_FIELDS,
    MISSING,
    REGRESSED,
    SAME,
    UNCONFIRMED,
    UNCONFIRMED_POLICIES,
    Comparison,
    LatencyChange,
    RowComparison,
    Thresholds,
    key_label,
)
from harness.report.compare_stats import PairStats, latency_stats, median_change_ci  # noqa: F401 - re-exported


def compare_latency(base: Result, new: Result, thresholds: Thresholds,
                    stats: PairStats | None = None) -> LatencyChange | None:
    """What the stored samples say; `stats` is `latency_stats`' figures for this pair when they
    were computed for many rows at once (the same numbers this computes for one row)."""
    b = samples_of(base)
    a = samples_of(new)
    if not ((base.latency_us or len(b)) and (new.latency_us or len(a))):
        return None
    if len(b) >= 3 and len(a) >= 3:
        s = stats if stats is not None else latency_stats([(b, a)])[0]
        base_p50, new_p50, change, low, high, p = s.base_p50, s.new_p50, s.change, s.ci_low, s.ci_high, s.p_value
        significant = p < thresholds.alpha
    else:  # no raw samples (e.g. benchmark_model gave only a summary): no test
        base_p50, new_p50 = base.latency_us["p50"], new.latency_us["p50"]
        change, low, high, p, significant = new_p50 / base_p50 - 1.0, None, None, None, False
    limit = thresholds.max_latency_regression
    verdict = (REGRESSED if significant and change > limit else IMPROVED if significant and change < -limit
               else SAME)
    return LatencyChange(base_p50, new_p50, change, low, high, p, significant, verdict)


def _drift(r: Result | None, key: str) -> float | None:
    if r is None or not r.drift:
        return None
    v = r.drift.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def compare_row(key: tuple, base: Result | None, new: Result | None, thresholds: Thresholds,
                latency: PairStats | None = None, machine: MachineMove | None = None,
                remeasured: Remeasurement | None = None, stored_limit: float | None = None) -> RowComparison:
    """One matched pair. `stored_limit`: what a stored (unconfirmed) latency change must exceed,
    the threshold raised to the noise floor (default: the threshold)."""
    row = RowComparison(key, base.status if base else None, new.status if new else None,
                        new_key=new.key if new else None)
    if base is None or new is None:
        if new is None:
            row.regressions.append("missing in the new run")
        return row
    row.identity = artifact_identity(base, new)
    row.max_abs = (_drift(base, "max_abs"), _drift(new, "max_abs"))
    row.cosine = (_drift(base, "cosine"), _drift(new, "cosine"))
    row.accuracy = (_drift(base, "accuracy"), _drift(new, "accuracy"))
    row.size_bytes = (base.size_bytes, new.size_bytes)
    row.peak_rss_mb = (base.peak_rss_mb, new.peak_rss_mb)
    if base.status == "ok" and new.status != "ok":
        row.regressions.append(f"status ok -> {new.status}" + (f" ({new.reason})" if new.reason else ""))
        return row
    if base.status != "ok" and new.status == "ok":
        row.improvements.append(f"status {base.status} -> ok")
    if base.status != "ok" or new.status != "ok":
        return row
    _deterministic(row, thresholds)
    row.latency = compare_latency(base, new, thresholds, latency)
    if row.latency is not None:
        limit = thresholds.max_latency_regression if stored_limit is None else stored_limit
        _judge_latency(row, base, new, thresholds.max_latency_regression, limit, machine, remeasured)
    return row


def _deterministic(row: RowComparison, thresholds: Thresholds) -> None:
    """Size, drift and accuracy: the same bytes give the same figures, so they are judged exactly."""
    b, a = row.max_abs
    if thresholds.max_drift_increase is not None and b is not None and a is not None:
        if a - b > thresholds.max_drift_increase:
            row.regressions.append(f"max_abs {b:.3g} -> {a:.3g}")
    b, a = row.accuracy
    if thresholds.max_accuracy_drop is not None and b is not None and a is not None:
        if b - a > thresholds.max_accuracy_drop:
            row.regressions.append(f"accuracy {b:.3f} -> {a:.3f}")
    b, a = row.size_bytes
    if thresholds.max_size_increase is not None and b and a:
        if a / b - 1.0 > thresholds.max_size_increase + 1e-12:
            row.regressions.append(f"size {b} -> {a} bytes ({a / b - 1:+.1%})")
        elif a < b:
            row.improvements.append(f"size {a / b - 1:+.1%}")
        elif a > b:
            row.notes.append(f"size {a / b - 1:+.1%} (within --max-size-increase {thresholds.max_size_increase * 100:g}%)")


def _judge_latency(row: RowComparison, base: Result, new: Result, threshold: float, limit: float,
                   machine: MachineMove | None, remeasured: Remeasurement | None) -> None:
    """Same artifact: the machine. Confirmed: the re-measured change against the threshold.
    Otherwise a stored change beyond `limit` is unconfirmed."""
    lat = row.latency
    if row.identity == SAME_ARTIFACT:
        row.notes.append(f"same artifact, runtime and settings: p50 {lat.change:+.1%} is the machine")
        return
    lat.adjusted = (1 + lat.change) / (1 + machine.change) - 1 if machine is not None else None
    stored = lat.change if lat.adjusted is None else lat.adjusted
    row.remeasured = remeasured
    confirmed = None
    if remeasured is not None and remeasured.rounds >= 2:
        confirmed = remeasured.change()
    if confirmed is not None:
        lat.confirmed = confirmed
        c = confirmed
        text = f"latency {c.change:+.1%} (confirmed: [{c.ci_low:+.1%}, {c.ci_high:+.1%}] over {c.rounds} rounds)"
        if c.change > threshold and c.ci_low > 0:
            row.regressions.append(text)
        elif c.change < -threshold and c.ci_high < 0:
            row.improvements.append(text)
        else:
            row.notes.append(f"stored p50 {stored:+.1%}, re-measured {c.change:+.1%} "
                             f"[{c.ci_low:+.1%}, {c.ci_high:+.1%}]: not a change beyond {threshold:.0%}")
        return
    if abs(stored) <= limit or not (lat.significant or lat.p_value is None):
        return
    prefix = (f"runtime {base.runtime} {base.runtime_version} -> {new.runtime} {new.runtime_version}: "
              if row.identity == RUNTIME_CHANGED else f"device {base.device} -> {new.device}: "
              if row.identity == DEVICE_CHANGED else f"runtime {runtime_label(base)} -> {runtime_label(new)}: "
              if row.identity == RUNTIME_API_CHANGED else "")
    if row.identity == RUNTIME_CHANGED:
        why = "another runtime: the old one cannot be re-measured here"
    elif row.identity == DEVICE_CHANGED:
        why = "two devices: not re-measured side by side"
    elif remeasured is not None and remeasured.error:
        why = f"not confirmed: {remeasured.error}"
    else:
        why = "stored results only"
    validity = [v for v in (base.validity, new.validity) if v and v != "valid"]
    if validity:
        why += f"; not valid: {validity[0]}"
    row.unconfirmed.append(f"{prefix}latency p50 {stored:+.1%} (unconfirmed: {why})")
    row.slower_unconfirmed = row.slower_unconfirmed or stored > 0


def compare_results(base: list[Result], new: list[Result], thresholds: Thresholds | None = None,
                    ignore: tuple[str, ...] = (), *,
                    remeasured: dict[tuple, Remeasurement] | None = None) -> Comparison:
    """Match rows by key and compare each; rows only in NEW are 'new', only in BASE 'MISSING'.

    `ignore` drops settings from the match key (e.g. xnnpack: compare a run with the
    delegate against one without). Two rows of one run that then share a key are an error.
    `remeasured`: confirmations by row key (see harness.pipeline.confirm.gate, which runs them).
    """
    thresholds = thresholds or Thresholds()
    unknown = set(ignore) - set(IGNORABLE)
    if unknown:
        raise ValueError(f"cannot ignore {sorted(unknown)}; choose from {', '.join(IGNORABLE)}")
    if thresholds.unconfirmed not in UNCONFIRMED_POLICIES:
        raise ValueError(f"unconfirmed={thresholds.unconfirmed!r}; choose from {', '.join(UNCONFIRMED_POLICIES)}")

    dropped = set(ignore) | ({"runtime_api", "accelerator"} if "runtime" in ignore else set())

    def match_key(r: Result) -> tuple:
        if not dropped:  # the usual case: the row's own key (a generator per row costs 1 s at 200k rows)
            return r.key
        return tuple(None if name in dropped else v for name, v in zip(KEY_FIELDS, r.key, strict=True))

    def index(results: list[Result], which: str) -> dict[tuple, Result]:
        out: dict[tuple, Result] = {}
        for r in results:
            k = match_key(r)
            if k in out:
                raise ValueError(f"{which} has several rows for {r.model}/{r.flag_set} once "
                                 f"{', '.join(ignore)} is ignored; ignore fewer settings")
            out[k] = r
        return out

    b = index(base, "BASE")
    a = index(new, "NEW")
    keys = list(b) + [k for k in a if k not in b]
    # the latency statistics of every row that has them, computed in vectorised blocks
    tested = [k for k in keys if k in b and k in a and tested_pair(b[k], a[k])]
    stats = dict(zip(tested, latency_stats([(samples_of(b[k]), samples_of(a[k])) for k in tested]), strict=True))
    machine = machine_move([(b[k], a[k], stats.get(k)) for k in keys if k in b and k in a])
    noise = machine.spread if machine is not None and machine.spread is not None else \
        median_noise([(s.base_p50, s.new_p50) for s in stats.values()])
    limit = thresholds.max_latency_regression
    if noise is not None and thresholds.noise_factor:
        limit = max(limit, math.exp(thresholds.noise_factor * noise) - 1.0)
    remeasured = remeasured or {}
    rows = []
    for k in keys:
        key = (b.get(k) or a[k]).key
        rows.append(compare_row(key, b.get(k), a.get(k), thresholds, stats.get(k), machine, remeasured.get(key),
                                stored_limit=limit))
    return Comparison(rows, thresholds, noise, limit, machine)
