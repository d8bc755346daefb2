"""End-to-end tests of the simulated adbd against the two real clients the harness uses.

Why end to end: the simulator is only useful if Debian's ``adb`` and ``adb-shell`` accept it as a
phone, so every test drives a real client over loopback TCP instead of poking internals.
Debian ``adb`` gets a private server port and ``HOME`` so it never touches a developer's keys or
a running server.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from adb_shell.exceptions import (
    AdbConnectionError,
    AdbTimeoutError,
    PushFailedError,
    TcpTimeoutException,
)

from tests.support.adb_device import (
    A_CNXN,
    AndroidPublicKey,
    SimulatedAdbDevice,
    _RootRewriter,
    abi_for_machine,
)

# What a client may raise when the device vanishes or never answers; all are "bounded failures".
CLIENT_ERRORS = (OSError, AdbTimeoutError, TcpTimeoutException, AdbConnectionError)


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


def _find_or_install_adb() -> str | None:
    """Locate Debian's adb, installing the apt package when we are root and it is missing."""
    sdk_adb = "/usr/lib/android-sdk/platform-tools/adb"
    found = shutil.which("adb") or (sdk_adb if os.access(sdk_adb, os.X_OK) else None)
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "adb"]
    for attempt in ([install], [["apt-get", "update", "-qq"], install]):
        for cmd in attempt:
            subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        if shutil.which("adb"):
            return shutil.which("adb")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AdbCli:
    """A private Debian adb server: own port, own HOME and key."""

    exe: str
    env: dict[str, str]
    pubkey: Path

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,  # otherwise `adb shell` forwards the test's stdin
            check=False,
        )

    def state(self, serial: str) -> str | None:
        for line in self.run("devices").stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == serial:
                return parts[1]
        return None

    def wait_state(self, serial: str, wanted: str, timeout: float = 10) -> str | None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.state(serial)
            if state == wanted:
                return state
            time.sleep(0.1)
        return state


@pytest.fixture(scope="module")
def adb_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbCli]:
    exe = _find_or_install_adb()
    if exe is None:
        pytest.skip("Debian `adb` not found and `apt-get install adb` was not possible")
    home = tmp_path_factory.mktemp("adbhome")
    android = home / ".android"
    android.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        ANDROID_SDK_HOME=str(home),
        ANDROID_USER_HOME=str(android),
        ANDROID_ADB_SERVER_PORT=str(_free_port()),
    )
    env.pop("ADB_VENDOR_KEYS", None)
    cli = AdbCli(exe=exe, env=env, pubkey=android / "adbkey.pub")
    cli.run("keygen", str(android / "adbkey"))
    assert cli.pubkey.is_file(), "adb keygen did not write adbkey.pub"
    cli.run("start-server", timeout=30)
    try:
        yield cli
    finally:
        cli.run("kill-server")


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[PythonRSASigner, Path]:
    """An adb-shell signer plus the path of its ``adbkey.pub``."""
    path = tmp_path_factory.mktemp("pykey") / "adbkey"
    keygen(str(path))
    return PythonRSASigner.FromRSAKeyPath(str(path)), Path(str(path) + ".pub")


def _connect(sim: SimulatedAdbDevice, signer: PythonRSASigner | None, **kw: float) -> AdbDeviceTcp:
    device = AdbDeviceTcp("127.0.0.1", sim.port, default_transport_timeout_s=5.0)
    device.connect(
        rsa_keys=[signer] if signer else None,
        auth_timeout_s=kw.get("auth_timeout_s", 2.0),
        read_timeout_s=kw.get("read_timeout_s", 5.0),
    )
    return device


# ------------------------------------------------------------------------------------------
# 1. Debian adb
# ------------------------------------------------------------------------------------------


def test_debian_adb_shell_exit_codes_push_pull(adb_cli: AdbCli, tmp_path: Path) -> None:
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[adb_cli.pubkey]) as sim:
        serial = sim.serial
        try:
            out = adb_cli.run("connect", serial)
            assert f"connected to {serial}" in out.stdout, out
            assert adb_cli.wait_state(serial, "device") == "device", sim.log

            r = adb_cli.run("-s", serial, "shell", "echo", "hi")
            assert (r.returncode, r.stdout) == (0, "hi\n"), r
            # shell_v2: stderr kept separate and exit codes propagate.
            r = adb_cli.run("-s", serial, "shell", "echo oops >&2")
            assert (r.stdout, r.stderr) == ("", "oops\n")
            assert adb_cli.run("-s", serial, "shell", "false").returncode == 1
            assert adb_cli.run("-s", serial, "shell", "sh -c 'exit 3'").returncode == 3
            r = adb_cli.run("-s", serial, "shell", "getprop", "ro.product.model")
            assert r.stdout.strip() == "SimPhone"

            payload = os.urandom(3 * 1024 * 1024)
            src, back = tmp_path / "big.bin", tmp_path / "back.bin"
            src.write_bytes(payload)
            r = adb_cli.run("-s", serial, "push", str(src), "/data/local/tmp/big.bin")
            assert r.returncode == 0, r
            assert (sim.data_dir / "big.bin").read_bytes() == payload
            r = adb_cli.run("-s", serial, "pull", "/data/local/tmp/big.bin", str(back))
            assert r.returncode == 0, r
            assert back.read_bytes() == payload

            # Device paths, not host paths, show up in output.
            r = adb_cli.run("-s", serial, "shell", "cd /data/local/tmp && pwd && ls")
            assert r.stdout.split() == ["/data/local/tmp", "big.bin"]
            # Writes outside the writable mounts fail like on a production build.
            r = adb_cli.run("-s", serial, "push", str(src), "/system/big.bin")
            assert r.returncode != 0 and "Permission denied" in r.stdout + r.stderr
        finally:
            adb_cli.run("disconnect", serial)


def test_sync_fail_early_with_debian_adb(adb_cli: AdbCli, tmp_path: Path) -> None:
    """``sync_fail_early`` (FAIL before the data, as newer adbd) is understood by real adb."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024))
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[adb_cli.pubkey],
                            sync_fail_early=True) as sim:
        serial = sim.serial
        try:
            assert f"connected to {serial}" in adb_cli.run("connect", serial).stdout
            assert adb_cli.wait_state(serial, "device") == "device", sim.log
            r = adb_cli.run("-s", serial, "push", str(src), "/system/big.bin")
            assert r.returncode != 0 and "couldn't create file: Permission denied" in r.stdout + r.stderr
            r = adb_cli.run("-s", serial, "push", str(src), "/data/local/tmp/big.bin")
            assert r.returncode == 0, r  # the device is still in step
            assert (sim.data_dir / "big.bin").read_bytes() == src.read_bytes()
        finally:
            adb_cli.run("disconnect", serial)


def test_debian_adb_unauthorized_key(adb_cli: AdbCli, tmp_path: Path) -> None:
    with SimulatedAdbDevice(tmp_path / "dev") as sim:  # no authorized keys
        try:
            adb_cli.run("connect", sim.serial)
            assert adb_cli.wait_state(sim.serial, "unauthorized") == "unauthorized", sim.log
            r = adb_cli.run("-s", sim.serial, "shell", "echo", "hi")
            assert r.returncode != 0 and "unauthorized" in r.stderr
            assert sim.offered_keys and not sim.commands
        finally:
            adb_cli.run("disconnect", sim.serial)


# ------------------------------------------------------------------------------------------
# 2. adb-shell
# ------------------------------------------------------------------------------------------


def test_adb_shell_library_shell_push_pull(
    rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path
) -> None:
    signer, pub = rsa_key
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[pub]) as sim:
        device = _connect(sim, signer)
        try:
            assert device.shell("echo hi") == "hi\n"
            assert device.shell("echo out; echo err >&2") == "out\nerr\n"  # raw shell merges
            assert device.shell("getprop ro.product.cpu.abi").strip() == abi_for_machine()
            assert device.shell("python3 -c 'print(6 * 7)'") == "42\n"

            payload = os.urandom(1024 * 1024 + 123)
            src, back = tmp_path / "in.bin", tmp_path / "out.bin"
            src.write_bytes(payload)
            device.push(str(src), "/data/local/tmp/runner/in.bin")  # parent dirs created
            assert (sim.data_dir / "runner" / "in.bin").read_bytes() == payload
            device.pull("/data/local/tmp/runner/in.bin", str(back))
            assert back.read_bytes() == payload
            assert device.exec_out("cat /data/local/tmp/runner/in.bin", decode=False) == payload
            with pytest.raises(PushFailedError, match="Permission denied"):
                device.push(str(src), "/vendor/in.bin")
        finally:
            device.close()
    assert sim.commands[0] == "echo hi"


def test_auto_accept_and_no_auth_modes(
    rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path
) -> None:
    signer, _pub = rsa_key
    with SimulatedAdbDevice(tmp_path / "a", auto_accept_new_keys=True) as sim:
        device = _connect(sim, signer)
        assert device.shell("echo ok") == "ok\n"
        device.close()
        assert len(sim.authorized_keys) == 1  # remembered, like /data/misc/adb/adb_keys
    with SimulatedAdbDevice(tmp_path / "b", auth_required=False) as sim:
        device = _connect(sim, None)
        assert device.shell("echo open") == "open\n"
        device.close()


# ------------------------------------------------------------------------------------------
# 3. Rejected keys / silent device
# ------------------------------------------------------------------------------------------


def test_rejected_key_fails_in_bounded_time(
    rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path
) -> None:
    signer, _pub = rsa_key
    with SimulatedAdbDevice(tmp_path / "dev") as sim:
        start = time.monotonic()
        device = AdbDeviceTcp("127.0.0.1", sim.port, default_transport_timeout_s=5.0)
        with pytest.raises(CLIENT_ERRORS):
            device.connect(rsa_keys=[signer], auth_timeout_s=1.0, read_timeout_s=2.0)
        assert time.monotonic() - start < 5
        device.close()
        assert len(sim.offered_keys) == 1 and not sim.authorized_keys


def test_never_answer_auth_fails_in_bounded_time(
    rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path
) -> None:
    signer, pub = rsa_key
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[pub], never_answer_auth=True) as sim:
        start = time.monotonic()
        device = AdbDeviceTcp("127.0.0.1", sim.port, default_transport_timeout_s=1.0)
        with pytest.raises(CLIENT_ERRORS):
            device.connect(rsa_keys=[signer], auth_timeout_s=1.0, read_timeout_s=1.0)
        assert time.monotonic() - start < 5
        device.close()


# ------------------------------------------------------------------------------------------
# 4. One client at a time
# ------------------------------------------------------------------------------------------


def test_second_client_refused(rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path) -> None:
    signer, pub = rsa_key
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[pub]) as sim:
        first = _connect(sim, signer)
        assert first.shell("echo first") == "first\n"

        # A raw second TCP client is accepted and reset without a single byte of ADB.
        # (On loopback the reset can even surface from connect() itself.)
        cnxn = struct.pack("<6I", A_CNXN, 0x01000001, 4096, 0, 0, A_CNXN ^ 0xFFFFFFFF)
        try:
            with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as raw:
                raw.sendall(cnxn)
                assert raw.recv(24) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass

        second = AdbDeviceTcp("127.0.0.1", sim.port, default_transport_timeout_s=2.0)
        with pytest.raises(CLIENT_ERRORS):
            second.connect(rsa_keys=[signer], auth_timeout_s=1.0, read_timeout_s=2.0)
        second.close()
        assert sim.refused_connections >= 2
        assert first.shell("echo still") == "still\n"  # the first client is unaffected

        first.close()
        deadline = time.monotonic() + 5
        while sim.active_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        third = _connect(sim, signer)
        assert third.shell("echo third") == "third\n"
        third.close()


# ------------------------------------------------------------------------------------------
# 5. Fault injection
# ------------------------------------------------------------------------------------------


def test_drop_mid_push_then_reconnect(
    rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path
) -> None:
    signer, pub = rsa_key
    payload = os.urandom(1024 * 1024)
    src = tmp_path / "model.tflite"
    src.write_bytes(payload)
    with SimulatedAdbDevice(
        tmp_path / "dev", authorized_keys=[pub], drop_after_bytes_pushed=200_000, drop_times=1
    ) as sim:
        device = _connect(sim, signer)
        start = time.monotonic()
        with pytest.raises(CLIENT_ERRORS):
            device.push(str(src), "/data/local/tmp/model.tflite", read_timeout_s=5.0)
        assert time.monotonic() - start < 8
        device.close()
        assert not (sim.data_dir / "model.tflite").exists()  # partial file removed

        device = _connect(sim, signer)  # the fault fired once; now the device behaves
        device.push(str(src), "/data/local/tmp/model.tflite")
        device.close()
        assert (sim.data_dir / "model.tflite").read_bytes() == payload


def test_drop_during_shell_and_pull(rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path) -> None:
    signer, pub = rsa_key
    with SimulatedAdbDevice(
        tmp_path / "dev",
        authorized_keys=[pub],
        drop_during_shell="run_benchmark",
        drop_during_pull="result",
        drop_delay_s=0.1,
    ) as sim:
        (sim.data_dir / "result.bin").write_bytes(os.urandom(300_000))
        device = _connect(sim, signer)
        with pytest.raises(CLIENT_ERRORS):
            device.shell("echo run_benchmark; sleep 1", read_timeout_s=3.0)
        device.close()

        device = _connect(sim, signer)
        with pytest.raises(CLIENT_ERRORS):
            device.pull("/data/local/tmp/result.bin", str(tmp_path / "r.bin"), read_timeout_s=3.0)
        device.close()

        device = _connect(sim, signer)
        assert device.shell("echo run_benchmark") == "run_benchmark\n"
        device.pull("/data/local/tmp/result.bin", str(tmp_path / "r.bin"))
        device.close()
        assert (tmp_path / "r.bin").read_bytes() == (sim.data_dir / "result.bin").read_bytes()


def test_storage_limit(rsa_key: tuple[PythonRSASigner, Path], tmp_path: Path) -> None:
    signer, pub = rsa_key
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(600_000))
    with SimulatedAdbDevice(
        tmp_path / "dev", authorized_keys=[pub], storage_limit_bytes=1_000_000
    ) as sim:
        device = _connect(sim, signer)
        device.push(str(src), "/data/local/tmp/a.bin")
        with pytest.raises(PushFailedError, match="No space left on device"):
            device.push(str(src), "/data/local/tmp/b.bin")
        assert not (sim.data_dir / "b.bin").exists()
        df = device.shell("df /data").splitlines()[-1].split()
        assert df[-1] == "/data" and int(df[1]) == 1_000_000 // 1024
        device.close()


# ------------------------------------------------------------------------------------------
# Small pieces worth pinning down on their own
# ------------------------------------------------------------------------------------------


def test_public_key_verify_roundtrip(rsa_key: tuple[PythonRSASigner, Path]) -> None:
    signer, pub = rsa_key
    key = AndroidPublicKey.parse(pub.read_text())
    token = os.urandom(20)
    assert key.verify(token, signer.Sign(token))
    assert not key.verify(os.urandom(20), signer.Sign(token))
    # Key text (not a path) is accepted too, including the trailing NUL adb sends on the wire.
    sim = SimulatedAdbDevice(authorized_keys=[pub.read_text(), pub.read_bytes() + b"\0"])
    assert sim.authorized_keys == [key, key]
    sim.stop()  # never started: only removes its temporary root


def test_path_mapping(tmp_path: Path) -> None:
    sim = SimulatedAdbDevice(tmp_path / "dev")
    assert sim.host_path("/data/local/tmp/x") == sim.data_dir / "x"
    assert sim.host_path("/sdcard/a/../b") == sim.root / "sdcard" / "b"
    assert sim.host_path("/proc/cpuinfo") == Path("/proc/cpuinfo")  # read-only passthrough
    for denied in ("/etc/passwd", "/data/local/tmp/../../../etc/passwd", "/system/bin/sh"):
        with pytest.raises(PermissionError):
            sim.host_path(denied)
    with pytest.raises(PermissionError):
        sim.host_path("/proc/cpuinfo", write=True)


@pytest.mark.parametrize("split", [1, 5, 13, 30])
def test_root_rewriter_handles_chunk_boundaries(split: int) -> None:
    root = b"/tmp/sim/root"
    text = b"a /tmp/sim/root/data/local/tmp/x b /tmp/sim/root c /tmp/sim/rootless\n"
    rw = _RootRewriter(root)
    out = b"".join(rw.feed(text[i : i + split]) for i in range(0, len(text), split)) + rw.flush()
    assert out == b"a /data/local/tmp/x b / c /tmp/sim/rootless\n"
