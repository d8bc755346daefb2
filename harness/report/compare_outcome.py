"""What the regression gate found: the verdict words, the thresholds, and the records of a
comparison (`LatencyChange`, `RowComparison`, `Comparison` with its headline), plain data.

`harness/report/compare.py` fills them in (and re-exports every name here); the renderers
(`compare_render.py`, `compare_markdown.py`) read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.confirmation import PairedChange, Remeasurement
from harness.report.compare_identity import (
    ARTIFACT_CHANGED,
    RUNTIME_API_CHANGED,
    SETTINGS_CHANGED,
    UNKNOWN,
    MachineMove,
)

REGRESSED = "REGRESSED"
IMPROVED = "improved"
SAME = "~"
MISSING = "MISSING"
ADDED = "new"
UNCONFIRMED = "unconfirmed"

UNCONFIRMED_POLICIES = ("warn", "fail")


@dataclass
class Thresholds:
    max_latency_regression: float = 0.05  # relative change of the median
    max_drift_increase: float | None = None  # absolute increase of max_abs
    max_accuracy_drop: float | None = None  # absolute drop of accuracy (0..1)
    # relative; 1%: a retrained model of the same architecture differs by a few bytes of
    # flatbuffer (+0.4% seen), which no team wants failed; 0.0 gates every byte
    max_size_increase: float | None = 0.01
    alpha: float = 0.01
    # A stored latency change must also exceed noise_factor x the run-to-run noise: the spread of
    # unchanged artifacts around the machine's move (3+ such rows), else of all rows' changes
    # (NOISE_MIN_ROWS+ rows).
    noise_factor: float | None = 3.0
    unconfirmed: str = "warn"  # what a slowdown that could not be confirmed does: warn | fail


@dataclass
class LatencyChange:
    base_p50_us: float
    new_p50_us: float
    change: float  # relative change of the stored medians: new / base - 1
    ci_low: float | None  # 95 % CI of the relative change (one process's samples per side)
    ci_high: float | None
    p_value: float | None
    significant: bool
    verdict: str  # what the stored samples alone say (REGRESSED / improved / ~)
    adjusted: float | None = None  # `change` with the machine's move removed (when it is known)
    confirmed: PairedChange | None = None  # the re-measured change, when confirmation ran


@dataclass
class RowComparison:
    key: tuple  # model, flag_set, device, threads, xnnpack, runtime API, accelerator (the base row's if any)
    base_status: str | None
    new_status: str | None
    latency: LatencyChange | None = None
    max_abs: tuple[float | None, float | None] = (None, None)
    cosine: tuple[float | None, float | None] = (None, None)
    accuracy: tuple[float | None, float | None] = (None, None)
    size_bytes: tuple[int | None, int | None] = (None, None)
    peak_rss_mb: tuple[float | None, float | None] = (None, None)
    regressions: list[str] = field(default_factory=list)  # what regressed, one phrase each
    improvements: list[str] = field(default_factory=list)
    new_key: tuple | None = None  # differs from key only in --ignore'd fields
    identity: str | None = None  # SAME_ARTIFACT, RUNTIME_CHANGED, ... (None unless both rows exist)
    unconfirmed: list[str] = field(default_factory=list)  # latency changes nobody confirmed
    slower_unconfirmed: bool = False  # one of them is a slowdown (what --unconfirmed fail fails)
    notes: list[str] = field(default_factory=list)  # information that decided nothing
    remeasured: Remeasurement | None = None

    @property
    def verdict(self) -> str:
        if self.new_status is None:
            return MISSING
        if self.base_status is None:
            return ADDED
        if self.regressions:
            return REGRESSED
        if self.unconfirmed:
            return UNCONFIRMED
        if self.improvements:
            return IMPROVED
        return SAME

    @property
    def label(self) -> str:
        return key_label(self.key)

    @property
    def why(self) -> str:
        return "; ".join(self.regressions + self.unconfirmed + self.improvements) or "; ".join(self.notes)


@dataclass
class Comparison:
    rows: list[RowComparison]
    thresholds: Thresholds
    noise: float | None = None  # run-to-run noise (relative) applied to stored changes, when estimated
    latency_limit: float | None = None  # the limit applied: max(threshold, noise_factor x noise)
    machine: MachineMove | None = None
    confirm_rounds: int | None = None  # rounds per confirmed pair, when confirmation ran
    confirm_seconds: float = 0.0

    @property
    def regressed(self) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict in (REGRESSED, MISSING)]

    @property
    def improved(self) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict == IMPROVED]

    @property
    def unconfirmed(self) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict == UNCONFIRMED]

    @property
    def failed(self) -> bool:
        """What the exit code says: a regression, or an unconfirmed slowdown under --unconfirmed fail."""
        return bool(self.regressed) or (self.thresholds.unconfirmed == "fail"
                                        and any(r.slower_unconfirmed for r in self.unconfirmed))

    @property
    def to_confirm(self) -> list[RowComparison]:
        """Rows whose stored latency moved enough to be worth re-measuring (artifact not the same).

        Half the threshold: a real change that the machine's move half hid is still looked at.
        """
        half = self.thresholds.max_latency_regression / 2
        return [r for r in self.rows if r.latency is not None and r.identity in (ARTIFACT_CHANGED, SETTINGS_CHANGED,
                UNKNOWN, RUNTIME_API_CHANGED) and abs(_value(r.latency.adjusted, r.latency.change)) > half]

    def headline(self) -> tuple[str, str]:
        """The gate's verdict word and the rest of the line: the cause first (what regressed,
        what is missing, the unconfirmed slowdowns that fail), then what else happened, the
        machine, the confirmation. One row counts once: a missing row is not also 'regressed'."""
        counts = {v: 0 for v in (REGRESSED, MISSING, UNCONFIRMED, IMPROVED, SAME, ADDED)}
        for r in self.rows:
            counts[r.verdict] += 1
        slower = sum(1 for r in self.unconfirmed if r.slower_unconfirmed)
        causes = []
        if counts[REGRESSED]:
            named = [f"{r.key[0]}/{r.key[1]} {r.why}" for r in self.rows if r.verdict == REGRESSED][:3]
            causes.append(f"{counts[REGRESSED]} regressed ({'; '.join(named)}"
                          + ("; ..." if counts[REGRESSED] > 3 else "") + ")")
        if counts[MISSING]:
            causes.append(f"{_plural(counts[MISSING], 'row')} missing in the new run")
        fails_on_unconfirmed = self.failed and not causes
        if causes:
            head = "REGRESSED"
        elif fails_on_unconfirmed:
            head = "FAILED"
            causes.append(f"{_plural(slower, 'unconfirmed slowdown')} (--unconfirmed fail)")
        else:
            head = "no regressions"
        others = []
        rest = counts[UNCONFIRMED] - (slower if fails_on_unconfirmed else 0)
        if rest:
            policy = f" (--unconfirmed {self.thresholds.unconfirmed})" if slower and not fails_on_unconfirmed else ""
            others.append(f"{_plural(rest, 'unconfirmed change')}{policy}")
        if counts[IMPROVED]:
            better = [f"{r.key[0]}/{r.key[1]} {r.why}" for r in self.improved[:3]]
            others.append(f"{counts[IMPROVED]} improved ({'; '.join(better)}"
                          + ("; ..." if counts[IMPROVED] > 3 else "") + ")")
        if counts[ADDED]:
            others.append(f"{counts[ADDED]} new")
        others.append(f"{counts[SAME]} unchanged of {_plural(len(self.rows), 'row')}")
        text = ", ".join(causes + others)
        if self.machine is not None:
            text += "; " + self.machine.text(self.thresholds.max_latency_regression)
        if self.confirm_rounds:
            text += f"; confirmed by {self.confirm_rounds} interleaved rounds ({self.confirm_seconds:.0f} s)"
        return head, text

    def summary(self) -> str:
        """The verdict as one line, e.g. 'REGRESSED: 1 regressed (cnn/int8 ...), 27 unchanged of 28 rows'."""
        head, text = self.headline()
        return f"{head}: {text}"


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _value(x: float | None, default: float) -> float:
    return default if x is None else x


KEY_FIELDS = ("model", "flag_set", "device", "threads", "xnnpack", "runtime_api", "accelerator")
IGNORABLE = ("device", "threads", "xnnpack", "runtime")  # runtime: the API and the accelerator, one axis


def key_label(key: tuple) -> str:
    """'m/int8 on local (1 thr)', with ', no xnnpack' and the runtime where it is not interpreter/cpu."""
    model, flag_set, device, threads, xnnpack, *rest = key
    api, accel = (*rest, "interpreter", "cpu")[:2]
    runtime = "" if (api, accel) == ("interpreter", "cpu") else f", {api}/{accel}"
    return f"{model}/{flag_set} on {device} ({threads} thr{'' if xnnpack else ', no xnnpack'}{runtime})"
