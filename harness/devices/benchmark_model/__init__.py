"""Drive TFLite/LiteRT's official ``benchmark_model`` binary: build its argv, read its output.

Why a module of its own: on a phone the only honest latency/memory numbers come from the
native tool, and its output is plain text whose format drifted across releases (prefixes,
``count=`` lines with and without percentiles, a pre-2020 summary line, logcat framing).
Everything here is stdlib-only so it can run where the device-side tooling runs; numpy is
imported lazily, only by :func:`decode_output_file`.

Format facts relied on (see ``/work/shared/fixtures/benchmark_model/README.md`` and
``tflite/tools/benchmark/benchmark_model.cc``):

* the tool always runs a warm-up stage, then a timed stage, each starting with
  ``Running benchmark for at least N iterations ...`` and ending with one ``count=`` line;
  if the warm-up invoke fails the tool stops after the first ``count=`` line;
* ``std`` is the population standard deviation truncated to an integer, percentiles are
  ``values[n*p/100]`` of the sorted values (no interpolation);
* ``Timings (microseconds): count=...`` lines are also printed by the op profiler, so they
  are only trusted as benchmark timings when no bare ``count=`` line exists (legacy tool).
"""

from __future__ import annotations

from harness.devices.benchmark_model.args import (
    DELEGATES,
    BenchmarkSettings,
    build_args,
    shell_command,
)
from harness.devices.benchmark_model.errors import BenchmarkOutputError
from harness.devices.benchmark_model.failures import classify_failure, decode_output_file
from harness.devices.benchmark_model.output import (
    BenchmarkOutput,
    OpProfileRow,
    RunStats,
    parse_output,
)

__all__ = [
    "DELEGATES",
    "BenchmarkOutput",
    "BenchmarkOutputError",
    "BenchmarkSettings",
    "OpProfileRow",
    "RunStats",
    "build_args",
    "classify_failure",
    "decode_output_file",
    "parse_output",
    "shell_command",
]
