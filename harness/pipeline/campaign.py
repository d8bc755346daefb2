"""Config -> plan -> execution.

A run plans its jobs (models x flag sets x devices x settings), hands conversions and
device jobs to its executor (`harness/executors/`: local threads and worker processes,
or a Ray cluster; one small protocol in `executors/base.py`), and writes every job's
row to the store the moment it exists. Only this driver writes, whatever the executor.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import Campaign, campaign_config, campaign_from_config  # noqa: F401 - re-exported
from harness.convert.cache import Cache
from harness.core import statuses
from harness.core.result import Result
from harness.core.runtimes import CPU_INTERPRETER, INTERPRETER, variants
from harness.pipeline.artifacts import AS_GIVEN, Artifact, Prepared
from harness.pipeline.evaluate import drift_between
from harness.store import Store, new_run_id

if TYPE_CHECKING:
    from harness.executors.base import Executor

__all__ = ["AS_GIVEN", "CampaignRun", "Events", "RunOptions", "RunSummary", "retry_on_resume"]

NODE_LOST = statuses.NODE_LOST  # failure category of a conversion whose executor node was lost


@dataclass
class RunOptions:
    out_root: Path = Path("results")
    out_dir: Path | None = None
    store_path: Path | None = None
    cache_dir: Path | None = None
    workers: int = max(1, os.cpu_count() or 1)
    debug: bool = False
    run_id: str | None = None
    baseline: str = "fp32"  # the flag set that results.md/results.csv relative columns refer to
    executor: str = "local"  # local | ray (harness/executors/)
    ray_address: str | None = None  # None: start a local Ray instance; "auto": join the running cluster
    node_cache: str | None = None  # ray: artifact cache on each node ("{node}" expands to the node id)
    lost_grace_s: float = 10.0  # ray: how long a device's node may be missing before its jobs are lost


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    results: list[Result]
    conversions_performed: int
    conversions_cached: int
    store_path: Path
    interrupted: bool = False


class Events:
    """What the runner reports while it works; the CLI draws a progress bar from it."""

    def planned(self, conversions: int, measurements: int) -> None: ...
    def converted(self, artifact: Artifact) -> None: ...
    def measuring(self, label: str) -> None: ...
    def measured(self, result: Result) -> None: ...
    def note(self, text: str) -> None: ...


def tool_versions() -> dict[str, str]:
    """Versions that decide conversion output, read without importing TensorFlow."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.core.version import __version__

    out = {"tflite-harness": __version__}
    for dist in ("tensorflow", "tensorflow-cpu", "ai-edge-litert", "ai-edge-quantizer", "keras", "numpy"):
        try:
            out[dist.replace("-cpu", "")] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def retry_on_resume(result: Result) -> bool:
    """Rows that `--resume` runs again: a lost device, or a conversion whose node was lost."""
    return result.status == statuses.DEVICE_LOST or (
        result.status == statuses.CONVERSION_FAILED and result.failure_category == NODE_LOST)


class CampaignRun:
    """One run of a campaign: its id, folder, store and cache, and the executor its jobs go to.

    `executor` defaults to `LocalExecutor` (this host); `harness.executors.make_run` picks
    one from `options.executor`.
    """

    def __init__(self, campaign: Campaign, options: RunOptions, events: Events | None = None,
                 executor: Executor | None = None):
        if executor is None:
            from harness.executors.local import LocalExecutor

            executor = LocalExecutor()
        self.campaign = campaign
        self.options = options
        self.events = events or Events()
        self.executor = executor
        self.run_id = options.run_id or new_run_id()
        self.out_dir = options.out_dir or options.out_root / self.run_id
        self.store_path = options.store_path or options.out_root / "harness.sqlite"
        self.cache = Cache(options.cache_dir or options.out_root / "cache")
        self.versions = tool_versions()
        self.builder = executor.make_builder(self)
        self.stopping = threading.Event()  # Ctrl-C or closing: a job that ends now is not a result
        self._lock = threading.Lock()
        # (artifact sha, device, threads, runtime API, accelerator) -> outputs, for the vs_local and
        # vs_interpreter drift at the end of the run
        self._outputs: dict[tuple, list] = {}

    # ------------------------------------------------------------------ rows
    def _plan_index(self, art: Artifact, device: str, threads: int, variant: tuple[str, str]) -> int:
        models = [m.name for m in self.campaign.models]
        flag_sets = [fs.name for fs in self.campaign.flag_sets] + [AS_GIVEN]
        devices = list(self.campaign.devices)
        s = self.campaign.settings
        idx = models.index(art.model.name)
        idx = idx * len(flag_sets) + flag_sets.index(art.flag_set)
        idx = idx * max(1, len(devices)) + (devices.index(device) if device in devices else 0)
        idx = idx * len(s.threads) + (s.threads.index(threads) if threads in s.threads else 0)
        axis = variants(s.runtimes, s.accelerators)
        return idx * max(1, len(axis)) + (axis.index(variant) if variant in axis else 0)

    def base_result(self, art: Artifact, device: str, threads: int, runner: str = "python",
                    variant: tuple[str, str] = CPU_INTERPRETER) -> Result:
        """The row of ART on DEVICE before it is measured: what conversion knows, the artifact's
        status and reason, its place in the plan. Executors fill in the measurement."""
        return Result(
            plan_index=self._plan_index(art, device, threads, variant),
            runtime_api=variant[0], accelerator=variant[1],
            model=art.model.name, flag_set=art.flag_set, device=device, threads=threads,
            xnnpack=self.campaign.settings.xnnpack, runner=runner, status=art.status, reason=art.reason,
            artifact=art.sha, artifact_path=str(art.path) if art.path else None,
            size_bytes=art.meta.size_bytes, convert_s=art.meta.convert_s, converted=art.converted,
            failure_category=art.failure_category, ops=list(art.meta.ops),
            representative=art.meta.representative, tool_versions=self.versions, log=art.log,
            diagnosis=art.meta.diagnosis,
            conversion_path=art.meta.conversion_path, warnings=list(art.meta.notes),
        )

    # ------------------------------------------------------------------ outputs
    def keep_outputs(self, r: Result, outputs: list) -> None:
        """Keep a measurement's outputs for the vs_local and vs_interpreter drift at the end of the run."""
        with self._lock:
            self._outputs[(r.artifact, r.device, r.threads, r.runtime_api, r.accelerator)] = outputs

    def keep_runner_log(self, r: Result, report) -> str:
        """logs/<model>-<flag set>-<device>-t<threads>-benchmark_model.txt: the command line and what
        benchmark_model printed, for the row's figures to be checked against the tool's own."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{r.model}-{r.flag_set}-{r.device}")
        path = self.out_dir / "logs" / f"{safe}-t{r.threads}-{report.runtime or 'runner'}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        import shlex

        text = f"$ {shlex.join(report.command)}\n{report.raw_output}" if report.command or report.raw_output else ""
        for x in report.scripts:  # every script pushed to the device, what it printed, its exit code
            text += (f"\n--- {x['step']}: pushed script {x['name']} ---\n{x['script']}"
                     f"--- its output (exit code {x['exit_code']}) ---\n{x['output']}")
        path.write_text(text, encoding="utf-8")
        return str(path)

    def keep_runtime_log(self, r: Result, text: str) -> None:
        """logs/runtime.log: what a runner process wrote to stderr (LiteRT's "INFO: Created
        TensorFlow Lite XNNPACK delegate for CPU.", warnings), under a line naming the row.
        Kept here rather than shown: the terminal shows the table (issue 19)."""
        path = self.out_dir / "logs" / "runtime.log"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(f"=== {r.model}/{r.flag_set} on {r.device}, {r.threads} thread(s)\n{text.rstrip()}\n")

    def _device_vs_local(self, results: list[Result], store: Store) -> None:
        """For rows of remote devices: drift against the local runtime on the same artifact.

        This isolates what the device's runtime or delegate does from what quantization did.
        """
        for r in results:
            if r.status not in (statuses.OK, statuses.UNHEALTHY) or not r.artifact:
                continue
            mine = self._outputs.get((r.artifact, r.device, r.threads, r.runtime_api, r.accelerator))
            if mine is None:
                continue
            extra = {}
            if r.device != "local":
                local = self._outputs.get((r.artifact, "local", r.threads, r.runtime_api, r.accelerator)) or next(
                    (v for (sha, dev, *_), v in self._outputs.items() if sha == r.artifact and dev == "local"), None)
                if local is not None and (vs := drift_between(local, mine)) is not None:
                    extra["vs_local"] = vs
            if r.runtime_api != INTERPRETER:  # the same artifact through the Interpreter, same device
                interp = self._outputs.get((r.artifact, r.device, r.threads, INTERPRETER, "cpu")) or next(
                    (v for (sha, dev, _, api, _), v in self._outputs.items()
                     if sha == r.artifact and dev == r.device and api == INTERPRETER), None)
                if interp is not None and (vs := drift_between(interp, mine)) is not None:
                    extra["vs_interpreter"] = vs
            if extra:
                r.drift = {**(r.drift or {}), **extra}
                store.add_result(self.run_id, r)

    def _write_timeline(self) -> None:
        """logs/build-timeline.json: when each worker job was submitted, started and finished,
        and each worker's TensorFlow import, for `bench/pipelining.py` and for diagnosis."""
        b = self.builder
        if not b.timeline and not b.worker_imports:
            return
        path = self.out_dir / "logs" / "build-timeline.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"jobs": b.timeline, "worker_imports": b.worker_imports}, indent=1),
                        encoding="utf-8")

    # ------------------------------------------------------------------ run
    def execute(self, resume_keys: set | None = None) -> RunSummary:
        s = self.campaign.settings
        self.out_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.store_path)
        if resume_keys is None:
            store.start_run(
                self.run_id, campaign=self.campaign.name,
                campaign_path=str(self.campaign.path) if self.campaign.path else None,
                tool_versions=self.versions, config=campaign_config(self.campaign), out_dir=str(self.out_dir),
            )
        done_keys = set(resume_keys or ())
        if resume_keys is not None:
            stored = store.results(self.run_id)
            done_keys -= {r.key for r in stored if retry_on_resume(r)}
            # results.jsonl mirrors the store: a kill between a row's commit and its line, or a row
            # run again now, must not leave it missing or twice
            tmp = self.out_dir / "results.jsonl.tmp"
            tmp.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in stored if r.key in done_keys),
                           encoding="utf-8")
            os.replace(tmp, self.out_dir / "results.jsonl")
        names = list(dict.fromkeys(self.campaign.devices))  # a device named twice runs once (one thread, one queue)
        n_conv = sum(len(self.campaign.flag_sets) if m.kind != "tflite" else 1 for m in self.campaign.models)
        axis = variants(s.runtimes, s.accelerators)
        self.events.planned(n_conv, n_conv * len(names) * len(s.threads) * len(axis))
        results: list[Result] = []
        jsonl = (self.out_dir / "results.jsonl").open("a", encoding="utf-8")

        def record(result: Result) -> None:
            if result.diagnosis and result.status == statuses.OK and not result.reason:
                # a budget row says which layers stayed float
                from harness.pipeline.budgeted import float_note

                result.reason = float_note(result.diagnosis)
            with self._lock:
                if result.key in done_keys or self.stopping.is_set():
                    return  # Ctrl-C or closing: a job that ends now is not a result (the files may be closed)
                store.add_result(self.run_id, result)
                jsonl.write(json.dumps(result.to_dict()) + "\n")
                jsonl.flush()
                results.append(result)
            self.events.measured(result)

        conversions_done = threading.Event()
        prepared: dict[str, Prepared] = {}
        devices = None
        interrupted = False
        try:
            # TensorFlow's import in the workers (~6 s) overlaps the rest of the set-up; a run the
            # cache covers starts no worker at all.
            self.builder.start_workers()
            devices = self.executor.device_dispatch(self, names, record, prepared, conversions_done)
            devices.start()  # remote devices take each artifact as soon as it and its model's references exist

            def converted(art: Artifact) -> None:
                self.events.converted(art)
                for name in names:
                    for th in s.threads:
                        for v in axis:
                            if (art.model.name, art.flag_set, name, th, s.xnnpack, *v) in done_keys:
                                continue
                            if art.ok:
                                devices.put(name, art, th, v)
                            else:
                                record(self.base_result(art, name, th, variant=v))

            self.builder.build(prepared, converted)
            self.builder.close()
            conversions_done.set()
            devices.finish()
            self._device_vs_local(results, store)
        except KeyboardInterrupt:
            interrupted = True
            with self._lock:
                self.stopping.set()
            if devices is not None:
                devices.stop()
        finally:
            with self._lock:
                self.stopping.set()  # no row after this point: the files close below
            self.builder.close(kill=True)
            conversions_done.set()
            jsonl.close()
            self._write_timeline()
            store.finish_run(self.run_id, "interrupted" if interrupted else "done")
            all_results = store.results(self.run_id)
            store.close()
            self.executor.close()
        from harness.report.export import write_exports

        write_exports(self.out_dir, all_results, baseline=self.options.baseline)
        return RunSummary(self.run_id, self.out_dir, all_results, self.builder.conversions_performed,
                          self.builder.conversions_cached, self.store_path, interrupted)
