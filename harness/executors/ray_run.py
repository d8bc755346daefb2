"""The driver side of the ray executor: the same campaign, spread over a Ray cluster.

- Conversions (and reference outputs) are Ray tasks on any node with a free CPU
  (`RayPool`, the `WorkerPool` interface, so `Builder` keeps its cache keys and logic).
  A task lost with its node is retried by Ray (`max_retries`); when retries run out the
  conversion becomes `conversion_failed` with reason "node lost", which `--resume` reruns.
- Device jobs ask for one unit of their device's custom resource (`resources.py`), so
  they run on the node the device is attached to, one at a time (`RayDevices`). When that
  node leaves the cluster, its jobs become `device_lost` after `lost_grace_s`.
- The driver is the one writer: rows stream back (`ray.wait`) and are committed to the
  store one by one as they arrive, exactly as the local executor does.
- `local` in a ray campaign means the driver's host, measured as today, after conversions.
- A budget flag set's search runs on the driver (the builder's host pool and local
  runtime: its steps read the driver's calibration); its chosen artifact is measured on
  the devices like any other.

`RayExecutor` is the `Executor` protocol (`base.py`): `CampaignRun` plans and writes rows,
this module only says where the jobs run.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING

import ray
from ray.exceptions import TaskCancelledError

from harness.core import statuses
from harness.core.errors import UsageError
from harness.core.result import Result
from harness.core.runtimes import CPU_INTERPRETER
from harness.executors.base import Record
from harness.executors.local import ThreadDevices
from harness.executors.ray_convert import LOST, RayPools, Shipper, is_lost, one_line
from harness.executors.ray_loopback import NO_ACCELERATORS, loopback_only
from harness.executors.ray_tasks import measure_job
from harness.executors.resources import device_resource, resources_for
from harness.pipeline.artifacts import Artifact, Prepared
from harness.pipeline.build import Builder

if TYPE_CHECKING:
    from harness.pipeline.campaign import CampaignRun, RunOptions


def connect(address: str | None, num_cpus: int | None = None, devices: tuple[str, ...] = ()) -> bool:
    """Join (or start) Ray; True when this call initialized it (and so shuts it down).

    A private instance (no address) is this host alone: it offers the resources of every
    device the campaign names, since they can only be attached here, and nothing of it
    leaves the machine (`ray_loopback`). A cluster the user names is joined as Ray does.
    """
    if ray.is_initialized():
        return False
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False}
    scope = nullcontext()
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(address="local", num_cpus=num_cpus, num_gpus=0, include_dashboard=False,
                      resources={**NO_ACCELERATORS, **resources_for([d for d in devices if d != "local"])})
        scope = loopback_only()
    try:
        with scope:
            ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        raise UsageError(f"cannot reach a Ray cluster {where}: {' '.join(str(exc).split())[:200]}; "
                         "start one with `ray start --head` (see docs/lab.md)") from None
    return True


class RayDevices:
    """Device jobs as Ray tasks placed by the device's resource; `local` stays on the driver."""

    def __init__(self, run: CampaignRun, shipper: Shipper, names: list[str], record: Record,
                 prepared: dict[str, Prepared], gate: threading.Event):
        self.run = run
        self.shipper = shipper
        self.record = record
        self.prepared = prepared
        self.local = ThreadDevices(run, [n for n in names if n == "local"], record, prepared, gate)
        self.remote = [n for n in names if n != "local"]
        self.pending: dict = {}  # ref -> (name, Result)
        self.lost: dict[str, str] = {}
        self.missing_since: dict[str, float] = {}
        self.started = time.monotonic()
        self._cond = threading.Condition()
        self._finished = False
        self._last_watch = 0.0
        self._warned_version = False
        self._thread = threading.Thread(target=self._collect, name="ray-devices", daemon=True)

    def start(self) -> None:
        self.local.start()
        self._thread.start()

    def _runner(self, name: str) -> str:
        from harness.devices.profiles import resolve

        try:
            return resolve(name).runner
        except Exception:  # noqa: BLE001 - informative only
            return "python"

    def put(self, name: str, art: Artifact, threads: int, variant: tuple[str, str] = CPU_INTERPRETER) -> None:
        if name == "local":
            self.local.put(name, art, threads, variant)
            return
        base = self.run.base_result(art, name, threads, self._runner(name), variant)
        with self._cond:
            if name in self.lost:
                base.status = statuses.DEVICE_LOST
                base.reason = f"device lost earlier in this run: {self.lost[name]}"[:400]
        if base.status == statuses.DEVICE_LOST:
            self.record(base)
            return
        p = self.prepared[art.model.name]
        shipper = self.shipper
        blobs = {
            "artifact": shipper.blob(art.path, key=art.sha),
            "prepared_key": p.dir.name,
            "prepared": {f: shipper.blob(p.dir / f) for f in ("eval.npz", "reference.npz") if (p.dir / f).is_file()},
        }
        ref = measure_job.options(resources={device_resource(name): 1}).remote(
            name, replace(art, path=None, log=None), replace(p, dir=None), threads, self.run.campaign.settings,
            base.to_dict(), blobs, self.run.options.node_cache)
        with self._cond:
            self.pending[ref] = (name, base)
            self._cond.notify()

    # ---------------------------------------------------------------- collecting
    def _collect(self) -> None:
        while True:
            with self._cond:
                while not self.pending and not self._finished:
                    self._cond.wait(timeout=1.0)
                if not self.pending and self._finished:
                    return
                refs = list(self.pending)
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in ready:
                self._handle(ref)
            self._watch()

    def _handle(self, ref) -> None:
        with self._cond:
            item = self.pending.pop(ref, None)
        if item is None:
            return  # already recorded (its device was lost)
        name, base = item
        try:
            out = ray.get(ref)
        except TaskCancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - every failure is a row
            if is_lost(exc):
                reason = f"{LOST}: the Ray node with {name} failed ({one_line(exc)}); --resume runs it again"
                self._lose(name, reason[:400], base)
            else:
                base.status, base.reason = statuses.RUNTIME_FAILED, one_line(getattr(exc, "cause", None) or exc)
                self.record(base)
            return
        result = Result.from_dict(out["result"])
        if out.get("runner_log"):
            from harness.devices.base import RunnerReport

            result.log = self.run.keep_runner_log(result, RunnerReport(**out["runner_log"]))
        if out["outputs"] and result.artifact:
            self.run.keep_outputs(result, out["outputs"])
        if out.get("harness") != self.run.versions.get("tflite-harness") and not self._warned_version:
            self._warned_version = True
            self.run.events.note(f"{name}: its node runs tflite-harness {out.get('harness')}, the driver "
                                 f"{self.run.versions.get('tflite-harness')}; install the same version on every host")
        self.run.events.measuring(f"{result.model}/{result.flag_set} on {name}, {result.threads} thread(s)")
        self.record(result)
        if result.status == statuses.DEVICE_LOST:
            self._lose(name, result.reason)

    def _lose(self, name: str, reason: str, first: Result | None = None, earlier: bool = True) -> None:
        """The device (or its node) is gone: FIRST and every pending job of it become rows that say so."""
        with self._cond:
            self.lost.setdefault(name, reason)
            mine = [(ref, base) for ref, (n, base) in self.pending.items() if n == name]
            for ref, _ in mine:
                del self.pending[ref]
        for ref, _ in mine:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - a task on a dead node may not be cancellable
                pass
        if first is not None:
            first.status, first.reason = statuses.DEVICE_LOST, reason
            self.record(first)
        for _, base in mine:
            base.status = statuses.DEVICE_LOST
            base.reason = f"device lost earlier in this run: {reason}"[:400] if earlier else reason
            self.record(base)

    def _watch(self) -> None:
        """A device whose resource no node offers for `lost_grace_s`: its jobs are lost."""
        now = time.monotonic()
        if now - self._last_watch < 1.0:
            return
        self._last_watch = now
        with self._cond:
            waiting = {n for n, _ in self.pending.values()}
        if not waiting:
            return
        try:
            offered = set(ray.cluster_resources())
        except Exception:  # noqa: BLE001 - try again next time
            return
        for name in waiting:
            res = device_resource(name)
            if res in offered:
                self.missing_since.pop(name, None)
                continue
            since = self.missing_since.setdefault(name, now)
            if now - since >= self.run.options.lost_grace_s:
                self._lose(name, (f"{LOST}: no Ray node offers resource {res} (its host left the cluster or "
                                  "never joined; see `tflite-harness lab resources`); --resume runs it again"),
                           earlier=False)

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()
        self._thread.join()
        self.local.finish()

    def stop(self) -> None:
        with self._cond:
            self._finished = True
            refs = list(self.pending)
            self.pending.clear()
            self._cond.notify_all()
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001
                pass
        self.local.stop()


class RayExecutor:
    """Conversions and device jobs on a Ray cluster (the `Executor` protocol).

    Joins (or starts) Ray when made; `close()` shuts down only an instance it started.
    """

    name = "ray"

    def __init__(self, options: RunOptions, devices: tuple[str, ...] = ()):
        self.options = options
        self.owns_ray = connect(options.ray_address, options.workers, devices)
        self.shipper = Shipper()
        self.pools = RayPools(self.shipper, options.node_cache)

    def make_builder(self, run: CampaignRun) -> Builder:
        """The usual `Builder` (cache, schedule, classification) with Ray as its pool."""
        o = self.options
        return Builder(run.campaign, run.cache, run.versions, run.out_dir, o.workers, run.events,
                       pool_factory=self.pools)

    @property
    def conversion_nodes(self) -> list[str]:
        """The Ray node of each finished conversion or preparation of this executor's runs."""
        return self.pools.conversion_nodes

    def device_dispatch(self, run: CampaignRun, names: list[str], record: Record,
                        prepared: dict[str, Prepared], gate: threading.Event) -> RayDevices:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        offered = set(ray.cluster_resources())
        where = ", ".join(f"{n}{'' if device_resource(n) in offered else ' (no node offers it yet)'}"
                          for n in names if n != "local")
        run.events.note(f"ray: {len(nodes)} node(s), {int(ray.cluster_resources().get('CPU', 0))} CPU(s)"
                        + (f"; devices {where}" if where else ""))
        return RayDevices(run, self.shipper, names, record, prepared, gate)

    def close(self) -> None:
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False
