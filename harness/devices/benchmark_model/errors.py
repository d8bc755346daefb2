"""The one exception type the benchmark_model parser raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.devices.benchmark_model.parsed import BenchmarkOutput


class BenchmarkOutputError(ValueError):
    """The text (or output file) cannot yield what was asked for.

    A ValueError so callers that already treat bad input as ValueError keep working.
    ``partial`` carries whatever was parsed before giving up (e.g. the init time of a run
    that crashed in its first invoke), so a caller can still report it.
    """

    def __init__(self, message: str, partial: BenchmarkOutput | None = None) -> None:
        super().__init__(message)
        self.partial = partial
