"""How bytes reach an ADB device: adb-shell straight to adbd (TCP or USB), or an adb server.

Both transports offer the same four verbs (`shell`, `push`, `pull`, `close`) and turn every
library error into one of three exceptions the device layer acts on:

* `ConnectionLost`: the link broke or stopped answering; worth a reconnect and a retry.
* `RemoteFailure`: the device answered "no" (a push refused with a message, e.g.
  "No space left on device"); retrying will not help.
* `DeviceUnreachable`: we could not get a working session at all (refused, unauthorized,
  no server); the message is one line a person can act on.

Exit codes: adb-shell speaks only the old raw shell, and an adb server may face a device
without shell v2, so commands are wrapped as ``sh -c CMD 2>&1; echo __HARNESS_RC=$?`` and the
marker is parsed; a missing marker means the stream was cut (ConnectionLost).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.devices.adb.errors import (  # noqa: F401 - re-exported for existing importers
    CommandTimeout,
    ConnectionLost,
    DeviceUnreachable,
    Progress,
    RemoteFailure,
    TransportError,
)
from harness.devices.adb.keys import default_key_path, load_signers  # noqa: F401 - re-exported

RC_MARKER = "__HARNESS_RC="
_RE_RC = re.compile(r"__HARNESS_RC=(\d+)\s*$")
@dataclass
class ShellResult:
    returncode: int
    output: str  # stdout and stderr merged, marker removed


def wrap_command(command: str) -> str:
    """``sh -c CMD`` with stderr merged and the exit status printed after it."""
    return f"sh -c {shlex.quote(command)} 2>&1; echo {RC_MARKER}$?"


def split_marker(text: str) -> ShellResult:
    text = text.replace("\r\n", "\n")
    stripped = text.rstrip()
    m = _RE_RC.search(stripped)
    if m is None:
        raise ConnectionLost("the shell stream ended before the command finished")
    body = stripped[: m.start()]
    return ShellResult(int(m.group(1)), body)


# --------------------------------------------------------------------------- direct (adb-shell)


def _nodelay_tcp_transport():
    from adb_shell.transport.tcp_transport import TcpTransport

    class NoDelayTcpTransport(TcpTransport):
        """TcpTransport with TCP_NODELAY (small ADB packets would wait for Nagle) and EOF
        reported as a reset instead of a busy loop until the read timeout."""

        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError("adbd closed the connection")
            return data

    return NoDelayTcpTransport


def _adb_shell_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as e

    return (OSError, e.AdbConnectionError, e.AdbTimeoutError, e.TcpTimeoutException,
            e.InvalidResponseError, e.InvalidCommandError, e.InvalidChecksumError,
            e.UsbReadFailedError, e.UsbWriteFailedError, struct.error)


class DirectTransport:
    """adb-shell talking to adbd itself: ``tcp`` (host, port) or ``usb`` (optional serial)."""

    kind = "direct"

    def __init__(self, label: str, *, host: str | None = None, port: int = 5555,
                 usb_serial: str | None = None, auth_timeout_s: float = 10.0,
                 key_path: Path | None = None):
        self.label = label
        self.host, self.port, self.usb_serial = host, port, usb_serial
        self.auth_timeout_s = auth_timeout_s
        self.key_path = key_path
        self._dev = None
        self._lock = threading.RLock()  # one connection per device, used by one caller at a time

    # ---- session
    def connect(self) -> None:
        with self._lock:
            if self._dev is not None:
                return
            from adb_shell import exceptions as e
            from adb_shell.adb_device import AdbDevice

            signers, key = load_signers(self.key_path)
            if self.host is not None:
                transport = _nodelay_tcp_transport()(self.host, self.port)
            else:
                transport = _usb_transport(self.label, self.usb_serial)
            dev = AdbDevice(transport, default_transport_timeout_s=self.auth_timeout_s)
            t = self.auth_timeout_s
            try:
                dev.connect(rsa_keys=signers, transport_timeout_s=t, auth_timeout_s=t,
                            read_timeout_s=t)
            except ConnectionRefusedError as exc:
                dev.close()
                raise DeviceUnreachable(
                    f"{self.label}: connection refused; is adbd listening there "
                    "(`adb tcpip 5555` on the phone, or the board's adbd started)?") from exc
            except (socket.gaierror, TimeoutError, OSError) as exc:
                dev.close()
                if isinstance(exc, ConnectionResetError | BrokenPipeError):
                    raise DeviceUnreachable(
                        f"{self.label}: the device reset the connection during the handshake "
                        "(another adb client may hold it: `adb disconnect` or kill-server)") from exc
                raise DeviceUnreachable(f"{self.label}: cannot reach the device ({exc})") from exc
            except (e.AdbTimeoutError, e.TcpTimeoutException, e.DeviceAuthError,
                    e.InvalidResponseError) as exc:
                dev.close()
                raise DeviceUnreachable(
                    f"{self.label}: device did not accept our key within {t:g} s; confirm the "
                    f"'Allow USB debugging' prompt on the device (key: {key}.pub)") from exc
            except (e.InvalidCommandError, e.InvalidChecksumError, struct.error) as exc:
                dev.close()
                raise DeviceUnreachable(
                    f"{self.label}: something answered that is not adbd ({type(exc).__name__}); "
                    "check the host and port") from exc
            self._dev = dev

    def close(self) -> None:
        with self._lock:
            if self._dev is not None:
                try:
                    self._dev.close()
                except Exception:  # noqa: BLE001 - closing a broken link must not raise
                    pass
                self._dev = None

    def _device(self):
        self.connect()
        return self._dev

    # ---- verbs
    def shell(self, command: str, timeout_s: float = 60.0) -> ShellResult:
        from adb_shell import exceptions as e

        with self._lock:
            dev = self._device()
            try:
                text = dev.shell(wrap_command(command), transport_timeout_s=timeout_s,
                                 read_timeout_s=timeout_s, timeout_s=timeout_s, decode=False)
            except (e.AdbTimeoutError, e.TcpTimeoutException) as exc:
                self.close()
                raise CommandTimeout(f"no answer within {timeout_s:.0f} s") from exc
            except _adb_shell_errors() as exc:
                self.close()
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc
            return split_marker(text.decode("utf-8", errors="replace"))

    def push(self, local: Path, remote: str, mode: int = 0o644, progress: Progress | None = None,
             timeout_s: float = 300.0) -> None:
        """Sync SEND through `sync.push_direct` (adb-shell's own push is ~3x slower)."""
        from harness.devices.adb.sync import push_direct

        with self._lock:
            dev = self._device()
            try:
                push_direct(dev, local, remote, mode=mode, progress=progress, timeout_s=timeout_s)
            except ConnectionLost:
                self.close()
                raise
            except _adb_shell_errors() as exc:
                self.close()
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    def pull(self, remote: str, local: Path, timeout_s: float = 300.0) -> None:
        from adb_shell import exceptions as e

        with self._lock:
            dev = self._device()
            try:
                dev.pull(remote, str(local), transport_timeout_s=timeout_s, read_timeout_s=timeout_s)
            except (e.AdbCommandFailureException, e.DevicePathInvalidError) as exc:
                raise RemoteFailure(" ".join(str(exc).split())) from exc
            except _adb_shell_errors() as exc:
                self.close()
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc


def _usb_transport(label: str, serial: str | None):
    try:
        from adb_shell.transport.usb_transport import UsbTransport
    except ImportError as exc:
        raise DeviceUnreachable(
            f"{label}: USB needs libusb and the usb extra: pip install 'adb-shell[usb]' "
            "(or attach the phone through an adb server: transport = \"server\")") from exc
    try:
        return UsbTransport.find_adb(serial=serial)
    except Exception as exc:  # noqa: BLE001 - libusb raises many kinds
        raise DeviceUnreachable(f"{label}: no USB ADB device found ({exc})") from exc


# --------------------------------------------------------------------------- adb server


def server_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """adb's own conventions: -H/-P, else ANDROID_ADB_SERVER_HOST/PORT, else 127.0.0.1:5037."""
    host = host or os.environ.get("ANDROID_ADB_SERVER_HOST") or "127.0.0.1"
    port = port or int(os.environ.get("ANDROID_ADB_SERVER_PORT") or 5037)
    return host, port


def server_running(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something accepts connections on the server port (never starts one)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def server_devices(host: str, port: int) -> list[tuple[str, str]]:
    """[(serial, state)] from a running server; [] when none runs (does not start one)."""
    if not server_running(host, port):
        return []
    import adbutils

    client = adbutils.AdbClient(host=host, port=port, socket_timeout=5)
    return [(d.serial, d.state) for d in client.list()]


class ServerTransport:
    """adbutils talking to a running adb server, which talks to the device."""

    kind = "server"

    def __init__(self, label: str, serial: str, *, host: str | None = None,
                 port: int | None = None, auth_timeout_s: float = 10.0):
        self.label = label
        self.serial = serial
        self.host, self.port = server_address(host, port)
        self.auth_timeout_s = auth_timeout_s
        self._dev = None
        self._v2 = False
        self._lock = threading.RLock()

    def connect(self) -> None:
        import time

        import adbutils

        with self._lock:
            if self._dev is not None:
                return
            if not server_running(self.host, self.port):
                raise DeviceUnreachable(
                    f"{self.label}: no adb server on {self.host}:{self.port}; start one with "
                    "`adb start-server` (or set ANDROID_ADB_SERVER_PORT)")
            client = adbutils.AdbClient(host=self.host, port=self.port, socket_timeout=30)
            deadline = time.monotonic() + self.auth_timeout_s
            tried_connect = False
            while True:
                try:
                    states = {d.serial: d.state for d in client.list()}
                except (adbutils.AdbError, OSError) as exc:
                    raise DeviceUnreachable(f"{self.label}: adb server error: {exc}") from exc
                state = states.get(self.serial)
                if state == "device":
                    break
                if state is None and ":" in self.serial and not tried_connect:
                    tried_connect = True
                    try:
                        client.connect(self.serial, timeout=self.auth_timeout_s)
                    except (adbutils.AdbError, OSError):
                        pass
                if time.monotonic() > deadline:
                    if state == "unauthorized":
                        raise DeviceUnreachable(
                            f"{self.label}: device did not accept our key within "
                            f"{self.auth_timeout_s:g} s; confirm the 'Allow USB debugging' "
                            "prompt on the device (key: ~/.android/adbkey.pub of the adb server)")
                    listed = ", ".join(f"{s} ({st})" for s, st in states.items()) or "none"
                    raise DeviceUnreachable(
                        f"{self.label}: not available through the adb server on "
                        f"{self.host}:{self.port} (state {state or 'missing'}; devices: {listed})")
                time.sleep(0.2)
            dev = client.device(self.serial)
            try:
                self._v2 = "shell_v2" in dev.get_features().split(",")
            except (adbutils.AdbError, OSError):
                self._v2 = False
            self._dev = dev

    def close(self) -> None:
        self._dev = None  # adbutils opens a server socket per call; nothing to hold

    def _device(self):
        self.connect()
        return self._dev

    def _lost(self, exc: BaseException) -> ConnectionLost:
        self.close()
        return ConnectionLost(f"{type(exc).__name__}: {exc}")

    def shell(self, command: str, timeout_s: float = 60.0) -> ShellResult:
        import adbutils

        with self._lock:
            dev = self._device()
            try:
                if self._v2:
                    r = dev.shell2(command, timeout=timeout_s, encoding=None, v2=True)
                    out = (r.stdout or b"") + (r.stderr or b"")
                    return ShellResult(r.returncode, out.decode("utf-8", errors="replace"))
                text = dev.shell(wrap_command(command), timeout=timeout_s, encoding=None)
            except (adbutils.AdbTimeout, TimeoutError) as exc:
                self.close()
                raise CommandTimeout(f"no answer within {timeout_s:.0f} s") from exc
            except (adbutils.AdbError, OSError, EOFError, struct.error) as exc:
                raise self._lost(exc) from exc
            return split_marker(text.decode("utf-8", errors="replace"))

    def push(self, local: Path, remote: str, mode: int = 0o644, progress: Progress | None = None,
             timeout_s: float = 300.0) -> None:
        """Sync SEND by hand (`sync.push_server`): adbutils drops the device's FAIL message."""
        import adbutils

        from harness.devices.adb.sync import push_server

        with self._lock:
            dev = self._device()
            try:
                with dev.open_transport(timeout=timeout_s) as c:
                    c.send_command("sync:")
                    c.check_okay()
                    push_server(c.conn, local, remote, mode, progress)
            except (adbutils.AdbError, OSError, EOFError, struct.error) as exc:
                raise self._lost(exc) from exc

    def pull(self, remote: str, local: Path, timeout_s: float = 300.0) -> None:
        import adbutils

        with self._lock:
            dev = self._device()
            try:
                with open(local, "wb") as f:
                    for chunk in dev.sync.iter_content(remote):
                        f.write(chunk)
            except adbutils.AdbError as exc:
                msg = str(exc.args[0]) if exc.args else str(exc)
                if "No such file" in msg or "Permission denied" in msg:
                    raise RemoteFailure(f"pull {remote}: {msg}") from exc
                raise self._lost(exc) from exc
            except (OSError, EOFError, struct.error) as exc:
                raise self._lost(exc) from exc
