"""File push over ADB's sync service (``SEND``/``DATA``/``DONE``), fast enough for big models.

Why our own code: adb-shell's ``AdbDevice.push`` computes the packet checksum with a Python
``sum()`` over every byte, reports progress per chunk instead of cumulatively, ignores short
writes on its non-blocking socket, and was measured at 0.27-0.39x Debian ``adb push``
(BENCHMARKS.md, adb_push). This module keeps adb-shell's connection (handshake, auth, packet
reader, packet store) and only replaces the sender:

* the sync byte stream (``SEND path,mode`` + ``DATA`` chunks of up to ``SYNC_DATA_MAX`` =
  64 KiB + ``DONE mtime``) is cut into ``A_WRTE`` packets as large as the connection's
  ``maxdata`` allows (the device's CNXN value, capped by what we announced), the way the adb
  server frames what ``adb push`` writes;
* the data checksum is 0 when the negotiated protocol version is ``>= 0x01000001`` and the
  real byte sum otherwise, computed with numpy. adb-shell announces ``0x01000000`` (it checks
  the checksums adbd sends), so today every packet carries the real sum;
* one ``A_WRTE`` is in flight per stream: the next waits for the device's ``A_OKAY``, as the
  protocol requires when ``delayed_ack`` was not negotiated (adb-shell never offers it);
* a ``FAIL`` from the device, early (modern adbd fails before ``DONE``) or as the final
  answer, raises `RemoteFailure` with the device's message; the sync stream is then closed
  and the connection stays usable. A dead link or no answer within ``timeout_s`` raises
  `ConnectionLost`.

The adb-server path (`push_server`) writes the same sync stream (`send_stream`; both follow
`_segments`) to a server socket and lets the server do the framing and the acks.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SYNC_DATA_MAX = 64 * 1024  # adb's largest sync DATA message
A_VERSION_SKIP_CHECKSUM = 0x01000001  # from this protocol version on, checksums may be 0
_WRTE = struct.unpack("<I", b"WRTE")[0]
_HEADER = struct.Struct("<6I")
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


def data_checksum(data: bytes | bytearray | memoryview) -> int:
    """ADB's packet checksum: the byte sum mod 2**32 (numpy: ~30x faster than ``sum``)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency; keep working without it
        return sum(data) & 0xFFFFFFFF
    # a uint32 accumulator wraps modulo 2**32, which is exactly the checksum
    return int(np.frombuffer(data, dtype=np.uint8).sum(dtype=np.uint32))


def _segments(remote: str, mode: int, size: int, mtime: int) -> Iterator[bytes | int]:
    """The sync stream of one push as a plan: ``SEND path,mode``, then per chunk of at most
    ``SYNC_DATA_MAX`` a ``DATA`` header (bytes) and its size in file bytes (int), then
    ``DONE mtime``."""
    spec = f"{remote},{0o100000 | mode}".encode()
    yield b"SEND" + struct.pack("<I", len(spec)) + spec
    left = size
    while left:
        n = min(left, SYNC_DATA_MAX)
        yield b"DATA" + struct.pack("<I", n)
        yield n
        left -= n
    yield b"DONE" + struct.pack("<I", mtime & 0xFFFFFFFF)


def send_stream(local: Path, remote: str, mode: int) -> Iterator[tuple[bytes, int]]:
    """The sync bytes of one push in pieces (a ``DATA`` header with its chunk, ...), each with
    the file bytes that are through once it is."""
    with open(local, "rb") as f:
        st = os.fstat(f.fileno())
        held, done = b"", 0
        for seg in _segments(remote, mode, st.st_size, int(st.st_mtime)):
            if isinstance(seg, bytes):
                held += seg
                continue
            chunk = f.read(seg)
            if len(chunk) != seg:
                raise OSError(f"{local} changed while it was being pushed")
            done += seg
            yield held + chunk, done
            held = b""
    yield held, done


def _is_tcp(transport) -> bool:
    try:
        from adb_shell.transport.tcp_transport import TcpTransport
    except ImportError:  # pragma: no cover
        return False
    return isinstance(transport, TcpTransport)


def parse_status(reply: bytes) -> tuple[str, str] | None:
    """``(status, message)`` from the device's answer to ``DONE``, or None while incomplete."""
    if len(reply) < 8:
        return None
    status = reply[:4].decode("ascii", errors="replace")
    length = struct.unpack("<I", reply[4:8])[0]
    if status == "OKAY":
        return status, ""
    if len(reply) < 8 + length:
        return None
    return status, " ".join(reply[8:8 + length].decode("utf-8", errors="replace").split())


def failure_message(status: str, message: str) -> str:
    return message or f"push refused by the device (sync status {status!r})"


class _Stopped(Exception):
    """Raised inside the sender when the device answered early (``FAIL``) or closed."""


class DirectSyncPush:
    """One push over an adb-shell ``AdbDevice`` that is already connected.

    Uses adb-shell internals (``_open``, ``_io_manager``, ``_maxdata``, ``_clse``) of the
    0.4.x line, so the connection, its packet store and its locks stay adb-shell's own.
    """

    def __init__(self, dev, timeout_s: float):
        from adb_shell import constants

        self.dev = dev
        self.io = dev._io_manager
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        # the device's CNXN maxdata, capped by what adb-shell announced in its own CNXN
        self.maxdata = min(dev._maxdata or 4096, constants.MAX_ADB_DATA)
        # the connection's version is the lower of both CNXN versions; ours bounds it
        self.checksums = constants.VERSION < A_VERSION_SKIP_CHECKSUM
        # sockets take a memoryview of our buffer; other transports (USB) get bytes
        self.views_ok = _is_tcp(self.io._transport)
        self.info = None
        self.reply = bytearray()  # what the device wrote on the sync stream
        self.closed_by_device = False

    # ---- timing
    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            from harness.devices.adb.errors import ConnectionLost

            raise ConnectionLost(f"the device gave no answer within {self.timeout_s:.0f} s during push")
        return left

    def _arm(self) -> None:
        left = self._left()
        self.info.transport_timeout_s = left
        self.info.read_timeout_s = left

    # ---- packets
    def _packets(self, local: Path, remote: str, mode: int) -> Iterator[tuple[bytes, bytes, int]]:
        """``A_WRTE`` packets of the sync stream (`_segments`) as (header,
        payload of at most ``maxdata`` bytes, file bytes through once it is acknowledged).

        The file is read straight into one reused buffer (no per-packet copies: they were a
        third of the client's CPU time), so a payload is only valid until the next packet is
        asked for; `run` sends each before that."""
        info, maxdata = self.info, self.maxdata
        tail = _WRTE ^ 0xFFFFFFFF
        buf = bytearray(maxdata)
        view = memoryview(buf)
        pos = done = 0

        def packet(size: int) -> tuple[bytes, bytes, int]:
            payload = view[:size] if self.views_ok else bytes(view[:size])
            check = data_checksum(payload) if self.checksums else 0
            head = _HEADER.pack(_WRTE, info.local_id, info.remote_id, size, check, tail)
            return head, payload, done

        with open(local, "rb") as f:
            st = os.fstat(f.fileno())
            for seg in _segments(remote, mode, st.st_size, int(st.st_mtime)):
                if isinstance(seg, bytes):  # a sync header (and the SEND path)
                    off = 0
                    while off < len(seg):
                        k = min(len(seg) - off, maxdata - pos)
                        view[pos:pos + k] = seg[off:off + k]
                        pos, off = pos + k, off + k
                        if pos == maxdata:
                            yield packet(pos)
                            pos = 0
                    continue
                left = seg  # that many file bytes
                while left:
                    k = min(left, maxdata - pos)
                    if f.readinto(view[pos:pos + k]) != k:
                        raise OSError(f"{local} changed while it was being pushed")
                    pos, left, done = pos + k, left - k, done + k
                    if pos == maxdata:
                        yield packet(pos)
                        pos = 0
        if pos:
            yield packet(pos)

    def _write(self, header: bytes, payload: bytes) -> None:
        """Header and payload as two writes, as adb-shell does: over USB adbd wants them as
        separate transfers; over TCP one write of both measured no faster."""
        with self.io._transport_lock:
            for part in (header, payload):
                data: bytes | memoryview = part
                while True:
                    sent = self.io._transport.bulk_write(data, self._left())
                    if sent is None or sent >= len(data):
                        break
                    data = memoryview(data)[sent:]  # a non-blocking socket may take part of it

    def _read(self, until_okay: bool) -> None:
        """Read the device's packets on our stream until an ``OKAY`` (``until_okay``) or a
        complete sync status; device ``WRTE``s are acknowledged and collected."""
        from adb_shell import constants

        while True:
            if not until_okay and parse_status(bytes(self.reply)) is not None:
                return
            self._arm()
            cmd, _a0, _a1, data = self.io.read([constants.OKAY, constants.WRTE, constants.CLSE],
                                               self.info)
            if cmd == constants.OKAY:
                if until_okay:
                    return
            elif cmd == constants.WRTE:
                self.dev._okay(self.info)
                self.reply += data
                if until_okay and parse_status(bytes(self.reply)) is not None:
                    raise _Stopped  # an answer before DONE can only be a FAIL
            else:
                self.closed_by_device = True
                raise _Stopped

    # ---- the push
    def run(self, local: Path, remote: str, mode: int, progress: Progress | None) -> None:
        from harness.devices.adb.errors import ConnectionLost, RemoteFailure

        total = local.stat().st_size
        self.info = self.dev._open(b"sync:", self._left(), self._left(), None)
        try:
            packets = self._packets(local, remote, mode)
            item = next(packets, None)
            reported = -1
            while item is not None:
                head, payload, done = item
                self._write(head, payload)
                item = next(packets, None)  # framed while the device takes the last one
                self._read(until_okay=True)
                if progress and done != reported:
                    progress(done, total)
                    reported = done
            self._read(until_okay=False)
        except _Stopped:
            pass
        status = parse_status(bytes(self.reply))
        if status is None:
            raise ConnectionLost("the device closed the sync stream during push"
                                 if self.closed_by_device else "push ended without an answer")
        if not self.closed_by_device:
            self._close_stream()
        if status[0] != "OKAY":
            raise RemoteFailure(failure_message(*status))

    def _close_stream(self) -> None:
        """``CLSE`` and wait for the device's, so no stale packet of this stream lingers."""
        self._arm()
        self.dev._clse(self.info)


def push_direct(dev, local: Path, remote: str, mode: int = 0o644,
                progress: Progress | None = None, timeout_s: float = 300.0) -> None:
    """Push ``local`` to ``remote`` over the connected adb-shell ``AdbDevice`` ``dev``.

    Raises `RemoteFailure` (the device said FAIL: message included) or `ConnectionLost`
    (timeout, closed stream); adb-shell/socket errors propagate for the caller to map.
    """
    DirectSyncPush(dev, timeout_s).run(local, remote, mode, progress)


def _recv_exact(sock, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the adb server closed the sync connection")
        data += chunk
    return bytes(data)


def push_server(sock, local: Path, remote: str, mode: int = 0o644,
                progress: Progress | None = None) -> None:
    """Push over ``sock``, an adb server connection already switched to the device's
    ``sync:`` service; the server does the packet framing and the acks.

    Raises `RemoteFailure` with the device's message; socket errors propagate.
    """
    from harness.devices.adb.errors import RemoteFailure

    total = local.stat().st_size
    reported = -1
    for piece, done in send_stream(local, remote, mode):
        sock.sendall(piece)  # the server's flow control paces us; larger writes gained nothing
        if progress and done != reported:
            progress(done, total)
            reported = done
    reply = _recv_exact(sock, 8)
    if reply[:4] != b"OKAY":
        reply += _recv_exact(sock, struct.unpack("<I", reply[4:8])[0])
    status, message = parse_status(reply) or ("FAIL", "")
    if status != "OKAY":
        raise RemoteFailure(failure_message(status, message))
