"""The executor protocol: where a campaign's conversions and device jobs run.

`CampaignRun` (pipeline/campaign.py) plans the jobs, writes every row to the store and
the run folder, and asks its executor only two things: a `Builder` for the conversions
and a `Dispatch` for the device jobs. `LocalExecutor` (executors/local.py) runs them on
this host; `RayExecutor` (executors/ray_run.py) on a Ray cluster. Either way the driver
is the one writer, so results are the same rows in the same store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.core.result import Result
    from harness.pipeline.artifacts import Artifact, Prepared
    from harness.pipeline.build import Builder
    from harness.pipeline.campaign import CampaignRun

Record = Callable[["Result"], None]  # commits one row (store, results.jsonl, events); thread-safe


class Dispatch(Protocol):
    """Device jobs of one run: `start()`, `put()` each job, then `finish()` (or `stop()` on Ctrl-C)."""

    def start(self) -> None:
        """Open the devices and begin taking jobs."""

    def put(self, name: str, art: Artifact, threads: int, variant: tuple[str, str] = ("interpreter", "cpu")) -> None:
        """Queue one measurement of ART on device NAME with VARIANT (runtime API, accelerator);
        its row reaches `record` when it ends."""

    def finish(self) -> None:
        """Wait until every queued job has become a row."""

    def stop(self) -> None:
        """Ctrl-C: end after the current jobs; rows that end now are not recorded."""


class Executor(Protocol):
    """Where a run's jobs go. One executor serves one `CampaignRun`."""

    name: str

    def make_builder(self, run: CampaignRun) -> Builder:
        """The `Builder` that prepares and converts the run's models."""

    def device_dispatch(self, run: CampaignRun, names: list[str], record: Record,
                        prepared: dict[str, Prepared], gate: threading.Event) -> Dispatch:
        """Device jobs for devices NAMES; PREPARED fills in as models are prepared, and the
        `local` device waits for GATE (conversions done) so it never shares the CPU with them."""

    def close(self) -> None:
        """After the run's store is closed (the Ray executor disconnects here)."""
