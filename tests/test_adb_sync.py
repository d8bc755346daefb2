"""Our sync SEND (harness/devices/adb/sync.py) against the simulated adbd, both transports.

The simulator verifies the packet checksums of a host at protocol 0x01000000 (adb-shell's
version) and drops the connection on a wrong one, so every successful push here also checks
the framing. No timing is asserted (that is bench/adb_push.py's job).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.devices.adb.files import RemoteFolder
from harness.devices.adb.sync import (
    SYNC_DATA_MAX,
    DirectSyncPush,
    data_checksum,
    parse_status,
    push_direct,
    send_stream,
)
from harness.devices.adb.transport import (
    ConnectionLost,
    DirectTransport,
    RemoteFailure,
    ServerTransport,
    load_signers,
)
from tests.support.adb_device import SimulatedAdbDevice
from tests.test_adb_simulator import AdbCli, adb_cli  # noqa: F401 - fixture

REMOTE = "/data/local/tmp"


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    _signers, path = load_signers(tmp_path_factory.mktemp("keys") / "adbkey")
    return path


def sim_for(tmp_path: Path, key: Path, **kw) -> SimulatedAdbDevice:
    return SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[Path(f"{key}.pub")], **kw)


def transport(sim: SimulatedAdbDevice, key: Path) -> DirectTransport:
    return DirectTransport(sim.serial, host="127.0.0.1", port=sim.port, key_path=key,
                           auth_timeout_s=5.0)


def payload(tmp_path: Path, size: int, name: str = "payload.bin") -> Path:
    p = tmp_path / name
    p.write_bytes(os.urandom(size))
    return p


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ units


def test_checksum_is_the_byte_sum_mod_2_32() -> None:
    data = os.urandom(300_000)
    assert data_checksum(data) == sum(data) & 0xFFFFFFFF
    big = b"\xff" * (2**32 // 255 + 7)  # the plain sum passes 2**32
    assert sum(big) > 2**32
    assert data_checksum(big) == sum(big) & 0xFFFFFFFF


def test_parse_status() -> None:
    assert parse_status(b"OKAY") is None
    assert parse_status(b"OKAY\0\0\0\0") == ("OKAY", "")
    fail = b"FAIL" + struct.pack("<I", 12) + b"no  space\n!!"
    assert parse_status(fail[:-1]) is None  # message not complete yet
    assert parse_status(fail) == ("FAIL", "no space !!")


@pytest.mark.parametrize("maxdata", [4096, 256 * 1024])
@pytest.mark.parametrize("views", [False, True])
def test_packets_fill_maxdata_and_carry_checksums(tmp_path: Path, maxdata: int,
                                                  views: bool) -> None:
    size = 5 * SYNC_DATA_MAX + 777
    local = payload(tmp_path, size)
    fake = SimpleNamespace(_io_manager=SimpleNamespace(_transport=None), _maxdata=maxdata)
    push = DirectSyncPush(fake, timeout_s=10)
    push.info = SimpleNamespace(local_id=7, remote_id=9)
    push.views_ok = views  # payloads are views of one reused buffer: copy each as it comes
    packets = [(h, bytes(b), d) for h, b, d in push._packets(local, "/data/local/tmp/x", 0o644)]
    stream = b"".join(piece for piece, _ in send_stream(local, "/data/local/tmp/x", 0o644))
    wrte = struct.unpack("<I", b"WRTE")[0]
    payloads = []
    for head, body, _done in packets:
        cmd, a0, a1, length, check, magic = struct.unpack("<6I", head)
        assert (cmd, a0, a1, magic) == (wrte, 7, 9, wrte ^ 0xFFFFFFFF)
        assert length == len(body) <= maxdata
        assert check == sum(body) & 0xFFFFFFFF  # adb-shell negotiates 0x01000000: real sums
        payloads.append(body)
    assert all(len(b) == maxdata for b in payloads[:-1])  # as large as the connection allows
    assert b"".join(payloads) == stream
    assert stream.count(b"DATA") >= 6 and stream.startswith(b"SEND") and b"DONE" in stream[-8:]
    dones = [d for _, _, d in packets]
    assert dones == sorted(dones) and dones[-1] == size


class ScriptedDevice:
    """Stands in for a connected adb-shell AdbDevice: answers each read from a script and
    records what the pusher writes, acknowledges and closes."""

    def __init__(self, answers: list[tuple[bytes, bytes]], maxdata: int = 4096):
        self.answers = list(answers)
        self.written: list[bytes] = []
        self.okays = 0
        self.clse = 0
        self.read_timeouts: list[float] = []
        self._maxdata = maxdata
        self._io_manager = self
        self._transport = self
        self._transport_lock = threading.Lock()

    def _open(self, destination, transport_timeout_s, read_timeout_s, timeout_s):
        assert destination == b"sync:"
        return SimpleNamespace(local_id=1, remote_id=2, transport_timeout_s=None, read_timeout_s=None)

    def bulk_write(self, data, timeout_s):
        taken = bytes(data[:1000])  # a short write each time: the pusher must go on
        self.written.append(taken)
        return len(taken)

    def read(self, expected, info):
        self.read_timeouts.append(info.read_timeout_s)
        cmd, data = self.answers.pop(0)
        assert cmd in expected
        return cmd, 2, 1, data

    def _okay(self, info):
        self.okays += 1

    def _clse(self, info):
        self.clse += 1


def test_early_fail_stops_sending_acks_and_closes(tmp_path: Path) -> None:
    local = payload(tmp_path, 10 * 4096)
    fail = b"FAIL" + struct.pack("<I", 9) + b"read-only"
    dev = ScriptedDevice([(b"OKAY", b""), (b"WRTE", fail[:5]), (b"WRTE", fail[5:])])
    with pytest.raises(RemoteFailure, match="^read-only$"):
        push_direct(dev, local, "/x", timeout_s=30)
    packets = b"".join(dev.written)
    assert len(packets) == 2 * (24 + 4096)  # the second WRTE went out, then no more
    assert packets[24 + 4096:][:4] == b"WRTE" and packets[24:28] == b"SEND"  # whole packets
    assert dev.okays == 2 and dev.clse == 1  # both device writes acknowledged; stream closed
    assert all(0 < t <= 30 for t in dev.read_timeouts)


def test_stream_closed_by_device_is_connection_lost(tmp_path: Path) -> None:
    dev = ScriptedDevice([(b"OKAY", b""), (b"CLSE", b"")])
    with pytest.raises(ConnectionLost, match="closed the sync stream"):
        push_direct(dev, payload(tmp_path, 3 * 4096), "/x", timeout_s=30)
    assert dev.clse == 0  # nothing left to close


def test_okay_status_after_done(tmp_path: Path) -> None:
    local = payload(tmp_path, 4096)
    dev = ScriptedDevice([(b"OKAY", b""), (b"OKAY", b""), (b"WRTE", b"OKAY\0\0\0\0")])
    seen: list[tuple[int, int]] = []
    push_direct(dev, local, "/x", progress=lambda d, n: seen.append((d, n)), timeout_s=30)
    assert seen[-1] == (4096, 4096) and dev.okays == 1 and dev.clse == 1 and not dev.answers


# ------------------------------------------------------------------------------------ direct


@pytest.mark.parametrize("size", [0, 1, SYNC_DATA_MAX, 3 * 256 * 1024 + 5 * SYNC_DATA_MAX + 12345])
def test_direct_push_content_mode_and_progress(tmp_path: Path, key: Path, size: int) -> None:
    local = payload(tmp_path, size)
    seen: list[tuple[int, int]] = []
    with sim_for(tmp_path, key) as sim:
        t = transport(sim, key)
        try:
            t.push(local, f"{REMOTE}/x.bin", mode=0o755, progress=lambda d, n: seen.append((d, n)))
            assert t.shell("echo still-usable").output.strip() == "still-usable"
        finally:
            t.close()
        on_device = sim.host_path(f"{REMOTE}/x.bin")
        assert on_device.stat().st_size == size
        assert sha(on_device) == sha(local)
        assert on_device.stat().st_mode & 0o111  # the mode went along
        assert int(on_device.stat().st_mtime) == int(local.stat().st_mtime)
    assert seen and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert {n for _, n in seen} == {size}
    if size > 512 * 1024:
        assert len(seen) > 2  # reported as the device acknowledges, not only at the end


@pytest.mark.parametrize("early", [False, True])
def test_direct_fail_reply_is_a_clear_error_and_the_link_survives(
        tmp_path: Path, key: Path, early: bool) -> None:
    local = payload(tmp_path, 4_000_000)
    with sim_for(tmp_path, key, sync_fail_early=early) as sim:
        t = transport(sim, key)
        try:
            with pytest.raises(RemoteFailure, match=r"^couldn't create file: Permission denied$"):
                t.push(local, "/system/bin/not-writable")
            received = sim._connections[0].pushed_bytes  # DATA bytes the device read
            if early:
                assert received < local.stat().st_size // 2  # we stopped at the FAIL
            else:
                assert received == local.stat().st_size
            t.push(local, f"{REMOTE}/after.bin")  # same connection, still in step
            assert sha(sim.host_path(f"{REMOTE}/after.bin")) == sha(local)
            assert sim.connections_total == 1
        finally:
            t.close()


def test_direct_storage_full(tmp_path: Path, key: Path) -> None:
    local = payload(tmp_path, 600_000)
    with sim_for(tmp_path, key, storage_limit_bytes=100_000) as sim:
        t = transport(sim, key)
        try:
            with pytest.raises(RemoteFailure, match="No space left on device"):
                t.push(local, f"{REMOTE}/big.bin")
        finally:
            t.close()
        assert not sim.host_path(f"{REMOTE}/big.bin").exists()  # no partial file left


def test_direct_drop_mid_push_is_connection_lost(tmp_path: Path, key: Path) -> None:
    local = payload(tmp_path, 3_000_000)
    with sim_for(tmp_path, key, drop_after_bytes_pushed=1_000_000, drop_times=1) as sim:
        t = transport(sim, key)
        try:
            with pytest.raises(ConnectionLost):
                t.push(local, f"{REMOTE}/dropped.bin")
            assert t._dev is None  # closed, so the next call reconnects
            assert not sim.host_path(f"{REMOTE}/dropped.bin").exists()
            t.push(local, f"{REMOTE}/dropped.bin")  # the fault fired once
            assert sha(sim.host_path(f"{REMOTE}/dropped.bin")) == sha(local)
            assert sim.connections_total == 2
        finally:
            t.close()


def test_ensure_sends_an_unchanged_file_once(tmp_path: Path, key: Path) -> None:
    local = payload(tmp_path, 700_000)
    with sim_for(tmp_path, key) as sim:
        t = transport(sim, key)
        try:
            folder = RemoteFolder(t, f"{REMOTE}/th")
            path = folder.ensure(local, "model.tflite")
            assert folder.pushed_bytes == 700_000 and folder.cache_hits == 0
            assert folder.ensure(local, "model.tflite") == path
            assert folder.pushed_bytes == 700_000 and folder.cache_hits == 1
        finally:
            t.close()
        assert sha(sim.host_path(path)) == sha(local)
        assert sorted(p.name for p in sim.host_path(f"{REMOTE}/th").iterdir()) == ["model.tflite"]


# ------------------------------------------------------------------------------------ server


def test_server_push_content_and_fail(tmp_path: Path, adb_cli: AdbCli) -> None:  # noqa: F811
    local = payload(tmp_path, 2 * 256 * 1024 + 4321)
    seen: list[tuple[int, int]] = []
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[adb_cli.pubkey]) as sim:
        try:
            assert f"connected to {sim.serial}" in adb_cli.run("connect", sim.serial).stdout
            assert adb_cli.wait_state(sim.serial, "device") == "device"
            t = ServerTransport(sim.serial, sim.serial,
                                port=int(adb_cli.env["ANDROID_ADB_SERVER_PORT"]))
            t.push(local, f"{REMOTE}/s.bin", progress=lambda d, n: seen.append((d, n)))
            assert sha(sim.host_path(f"{REMOTE}/s.bin")) == sha(local)
            assert seen[-1] == (local.stat().st_size,) * 2
            with pytest.raises(RemoteFailure, match="couldn't create file: Permission denied"):
                t.push(local, "/system/bin/not-writable")
        finally:
            adb_cli.run("disconnect", sim.serial)
