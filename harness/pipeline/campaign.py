"""Config -> plan -> execution.

Conversions (and reference outputs) run in TensorFlow worker processes in parallel
(`build.py`). Each device has one thread that runs its jobs one at a time; remote
devices start as soon as their first artifact exists, so conversions pipeline ahead
of device work, while the local device waits until the converter workers are gone,
so no local measurement shares the CPU with a conversion. Every job ends as a result
row committed to the store the moment it exists.

This is the `local` executor. `harness/executors/ray_run.py` subclasses it through two
seams, `_make_builder` (where conversions run) and `_devices` (where device jobs run),
to spread the same jobs over a Ray cluster; the store is written here either way.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import Campaign, campaign_config, campaign_from_config  # noqa: F401 - re-exported
from harness.convert.cache import Cache
from harness.core import statuses
from harness.core.result import Result
from harness.devices.registry import open_device
from harness.pipeline.artifacts import AS_GIVEN, Artifact, Prepared
from harness.pipeline.build import Builder
from harness.pipeline.evaluate import drift_between, measure_on
from harness.store import Store, new_run_id

__all__ = ["AS_GIVEN", "CampaignRun", "Events", "RunOptions", "RunSummary", "retry_on_resume"]

NODE_LOST = "node_lost"  # failure category of a conversion whose executor node was lost


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

    import harness

    out = {"tflite-harness": harness.__version__}
    for dist in ("tensorflow", "tensorflow-cpu", "ai-edge-litert", "keras", "numpy"):
        try:
            out[dist.replace("-cpu", "")] = version(dist)
        except PackageNotFoundError:
            continue
    return out


_DONE = object()


def retry_on_resume(result: Result) -> bool:
    """Rows that `--resume` runs again: a lost device, or a conversion whose node was lost."""
    return result.status == statuses.DEVICE_LOST or (
        result.status == statuses.CONVERSION_FAILED and result.failure_category == NODE_LOST)


class ThreadDevices:
    """Today's device dispatch: one thread and one queue per device, one job at a time.

    The local device waits for `gate` (conversions done) so no local measurement shares
    the CPU with a conversion.
    """

    def __init__(self, run: CampaignRun, names: list[str], record, prepared: dict, gate: threading.Event):
        self.queues = {name: queue.Queue() for name in names}
        self.threads = [
            threading.Thread(target=run._device_loop,
                             args=(name, self.queues[name], gate if name == "local" else None, record, prepared),
                             name=f"device-{name}", daemon=True)
            for name in names
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def put(self, name: str, art: Artifact, threads: int) -> None:
        self.queues[name].put((art, threads))

    def finish(self) -> None:
        for q in self.queues.values():
            q.put(_DONE)
        for t in self.threads:
            while t.is_alive():
                t.join(timeout=0.5)

    def stop(self) -> None:
        """Ctrl-C: the device loops see `_stopping` and end after their current job."""


class CampaignRun:
    def __init__(self, campaign: Campaign, options: RunOptions, events: Events | None = None):
        self.campaign = campaign
        self.options = options
        self.events = events or Events()
        self.run_id = options.run_id or new_run_id()
        self.out_dir = options.out_dir or options.out_root / self.run_id
        self.store_path = options.store_path or options.out_root / "harness.sqlite"
        self.cache = Cache(options.cache_dir or options.out_root / "cache")
        self.versions = tool_versions()
        self.builder = self._make_builder()
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # Ctrl-C: a job cut short is not a result
        self._outputs: dict[tuple, list] = {}  # (artifact sha, device, threads) -> outputs, for device-vs-local drift

    # ------------------------------------------------------------------ executor seams
    def _make_builder(self) -> Builder:
        o = self.options
        return Builder(self.campaign, self.cache, self.versions, self.out_dir, o.workers, self.events)

    def _devices(self, names: list[str], record, prepared: dict, gate: threading.Event):
        """Where device jobs go: `put(name, art, threads)`, then `finish()` waits for them all."""
        return ThreadDevices(self, names, record, prepared, gate)

    # ------------------------------------------------------------------ rows
    def _plan_index(self, art: Artifact, device: str, threads: int) -> int:
        models = [m.name for m in self.campaign.models]
        flag_sets = [fs.name for fs in self.campaign.flag_sets] + [AS_GIVEN]
        devices = list(self.campaign.devices)
        s = self.campaign.settings
        idx = models.index(art.model.name)
        idx = idx * len(flag_sets) + flag_sets.index(art.flag_set)
        idx = idx * max(1, len(devices)) + (devices.index(device) if device in devices else 0)
        return idx * len(s.threads) + (s.threads.index(threads) if threads in s.threads else 0)

    def _base_result(self, art: Artifact, device: str, threads: int, runner: str = "python") -> Result:
        return Result(
            plan_index=self._plan_index(art, device, threads),
            model=art.model.name, flag_set=art.flag_set, device=device, threads=threads,
            xnnpack=self.campaign.settings.xnnpack, runner=runner, status=art.status, reason=art.reason,
            artifact=art.sha, artifact_path=str(art.path) if art.path else None,
            size_bytes=art.meta.get("size_bytes"), convert_s=art.meta.get("convert_s"), converted=art.converted,
            failure_category=art.failure_category, ops=art.meta.get("ops", []),
            representative=art.meta.get("representative"), tool_versions=self.versions, log=art.log,
        )

    # ------------------------------------------------------------------ devices
    def _device_loop(self, name: str, jobs: queue.Queue, gate: threading.Event | None, record, prepared) -> None:
        """One device, one job at a time; a lost device turns its remaining jobs into rows that say so."""
        s = self.campaign.settings
        device = None
        lost_reason = None
        try:
            device = open_device(name)
        except Exception as exc:  # noqa: BLE001 - an unreachable device is a row, not a crash
            lost_reason = " ".join(str(exc).split())
            self.events.note(f"{name}: {lost_reason}")
        if gate is not None:
            gate.wait()
        first = True
        while True:
            item = jobs.get()
            if item is _DONE:
                break
            art, threads = item
            runner = getattr(device, "runner", "python")
            result = self._base_result(art, name, threads, runner)
            if lost_reason is not None:
                result.status = statuses.DEVICE_LOST
                result.reason = lost_reason if device is None else f"device lost earlier in this run: {lost_reason}"
                record(result)
                continue
            if not first and s.cooldown_s:
                time.sleep(s.cooldown_s)
            first = False
            self.events.measuring(f"{art.model.name}/{art.flag_set} on {name}, {threads} thread(s)")
            overlapped = name == "local" and self.builder.busy
            try:
                result, m = measure_on(device, art, prepared[art.model.name], threads, s, result)
                if overlapped or (name == "local" and self.builder.busy):
                    result.validity = "; ".join(x for x in (result.validity if result.validity != "valid" else None,
                                                             "measured while conversions were running") if x)
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the device
                result.status = statuses.RUNTIME_FAILED
                result.reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
                m = None
            if self._stopping.is_set():
                break
            if m is not None and m.outputs and result.status in (statuses.OK, statuses.UNHEALTHY):
                with self._lock:
                    self._outputs[(art.sha, name, threads)] = m.outputs
            if result.status == statuses.DEVICE_LOST:
                lost_reason = result.reason
            record(result)
        if device is not None:
            try:
                device.close()
            except Exception:  # noqa: BLE001
                pass

    def _device_vs_local(self, results: list[Result], store: Store) -> None:
        """For rows of remote devices: drift against the local runtime on the same artifact.

        This isolates what the device's runtime or delegate does from what quantization did.
        """
        for r in results:
            if r.device == "local" or r.status not in (statuses.OK, statuses.UNHEALTHY) or not r.artifact:
                continue
            local = self._outputs.get((r.artifact, "local", r.threads)) or next(
                (v for (sha, dev, _), v in self._outputs.items() if sha == r.artifact and dev == "local"), None)
            mine = self._outputs.get((r.artifact, r.device, r.threads))
            if local is None or mine is None:
                continue
            vs = drift_between(local, mine)
            if vs is not None:
                r.drift = {**(r.drift or {}), "vs_local": vs}
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

    def _closed(self) -> None:
        """After the store is closed (an executor disconnects here)."""

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
        names = list(self.campaign.devices)
        n_conv = sum(len(self.campaign.flag_sets) if m.kind != "tflite" else 1 for m in self.campaign.models)
        self.events.planned(n_conv, n_conv * len(names) * len(s.threads))
        results: list[Result] = []
        jsonl = (self.out_dir / "results.jsonl").open("a", encoding="utf-8")

        def record(result: Result) -> None:
            with self._lock:
                if result.key in done_keys or self._stopping.is_set():
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
            devices = self._devices(names, record, prepared, conversions_done)
            devices.start()  # remote devices take each artifact as soon as it and its model's references exist

            def converted(art: Artifact) -> None:
                self.events.converted(art)
                for name in names:
                    for th in s.threads:
                        if (art.model.name, art.flag_set, name, th, s.xnnpack) in done_keys:
                            continue
                        if art.ok:
                            devices.put(name, art, th)
                        else:
                            record(self._base_result(art, name, th))

            self.builder.build(prepared, converted)
            self.builder.close()
            conversions_done.set()
            devices.finish()
            self._device_vs_local(results, store)
        except KeyboardInterrupt:
            interrupted = True
            with self._lock:
                self._stopping.set()
            if devices is not None:
                devices.stop()
        finally:
            with self._lock:
                self._stopping.set()  # no row after this point: the files close below
            self.builder.close(kill=True)
            conversions_done.set()
            jsonl.close()
            self._write_timeline()
            store.finish_run(self.run_id, "interrupted" if interrupted else "done")
            all_results = store.results(self.run_id)
            store.close()
            self._closed()
        from harness.report.export import write_exports

        write_exports(self.out_dir, all_results, baseline=self.options.baseline)
        return RunSummary(self.run_id, self.out_dir, all_results, self.builder.conversions_performed,
                          self.builder.conversions_cached, self.store_path, interrupted)
