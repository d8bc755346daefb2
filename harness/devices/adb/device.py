"""ADB devices: phones and Linux boards reached with adb-shell (direct) or an adb server.

`AdbDevice` implements the Device protocol. One transport (one connection) per device,
used by one caller at a time. Each job: cool-down, device state (temperature, governor,
frequency limits) before and after, the runner (python or benchmark_model), and retries:
a connection lost mid-push, mid-run or mid-pull is retried 3 times with 0.5/1/2 s
backoff and a reconnect; then the job becomes ``device_lost`` and the campaign goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from harness.core import statuses
from harness.core.errors import HarnessError
from harness.devices.adb import info as adb_info
from harness.devices.adb.files import RemoteFolder
from harness.devices.adb.transport import (
    CommandTimeout,
    ConnectionLost,
    DeviceUnreachable,
    DirectTransport,
    RemoteFailure,
    ServerTransport,
    server_address,
    server_devices,
)
from harness.devices.base import MeasureJob, Measurement, RunnerReport
from harness.devices.profiles import DeviceProfile, parse_device_name, resolve

BACKOFF_S = (0.5, 1.0, 2.0)


class DeviceLost(HarnessError):
    def __init__(self, phase: str, attempts: int, label: str, detail: str = ""):
        self.phase, self.attempts = phase, attempts
        super().__init__(f"{label}: connection lost during {phase} ({attempts} attempts); check "
                         "the cable/network; completed results are kept")
        self.detail = detail


def choose_transport(profile: DeviceProfile):
    """Direct adb-shell for HOST:PORT (unless the server lists it or the profile says server),
    the adb server for serials; ``adb`` alone means ANDROID_SERIAL or the server's only device."""
    addr = profile.parsed
    label = profile.address if profile.name == profile.address else f"{profile.name} ({profile.address})"
    shost, sport = server_address(profile.server_host, profile.server_port)
    if addr.kind == "usb":
        if profile.transport == "server":
            raise DeviceUnreachable(f"{label}: adb:usb is for the direct transport; use "
                                    "adb:SERIAL with transport = \"server\"")
        return DirectTransport(label, usb_serial=addr.serial, auth_timeout_s=profile.auth_timeout_s)
    if addr.kind == "tcp":
        use_server = profile.transport == "server" or (
            profile.transport == "auto"
            and any(s == addr.serial for s, _ in server_devices(shost, sport)))
        if not use_server:
            return DirectTransport(label, host=addr.host, port=addr.port or 5555,
                                   auth_timeout_s=profile.auth_timeout_s)
        return ServerTransport(label, addr.serial, host=shost, port=sport,
                               auth_timeout_s=profile.auth_timeout_s)
    if profile.transport == "direct":
        raise DeviceUnreachable(f"{label}: the direct transport needs adb:HOST:PORT or adb:usb")
    serial = addr.serial
    if serial is None:
        import os

        serial = os.environ.get("ANDROID_SERIAL")
        if not serial:
            ready = [s for s, st in server_devices(shost, sport) if st == "device"]
            if len(ready) != 1:
                raise DeviceUnreachable(
                    f"adb: {len(ready)} devices on the adb server {shost}:{sport}; name one "
                    "(adb:SERIAL) or set ANDROID_SERIAL")
            serial = ready[0]
    return ServerTransport(label, serial, host=shost, port=sport,
                           auth_timeout_s=profile.auth_timeout_s)


class AdbDevice:
    """A device behind ADB; `name` is the device name used in results (`adb:...` or profile)."""

    def __init__(self, profile: DeviceProfile | str, *, transport=None,
                 log: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[str, int, int], None] | None = None):
        self.profile = resolve(profile) if isinstance(profile, str) else profile
        self.name = self.profile.name
        self.runner = self.profile.runner
        self.label = self.profile.address if self.name == self.profile.address else self.name
        self.transport = transport or choose_transport(self.profile)
        self.folder = RemoteFolder(self.transport, self.profile.remote_dir, log, progress)
        self._lock = threading.Lock()
        self._sleep = sleep
        self._last_job_end: float | None = None
        self._info: dict | None = None

    # ---- plumbing
    def connect(self) -> None:
        self.transport.connect()

    def step(self, phase: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on a lost connection reconnect and retry (3 attempts, backoff)."""
        last = ""
        for attempt in range(len(BACKOFF_S)):
            try:
                return fn()
            except (ConnectionLost, DeviceUnreachable) as exc:
                if isinstance(exc, DeviceUnreachable) and attempt == 0:
                    raise  # never reached (refused, unauthorized): its own clear line, no retry
                last = str(exc)
                self.transport.close()
                self.folder._ready = False
                if attempt + 1 < len(BACKOFF_S):
                    self._sleep(BACKOFF_S[attempt])
        raise DeviceLost(phase, len(BACKOFF_S), self.label, last)

    def _benchmark_model_path(self) -> str | None:
        p = self.profile
        if p.runner != "benchmark_model":
            return None
        if p.benchmark_model is not None:
            return None  # pushed on first use
        from harness.devices.adb.runners import DEFAULT_DEVICE_BENCHMARK_MODEL

        return p.device_benchmark_model or DEFAULT_DEVICE_BENCHMARK_MODEL

    # ---- Device protocol
    def info(self) -> dict:
        if self._info is None:
            with self._lock:
                script = adb_info.info_script(self.profile.python, self._benchmark_model_path(),
                                              self.profile.remote_dir)
                r = self.step("info", lambda: self.transport.shell(script, timeout_s=30))
                info = adb_info.parse_info(r.output)
                if self.profile.runner == "benchmark_model" and self.profile.benchmark_model:
                    info["runners"] = sorted({*info["runners"], "benchmark_model"})
                info.update(device=self.name, address=self.profile.address,
                            transport=self.transport.kind, runner=self.runner)
                self._info = info
        return dict(self._info)

    def state(self) -> dict:
        r = self.step("state", lambda: self.transport.shell(adb_info.state_script(), timeout_s=30))
        return adb_info.parse_state(r.output)

    def measure(self, job: MeasureJob) -> Measurement:
        from harness.devices.adb.runners import run_benchmark_model, run_python

        run = run_benchmark_model if self.runner == "benchmark_model" else run_python
        if run is run_python and (missing := self._no_python()):
            return Measurement(statuses.RUNTIME_FAILED, missing)
        with self._lock:
            self._cooldown()
            try:
                before = self.state()
                m = run(self, job)
                after = self.state()
            except DeviceUnreachable as exc:
                return Measurement(statuses.DEVICE_LOST, str(exc))
            except DeviceLost as exc:
                return Measurement(statuses.DEVICE_LOST, str(exc), report=RunnerReport(extra={"detail": exc.detail[:500]}))
            except CommandTimeout:
                self.transport.close()
                return Measurement(statuses.TIMEOUT, f"{self.label}: runner gave no result within "
                                   f"{job.timeout_s:.0f} s (settings.timeout_s)")
            except RemoteFailure as exc:
                return Measurement(statuses.RUNTIME_FAILED, self._remote_reason(str(exc)))
            except ValueError as exc:  # a remote name we refused, a tensor name benchmark_model can't take
                return Measurement(statuses.RUNTIME_FAILED, f"{self.label}: {exc}"[:400])
            finally:
                self._last_job_end = time.monotonic()
            m.report.device_state = {"before": before, "after": after}
            m.report.warnings = [*m.report.warnings,
                                 *adb_info.state_warnings(before, after, self.profile.temperature_limit_c)]
            m.report.transport = m.report.transport or self.transport.kind
            return m

    def _no_python(self) -> str | None:
        """Why the python runner cannot run, when the device probe already said so: then the
        runner (2.4 MB) is never pushed and the row says it at once."""
        if self._info is None:
            return None
        py, fix = self.profile.python, 'or use runner = "benchmark_model" in the device profile'
        if not self._info.get("python"):
            return f"{self.label}: the device probe found no {py}; nothing was pushed. Install Python 3 with ai-edge-litert, {fix}"
        if not self._info.get("python_runtimes"):
            return (f"{self.label}: {py} {self._info['python']} has none of ai_edge_litert, tflite_runtime, tensorflow; "
                    f"nothing was pushed. pip install ai-edge-litert on the device, {fix}")
        return None

    def _remote_reason(self, message: str) -> str:
        if "No space left" in message or "ENOSPC" in message:
            return ("device storage is full (No space left on device); free space in "
                    f"{self.folder.root.rsplit('/', 1)[0]}")
        return f"{self.label}: {message}"[:400]

    def _cooldown(self) -> None:
        if self._last_job_end is None or self.profile.cooldown_s <= 0:
            return
        wait = self.profile.cooldown_s - (time.monotonic() - self._last_job_end)
        if wait > 0:
            self._sleep(wait)

    def close(self) -> None:
        self.transport.close()


def open_adb_device(name: str, **overrides) -> AdbDevice:
    """`adb...` names and profile names -> AdbDevice (nothing is contacted yet)."""
    profile = resolve(name)
    if overrides:
        profile = replace(profile, **{k: v for k, v in overrides.items() if v is not None})
    return AdbDevice(profile)


def is_adb_name(name: str) -> bool:
    if name == "adb" or name.startswith("adb:"):
        parse_device_name(name)
        return True
    return False
