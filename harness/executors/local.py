"""The local executor: converter worker processes and one thread per device on this host.

Each device has one thread that runs its jobs one at a time. Remote devices start as
soon as their first artifact exists, so conversions pipeline ahead of device work; the
local device waits until the converter workers are gone, so no local measurement shares
the CPU with a conversion. A device that cannot be opened, or is lost mid-run, turns
its remaining jobs into `device_lost` rows; the other devices go on.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

from harness.core import statuses
from harness.core.runtimes import CPU_INTERPRETER, label
from harness.devices.registry import open_device
from harness.executors.base import Record
from harness.pipeline.build import Builder
from harness.pipeline.evaluate import measure_on

if TYPE_CHECKING:
    from harness.pipeline.artifacts import Artifact, Prepared
    from harness.pipeline.campaign import CampaignRun

DONE = object()  # end of a device's job queue
MEASURED_DURING_CONVERSIONS = "measured while conversions were running"


class LocalExecutor:
    """Conversions in this host's converter workers; device jobs in one thread per device."""

    name = "local"

    def make_builder(self, run: CampaignRun) -> Builder:
        o = run.options
        return Builder(run.campaign, run.cache, run.versions, run.out_dir, o.workers, run.events)

    def device_dispatch(self, run: CampaignRun, names: list[str], record: Record,
                        prepared: dict[str, Prepared], gate: threading.Event) -> ThreadDevices:
        return ThreadDevices(run, names, record, prepared, gate)

    def close(self) -> None:
        """Nothing to let go of: the builder closes its own workers."""


class ThreadDevices:
    """One thread and one queue per device, one job at a time (the `Dispatch` protocol).

    The local device waits for `gate` (conversions done) so no local measurement shares
    the CPU with a conversion.
    """

    def __init__(self, run: CampaignRun, names: list[str], record: Record, prepared: dict[str, Prepared],
                 gate: threading.Event):
        self.queues: dict[str, queue.Queue] = {name: queue.Queue() for name in names}
        self.threads = [
            threading.Thread(target=device_loop,
                             args=(run, name, self.queues[name], gate if name == "local" else None, record, prepared),
                             name=f"device-{name}", daemon=True)
            for name in names
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def put(self, name: str, art: Artifact, threads: int, variant: tuple[str, str] = CPU_INTERPRETER) -> None:
        self.queues[name].put((art, threads, variant))

    def finish(self) -> None:
        for q in self.queues.values():
            q.put(DONE)
        for t in self.threads:
            while t.is_alive():
                t.join(timeout=0.5)

    def stop(self) -> None:
        """Ctrl-C: the device loops see `run.stopping` and end after their current job."""


def device_loop(run: CampaignRun, name: str, jobs: queue.Queue, gate: threading.Event | None,
                record: Record, prepared: dict[str, Prepared]) -> None:
    """One device, one job at a time; a lost device turns its remaining jobs into rows that say so."""
    s = run.campaign.settings
    device = None
    lost_reason = None
    try:
        device = open_device(name)
    except Exception as exc:  # noqa: BLE001 - an unreachable device is a row, not a crash
        lost_reason = " ".join(str(exc).split())
        run.events.note(f"{name}: {lost_reason}")
    if gate is not None:
        gate.wait()
    first = True
    while True:
        item = jobs.get()
        if item is DONE:
            break
        art, threads, variant = item
        runner = getattr(device, "runner", "python")
        result = run.base_result(art, name, threads, runner, variant)
        if lost_reason is not None:
            result.status = statuses.DEVICE_LOST
            result.reason = lost_reason if device is None else f"device lost earlier in this run: {lost_reason}"
            record(result)
            continue
        if not first and s.cooldown_s:
            time.sleep(s.cooldown_s)
        first = False
        run.events.measuring(f"{art.model.name}/{art.flag_set} on {name}, {threads} thread(s), {label(*variant)}")
        overlapped = name == "local" and run.builder.busy
        try:
            result, m = measure_on(device, art, prepared[art.model.name], threads, s, result)
            if overlapped or (name == "local" and run.builder.busy):
                result.validity = "; ".join(x for x in (result.validity if result.validity != "valid" else None,
                                                         MEASURED_DURING_CONVERSIONS) if x)
        except Exception as exc:  # noqa: BLE001 - one failing job must not stop the device
            result.status = statuses.RUNTIME_FAILED
            result.reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
            m = None
        if run.stopping.is_set():
            break
        if m is not None and m.report is not None and (m.report.raw_output or m.report.scripts):  # the tools' own words
            result.log = run.keep_runner_log(result, m.report)
        elif m is not None and m.report is not None and m.report.stderr:  # the runtime's log lines
            run.keep_runtime_log(result, m.report.stderr)
        if m is not None and m.outputs and result.status in (statuses.OK, statuses.UNHEALTHY):
            run.keep_outputs(result, m.outputs)
        if result.status == statuses.DEVICE_LOST:
            lost_reason = result.reason
        record(result)
    if device is not None:
        try:
            device.close()
        except Exception:  # noqa: BLE001
            pass
