"""What one benchmark_model run's text tells us, as data classes (filled by `output.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunStats:
    """One ``count=`` line. ``first``/``curr``/percentiles are None when not printed
    (older tools, or the ``count=N curr=X`` form used when all values are equal).
    For ``count=0`` the float fields are NaN, as the tool's own ``avg()`` would be."""

    count: int
    first_us: float | None
    curr_us: float | None
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    p5_us: float | None
    median_us: float | None
    p95_us: float | None


@dataclass
class OpProfileRow:
    """One row of the per-op "Run Order" table (times in ms, as the tool prints them)."""

    node_type: str
    first_ms: float | None
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float | None
    times_called: int | None
    name: str


@dataclass
class BenchmarkOutput:
    """Everything we read from one run's text. Any field may be None: the format differs
    across tool versions and a run may have stopped part way."""

    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    warmup: RunStats | None = None
    inference: RunStats | None = None
    model_size_mb: float | None = None
    init_memory_mb: float | None = None
    overall_memory_mb: float | None = None
    peak_memory_mb: float | None = None
    vm_rss_mb: float | None = None
    delegate: str | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    partitions: int | None = None
    fully_delegated: bool | None = None
    num_threads: int | None = None
    graph: str | None = None
    min_num_runs: int | None = None
    op_profile: list[OpProfileRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def delegate_coverage(self) -> float | None:
        """Fraction of nodes the delegate took (1.0 when it said it runs the whole graph)."""
        if self.delegated_nodes is not None and self.total_nodes:
            return self.delegated_nodes / self.total_nodes
        if self.fully_delegated:
            return 1.0
        return None

    @property
    def has_timing(self) -> bool:
        """True when the text carried any latency: warm-up, timed runs or per-op times
        (an op-profile table on its own still tells where the time goes)."""
        return bool(self.op_profile) or any(
            v is not None
            for v in (self.inference_avg_us, self.warmup_avg_us, self.inference, self.warmup)
        )
