"""pytest plugin (entry point `pytest11`): conversion regression tests in a few lines.

    def test_int8_digits(tflite_harness):
        r = tflite_harness.run("models/digits_cnn.keras", flag_set="int8")
        tflite_harness.assert_ok(r, max_abs=0.05, min_top1=0.95, max_size_bytes=30_000)

    def test_int8_latency(tflite_harness, benchmark):   # pytest-benchmark's fixture
        art = tflite_harness.convert_model("models/digits_cnn.keras", "int8")
        tflite_harness.benchmark(benchmark, art)

`run` converts (cached by content, like the CLI) and measures in a fresh process on the
local runtime, so drift, size and latency are the same numbers the CLI prints.
`diagnose` ranks the layers where int8 hurts and, with `budget="top1>=0.99"`, searches
for the cheapest set of float layers that meets it.
`benchmark` times `invoke()` through pytest-benchmark, so `--benchmark-autosave` and
`--benchmark-compare-fail=mean:5%` work as users know them. Nothing heavy is imported
until a fixture is used: this module is loaded by every pytest session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.core import statuses


@dataclass
class ConvertedArtifact:
    model: str
    flag_set: str
    path: Path
    size_bytes: int
    ops: list[str]
    input_names: list[str]
    inputs_npz: Path


class HarnessFixture:
    """What the `tflite_harness` fixture gives a test."""

    def __init__(self, root: Path, cache_dir: Path):
        self.root = root
        self.cache_dir = cache_dir
        self._count = 0

    BASE_SETTINGS = {"runs": 20, "warmup_runs": 2, "min_seconds": 0.1, "eval_samples": 32}

    def _out(self) -> Path:
        self._count += 1
        return self.root / f"run-{self._count}"

    def run(self, model: str | os.PathLike, flag_set: str = "fp32", *, samples: str | None = None,
            threads: int = 1, **settings: Any):
        """Convert MODEL with FLAG_SET and measure it locally; returns the result row."""
        from harness.api import run_model

        summary = run_model(model, [flag_set], ["local"], samples=samples, out=self._out(),
                            store=self.root / "harness.sqlite", cache_dir=self.cache_dir, workers=1,
                            **{**self.BASE_SETTINGS, "threads": (threads,), **settings})
        return summary.results[0]

    def convert(self, model: str | os.PathLike, flag_set: str = "fp32", *, samples: str | None = None
                ) -> ConvertedArtifact:
        """Convert only; fails the test with the converter's reason when conversion fails."""
        from harness.api import convert_model

        done = convert_model(model, [flag_set], samples=samples, out=self._out(), cache_dir=self.cache_dir, workers=1)
        art = done.artifacts[0]
        if not art.ok:
            pytest.fail(f"{art.model.name}/{flag_set}: {art.status}: {art.reason}", pytrace=False)
        p = done.prepared[art.model.name]
        return ConvertedArtifact(art.model.name, flag_set, art.path, art.meta.size_bytes, list(art.meta.ops),
                                 p.meta.input_names, p.dir / "eval.npz")

    def benchmark(self, benchmark, artifact: ConvertedArtifact, threads: int = 1):
        """Time `invoke()` of ARTIFACT with pytest-benchmark's `benchmark` fixture (in this process)."""
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        from harness.devices.runner import match_inputs, quantize

        interp = Interpreter(model_path=str(artifact.path), num_threads=threads)
        interp.allocate_tensors()
        details = match_inputs(interp.get_input_details(), artifact.input_names)
        with np.load(artifact.inputs_npz, allow_pickle=False) as data:
            for i, d in enumerate(details):
                interp.set_tensor(d["index"], quantize(data[str(i)][:1], d, np))
        benchmark.extra_info.update({"model": artifact.model, "flag_set": artifact.flag_set,
                                     "size_bytes": artifact.size_bytes, "threads": threads})
        return benchmark(interp.invoke)

    def assert_no_regression(self, base, new, *, confirm: bool = True, rounds: int = 6, **thresholds: Any):
        """Fail unless the gate passes NEW against BASE (rows, run ids, or results.json paths):
        the CLI's `compare`, confirmation included (artifacts found in this fixture's cache).
        `thresholds`: harness.report.compare.Thresholds fields, e.g. max_latency_regression=0.1."""
        from harness.api import compare

        c = compare(base, new, confirm=confirm, rounds=rounds, cache_dirs=(self.cache_dir,), **thresholds)
        if c.failed:
            pytest.fail(c.summary() + "".join(f"\n  {r.label}: {r.why}" for r in c.regressed + c.unconfirmed),
                        pytrace=False)
        return c

    def diagnose(self, model: str | os.PathLike, flag_set: str = "int8", *, samples: str | None = None,
                 budget: str | None = None, float_layers: list[str] | None = None):
        """Per-layer quantization error of MODEL (worst first); with BUDGET, the search for the
        cheapest mixed precision meeting it (`result.search["met"]`, `["chosen"]["float_layers"]`).
        The same call as harness.diagnose; shares the fixture's cache with `run` and `convert`."""
        from harness.api import diagnose

        self._count += 1
        return diagnose(model, flag_set, samples=samples, budget=budget, float_layers=float_layers,
                        cache_dir=self.cache_dir, out_dir=self.root / f"diagnose-{self._count}")

    @staticmethod
    def assert_ok(result, *, max_abs: float | None = None, min_cosine: float | None = None,
                  min_top1: float | None = None, min_accuracy: float | None = None,
                  max_size_bytes: int | None = None, max_p50_us: float | None = None) -> None:
        """Fail with one line per broken bound (status first)."""
        problems = []
        if result.status != statuses.OK:
            problems.append(f"status {result.status}: {result.reason}")
        d = result.drift or {}
        checks = [
            (max_abs, d.get("max_abs"), lambda v, b: v <= b, "max_abs {v:.4g} > {b}"),
            (min_cosine, d.get("cosine"), lambda v, b: v >= b, "cosine {v:.4f} < {b}"),
            (min_top1, d.get("top1_agreement"), lambda v, b: v >= b, "top-1 agreement {v:.3f} < {b}"),
            (min_accuracy, d.get("accuracy"), lambda v, b: v >= b, "accuracy {v:.3f} < {b}"),
            (max_size_bytes, result.size_bytes, lambda v, b: v <= b, "size {v} bytes > {b}"),
            (max_p50_us, (result.latency_us or {}).get("p50"), lambda v, b: v <= b, "p50 {v:.1f} us > {b}"),
        ]
        for bound, value, ok, text in checks:
            if bound is None:
                continue
            if value is None:
                problems.append(text.split(" ")[0] + " was not measured")
            elif not ok(value, bound):
                problems.append(text.format(v=value, b=bound))
        if problems:
            pytest.fail(f"{result.model}/{result.flag_set}: " + "; ".join(problems), pytrace=False)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tflite-harness")
    group.addoption("--tflite-harness-cache", default=None,
                    help="conversion cache shared by tests (default: $TFLITE_HARNESS_CACHE or results/cache)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "tflite_harness: a conversion regression test using tflite-harness")


@pytest.fixture(scope="session")
def tflite_harness(request, tmp_path_factory) -> HarnessFixture:
    cache = request.config.getoption("--tflite-harness-cache") or os.environ.get(
        "TFLITE_HARNESS_CACHE", "results/cache")
    return HarnessFixture(tmp_path_factory.mktemp("tflite-harness"), Path(cache).resolve())
