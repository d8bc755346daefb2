"""A simulated Android device: a device-side ``adbd`` speaking the real ADB wire protocol over TCP.

Why this exists: the harness talks to phones through both the Debian ``adb`` client (via its
server) and the pure-Python ``adb-shell`` library.  Mocking either library would only test our
assumptions about them; speaking the actual wire protocol on loopback lets tests exercise the
real clients end to end -- handshake, RSA auth, shell exit codes, push/pull, and the failure modes
(unauthorized keys, dropped cables, full storage) that are painful to reproduce with hardware.

Protocol coverage (see AOSP ``adb/protocol.txt``, ``SERVICES.TXT``, ``SYNC.TXT``):

* Transport: 24-byte little-endian headers, ``CNXN``/``AUTH``/``OPEN``/``OKAY``/``WRTE``/``CLSE``.
  We announce version ``0x01000001`` and ``maxdata`` 256 KiB; hosts at ``0x01000000`` are accepted.
  Outgoing packets always carry a correct data checksum (``adb-shell`` verifies it, newer ``adb``
  ignores it); incoming checksums are only verified when the negotiated version predates
  ``0x01000001`` (newer hosts send 0).  ``STLS`` is never offered and ignored if received.
* Auth: ``AUTH TOKEN`` (20 random bytes) -> host ``AUTH SIGNATURE`` (PKCS#1 v1.5, SHA-1
  DigestInfo over the token, verified here with plain ``pow``) -> ``CNXN``; a bad signature gets a
  fresh token; ``AUTH RSAPUBLICKEY`` is accepted only with ``auto_accept_new_keys=True``.  Otherwise
  the device stays silent like a phone showing the "Allow USB debugging?" dialog nobody answers,
  which ``adb devices`` reports as ``unauthorized``.
* Services: ``shell:CMD`` (raw, stdout+stderr merged, no exit code), ``shell,v2[,TERM=..][,raw|pty]:CMD``
  (shell protocol v2: separate stdout/stderr and a real exit code), ``exec:CMD`` (raw, binary
  safe), and ``sync:`` with ``STAT``/``LIST``/``SEND``/``RECV``/``QUIT`` (sync v1 only).  An empty
  shell command starts ``/bin/sh`` reading stdin (no pty is ever allocated).  Anything else is
  refused with ``CLSE`` as ``adbd`` does for unknown services.
* Banner features: ``shell_v2,cmd,fixed_push_mkdir`` only -- nothing that we do not implement
  (no ``stat_v2``/``ls_v2``/``sendrecv_v2*``/``delayed_ack``/``abb``).

Filesystem mapping (the device has no real root filesystem; everything lives under ``root``):

* ``/data/local/tmp`` -> ``<root>/data/local/tmp`` (writable; the usual place to push runners)
* ``/sdcard`` and ``/storage/emulated/0`` -> ``<root>/sdcard`` (writable)
* ``/proc`` and ``/sys`` -> the host's real ``/proc`` and ``/sys``, read-only via sync
* any other path: sync ``SEND``/``RECV`` fail with ``Permission denied`` and ``STAT`` reports a
  missing file, like an unprivileged ``shell`` user on a production build.

Shell commands run as ``/bin/sh -c CMD`` with ``cwd=<root>`` and a minimal environment.  Before
running, every occurrence of the mapped prefixes above is rewritten to the host directory, and
in ``shell`` output the host ``root`` path is mapped back (``<root>/data/local/tmp/x`` ->
``/data/local/tmp/x``) so that ``pwd``/``ls`` output looks like a device.  ``/proc``/``/sys`` and
all other absolute paths are *not* rewritten, so ``cat /proc/cpuinfo`` reads the host's file and
``cd /`` really is the host root -- this is a test double, not a sandbox.  ``<root>/system/bin``
is first on ``PATH`` and contains:

* ``getprop`` -- ``getprop`` lists ``[name]: [value]`` lines, ``getprop NAME [DEFAULT]`` prints
  one value.  Defaults: ``ro.product.model=SimPhone``, ``ro.product.manufacturer=Simulated``,
  ``ro.product.name``/``ro.product.device=sim``, ``ro.product.cpu.abi`` (and ``abilist``) from
  the host machine (``x86_64``->``x86_64``, ``aarch64``->``arm64-v8a``, ``armv7l``->``armeabi-v7a``,
  ``i686``->``x86``), ``ro.build.version.sdk=34``, ``ro.build.version.release=14``,
  ``ro.board.platform=simboard``, ``ro.hardware=sim``, ``ro.serialno=<serial>``; override or
  extend with ``props=``.
* ``python3``/``python`` -- wrappers exec'ing the ``python`` argument (default ``sys.executable``)
  so pushed runner scripts can execute "on the device".
* ``df`` -- prints a toybox-style line for ``/data`` whose size honours ``storage_limit_bytes``.

Fault injection (each fault fires ``drop_times`` times, ``None`` = forever, then the device
behaves): ``drop_after_bytes_pushed`` resets the TCP connection once that many ``DATA`` bytes
arrived on one connection; ``drop_during_shell``/``drop_during_pull`` reset it when a shell
command / pulled path contains the given substring; ``never_answer_auth`` swallows ``CNXN``;
``storage_limit_bytes`` makes ``SEND`` fail with ``No space left on device``; ``sync_fail_early``
sends a ``SEND`` that cannot even create its file its ``FAIL`` at once, before the data (as
newer adbd does; by default ``FAIL`` answers ``DONE``).  A drop is a TCP
RST (SO_LINGER 0) so clients notice immediately instead of waiting for a timeout.  Processes
started by a dropped shell are not killed (their output pipes close, as with a real raw
``adbd`` shell); :meth:`SimulatedAdbDevice.stop` kills whatever is still running.

Run standalone with ``python -m tests.support.adb_device --port 5555 --root DIR
--authorized-key ~/.android/adbkey.pub``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import os
import platform
import posixpath
import queue
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "AndroidPublicKey",
    "SimulatedAdbDevice",
    "abi_for_machine",
    "main",
]


def _cmd(name: bytes) -> int:
    """Turn a 4-letter ADB command into its little-endian wire value."""
    return struct.unpack("<I", name)[0]


A_SYNC = _cmd(b"SYNC")
A_CNXN = _cmd(b"CNXN")
A_AUTH = _cmd(b"AUTH")
A_OPEN = _cmd(b"OPEN")
A_OKAY = _cmd(b"OKAY")
A_CLSE = _cmd(b"CLSE")
A_WRTE = _cmd(b"WRTE")
A_STLS = _cmd(b"STLS")
_COMMAND_NAMES = {
    value: name
    for name, value in {
        "SYNC": A_SYNC,
        "CNXN": A_CNXN,
        "AUTH": A_AUTH,
        "OPEN": A_OPEN,
        "OKAY": A_OKAY,
        "CLSE": A_CLSE,
        "WRTE": A_WRTE,
        "STLS": A_STLS,
    }.items()
}

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
# Refuse absurd packets rather than allocating gigabytes because of a corrupt header.
_MAX_ACCEPTED_PAYLOAD = 16 * 1024 * 1024

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20

# Shell protocol v2 packet ids (system/core/adb/shell_protocol.h).
SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_WINDOW_SIZE_CHANGE = 5

SYNC_DATA_MAX = 64 * 1024
_SYNC_PATH_MAX = 1024

DEFAULT_FEATURES: tuple[str, ...] = ("shell_v2", "cmd", "fixed_push_mkdir")

# ASN.1 DigestInfo prefix for SHA-1: adb signs the 20-byte token as if it were a SHA-1 digest.
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")

_ABI_BY_MACHINE = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64-v8a",
    "arm64": "arm64-v8a",
    "armv8l": "armeabi-v7a",
    "armv7l": "armeabi-v7a",
    "i386": "x86",
    "i686": "x86",
}

_WRITABLE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/data/local/tmp", "data/local/tmp"),
    ("/storage/emulated/0", "sdcard"),
    ("/sdcard", "sdcard"),
)
_READONLY_PREFIXES: tuple[str, ...] = ("/proc", "/sys")


def abi_for_machine(machine: str | None = None) -> str:
    """Map ``platform.machine()`` to the Android ABI name a phone with that CPU would report."""
    machine = (machine or platform.machine()).lower()
    return _ABI_BY_MACHINE.get(machine, machine)


try:  # at import, not on the first packet: a lazy import stalled the first push by ~0.2 s
    import numpy as _np
except ImportError:  # pragma: no cover - the simulator also runs without numpy
    _np = None


def _checksum(data: bytes) -> int:
    """The ADB data checksum (byte sum mod 2**32).

    adbd does this in C; a Python ``sum()`` costs ~4 ns a byte and made this simulator, not the
    client, the bottleneck of pushes from hosts at protocol 0x01000000 (which must send real
    checksums).  numpy's uint32 accumulator wraps modulo 2**32, which is the checksum.
    """
    if _np is None or len(data) < 4096:
        return sum(data) & 0xFFFFFFFF
    return int(_np.frombuffer(data, dtype=_np.uint8).sum(dtype=_np.uint32))


class _ConnectionLost(Exception):
    """The TCP connection is gone (peer closed, reset, or we dropped it on purpose)."""


class _StreamClosed(Exception):
    """The ADB stream was closed (by either side) while a service was still using it."""


class _ProtocolError(Exception):
    """The peer sent bytes that are not valid ADB; real adbd drops the connection."""


# --------------------------------------------------------------------------------------------
# RSA public keys in Android's custom format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AndroidPublicKey:
    """An RSA public key as stored in ``adbkey.pub`` / ``adb_keys``.

    The file holds ``base64(RSAPublicKey struct) user@host``; the struct is
    ``(uint32 len_words, uint32 n0inv, uint8 modulus[len*4] LE, uint8 rr[len*4] LE, uint32 e)``.
    Only ``n`` and ``e`` matter for verification; ``n0inv``/``rr`` are Montgomery helpers.
    """

    n: int
    e: int
    comment: str = ""

    @classmethod
    def parse(cls, text: str | bytes) -> AndroidPublicKey:
        """Parse one key line (trailing NUL, whitespace and the ``user@host`` comment allowed)."""
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("ascii", "replace")
        text = text.strip()
        if not text:
            raise ValueError("empty public key")
        b64, _, comment = text.partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"public key is not valid base64: {exc}") from exc
        if len(blob) < 12:
            raise ValueError("public key blob too short")
        (words,) = struct.unpack_from("<I", blob, 0)
        size = words * 4
        if words == 0 or len(blob) != 8 + 2 * size + 4:
            raise ValueError(f"public key blob has wrong size {len(blob)} for {words} words")
        n = int.from_bytes(blob[8 : 8 + size], "little")
        (e,) = struct.unpack_from("<I", blob, 8 + 2 * size)
        return cls(n=n, e=e, comment=comment.strip())

    @property
    def fingerprint(self) -> str:
        """A short stable id for logs (hex of the modulus tail), not a real adb fingerprint."""
        return f"{self.n & 0xFFFFFFFF:08x}"

    def verify(self, token: bytes, signature: bytes) -> bool:
        """Check a PKCS#1 v1.5 signature whose "digest" is the raw token (SHA-1 DigestInfo)."""
        k = (self.n.bit_length() + 7) // 8
        if len(signature) != k:
            return False
        s = int.from_bytes(signature, "big")
        if s >= self.n:
            return False
        em = pow(s, self.e, self.n).to_bytes(k, "big")
        suffix = _SHA1_DIGEST_INFO + token
        pad_len = k - 3 - len(suffix)
        if pad_len < 8:
            return False
        expected = b"\x00\x01" + b"\xff" * pad_len + b"\x00" + suffix
        return secrets.compare_digest(em, expected)


def load_public_keys(spec: str | os.PathLike[str] | bytes) -> list[AndroidPublicKey]:
    """Load keys from a path to an ``adbkey.pub``/``adb_keys`` file or from key text itself."""
    if isinstance(spec, bytes):
        text = spec.decode("ascii", "replace")
    else:
        text = os.fspath(spec)
        # Callers pass either a path or the key itself; whatever names an existing file is a
        # path.  Key text can look like a (very long) path, so stat errors just mean "not a file".
        try:
            is_file = "\n" not in text and Path(text).expanduser().is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            text = Path(text).expanduser().read_text(encoding="ascii", errors="replace")
    keys = [
        AndroidPublicKey.parse(line)
        for line in text.replace("\0", "\n").splitlines()
        if line.strip()
    ]
    if not keys:
        raise ValueError(f"no public key found in {spec!r}")
    return keys


# --------------------------------------------------------------------------------------------
# Output path rewriting
# --------------------------------------------------------------------------------------------


class _RootRewriter:
    """Map host paths under ``root`` back to device paths in streamed output.

    Output arrives in arbitrary chunks, so a trailing fragment that could be the start of the
    root path is held back until the next chunk (or :meth:`flush`) decides it.
    """

    def __init__(self, root: bytes) -> None:
        self._root = root
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """Return the rewritten part of ``pending + data`` that is safe to emit now."""
        buf = self._pending + data
        root = self._root
        out = bytearray()
        i = 0
        while True:
            k = buf.find(root, i)
            if k < 0:
                tail = len(buf)
                for j in range(max(i, len(buf) - len(root) + 1), len(buf)):
                    if root.startswith(buf[j:]):
                        tail = j
                        break
                out += buf[i:tail]
                self._pending = buf[tail:]
                return bytes(out)
            end = k + len(root)
            out += buf[i:k]
            if end == len(buf):
                # Need the next byte to know whether this is "<root>/x" or the bare root.
                self._pending = buf[k:]
                return bytes(out)
            following = buf[end : end + 1]
            if following == b"/":
                out += b""  # "<root>/data/x" -> "/data/x"
            elif following.isalnum() or following in b"._-":
                out += root  # "<root>less" is some other path: leave it alone
            else:
                out += b"/"  # the bare root is the device's "/"
            i = end

    def flush(self) -> bytes:
        """Emit whatever is held back (end of stream)."""
        rest, self._pending = self._pending, b""
        return b"/" if rest == self._root else rest


# --------------------------------------------------------------------------------------------
# Streams and connections
# --------------------------------------------------------------------------------------------


class _Stream:
    """One ADB stream (an ``OPEN``ed service) as seen from the device side.

    Inbound ``WRTE`` payloads are queued for the service thread; outbound writes honour ADB's
    flow control (one ``WRTE`` in flight until the host's ``OKAY``).
    """

    def __init__(self, conn: _Connection, local_id: int, remote_id: int, service: str) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._inbound: queue.Queue[bytes | None] = queue.Queue()
        self._buf = bytearray()
        self._eof = False
        self._ready = threading.Event()
        self._ready.set()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.local_closed = False
        self.remote_closed = False

    # -- called by the connection reader thread --
    def feed(self, data: bytes) -> None:
        self._inbound.put(data)

    def on_okay(self) -> None:
        self._ready.set()

    def on_remote_close(self) -> None:
        """Host sent CLSE: wake everyone and acknowledge with our own CLSE (as adbd does)."""
        self.remote_closed = True
        self._inbound.put(None)
        self._ready.set()
        self.close()

    def on_connection_lost(self) -> None:
        self.remote_closed = True
        self.local_closed = True
        self._inbound.put(None)
        self._ready.set()

    # -- called by the service thread --
    def read_some(self) -> bytes:
        """Return buffered or next inbound bytes; ``b""`` means end of stream."""
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            return data
        if self._eof:
            return b""
        item = self._inbound.get()
        if item is None:
            self._eof = True
            self._inbound.put(None)  # keep EOF sticky for other readers
            return b""
        return item

    def read_exact(self, size: int) -> bytes:
        """Read exactly ``size`` bytes or raise :class:`_StreamClosed`."""
        while len(self._buf) < size:
            if self._eof:
                raise _StreamClosed("end of stream")
            item = self._inbound.get()
            if item is None:
                self._eof = True
                self._inbound.put(None)
                raise _StreamClosed("end of stream")
            self._buf += item
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` as one or more WRTE packets, waiting for OKAY between them."""
        with self._write_lock:
            view = memoryview(data)
            while view:
                self._wait_ready()
                size = self.conn.max_payload
                chunk = bytes(view[:size])
                view = view[size:]
                self._ready.clear()  # before sending, so a fast OKAY is never lost
                self.conn.send(A_WRTE, self.local_id, self.remote_id, chunk)

    def _wait_ready(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.wait(0.25):
            if self.local_closed or self.remote_closed or self.conn.dead:
                raise _StreamClosed("stream closed while waiting for OKAY")
            if deadline is not None and time.monotonic() > deadline:
                return
        if self.remote_closed or self.conn.dead:
            raise _StreamClosed("stream closed")

    def drain(self, timeout: float = 2.0) -> None:
        """Wait (bounded) for the OKAY of our last WRTE so CLSE does not overtake it."""
        with contextlib.suppress(_StreamClosed):
            self._wait_ready(timeout)

    def close(self) -> None:
        """Close our side: send CLSE once and forget the stream."""
        with self._state_lock:
            if self.local_closed:
                return
            self.local_closed = True
        self.conn.forget_stream(self.local_id)
        self._inbound.put(None)
        self._ready.set()
        with contextlib.suppress(_ConnectionLost):
            self.conn.send(A_CLSE, self.local_id, self.remote_id)


class _Connection:
    """One TCP client: handshake/auth state machine, packet demux, stream bookkeeping."""

    def __init__(self, sim: SimulatedAdbDevice, sock: socket.socket, number: int) -> None:
        self.sim = sim
        self.sock = sock
        self.number = number
        self.name = f"conn{number}"
        self.dead = False
        self.version = A_VERSION_MIN
        self.max_payload = 4096  # until CNXN tells us better
        self.online = False
        self.pushed_bytes = 0
        self.host_banner = ""
        self._token = b""
        self._send_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1

    # -- I/O --
    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = struct.pack(
            "<6I",
            command,
            arg0 & 0xFFFFFFFF,
            arg1 & 0xFFFFFFFF,
            len(data),
            _checksum(data),
            command ^ 0xFFFFFFFF,
        )
        with self._send_lock:
            if self.dead:
                raise _ConnectionLost("connection already closed")
            try:
                self.sock.sendall(header + data)
            except OSError as exc:
                self.dead = True
                raise _ConnectionLost(str(exc)) from exc

    def _recv_exact(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            try:
                chunk = self.sock.recv(min(size - len(chunks), 1 << 20))
            except OSError as exc:
                raise _ConnectionLost(str(exc)) from exc
            if not chunk:
                raise _ConnectionLost("peer closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _read_packet(self) -> tuple[int, int, int, bytes]:
        command, arg0, arg1, length, checksum, magic = struct.unpack("<6I", self._recv_exact(24))
        if magic != command ^ 0xFFFFFFFF:
            raise _ProtocolError(f"bad magic {magic:#x} for command {command:#x}")
        if length > _MAX_ACCEPTED_PAYLOAD:
            raise _ProtocolError(f"payload of {length} bytes is too large")
        data = self._recv_exact(length) if length else b""
        if (
            self.version < A_VERSION_SKIP_CHECKSUM
            and data
            and checksum != 0
            and _checksum(data) != checksum
        ):
            raise _ProtocolError("data checksum mismatch")
        return command, arg0, arg1, data

    def abort(self, reason: str) -> None:
        """Reset the TCP connection abruptly (fault injection / stop)."""
        self.sim._log(f"{self.name}: dropping connection ({reason})")
        self.dead = True
        # Free the single-client slot now, not when the reader thread gets around to it, so a
        # client reconnecting right after a drop is not refused by a race.
        self.sim._connection_finished(self)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)  # wakes our reader thread without sending FIN
        with contextlib.suppress(OSError):
            self.sock.close()  # linger 0 => RST

    # -- streams --
    def forget_stream(self, local_id: int) -> None:
        with self._streams_lock:
            self._streams.pop(local_id, None)

    def _get_stream(self, local_id: int) -> _Stream | None:
        with self._streams_lock:
            return self._streams.get(local_id)

    # -- main loop --
    def run(self) -> None:
        try:
            while not self.dead:
                self._dispatch(*self._read_packet())
        except (_ConnectionLost, _ProtocolError) as exc:
            if not self.dead:
                self.sim._log(f"{self.name}: closed: {exc}")
        except Exception:  # pragma: no cover - a bug in the simulator; keep the log useful
            self.sim._log(f"{self.name}: crashed:\n{traceback.format_exc()}")
        finally:
            self.dead = True
            with contextlib.suppress(OSError):
                self.sock.close()
            with self._streams_lock:
                streams = list(self._streams.values())
                self._streams.clear()
            for stream in streams:
                stream.on_connection_lost()
            self.sim._connection_finished(self)

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        name = _COMMAND_NAMES.get(command, f"{command:#x}")
        if command == A_CNXN:
            self._on_cnxn(arg0, arg1, data)
        elif command == A_AUTH:
            self._on_auth(arg0, data)
        elif command == A_STLS:
            self.sim._log(f"{self.name}: ignoring STLS (TLS is never offered)")
        elif not self.online:
            self.sim._log(f"{self.name}: ignoring {name} before the connection is online")
        elif command == A_OPEN:
            self._on_open(arg0, data)
        elif command == A_WRTE:
            stream = self._get_stream(arg1)
            if stream is None or stream.local_closed:
                return
            stream.feed(data)
            self.send(A_OKAY, arg1, arg0)
        elif command == A_OKAY:
            stream = self._get_stream(arg1)
            if stream is not None:
                stream.on_okay()
        elif command == A_CLSE:
            stream = self._get_stream(arg1)
            if stream is not None:
                stream.on_remote_close()
        else:
            self.sim._log(f"{self.name}: ignoring unknown command {name}")

    # -- handshake --
    def _on_cnxn(self, version: int, maxdata: int, data: bytes) -> None:
        self.host_banner = data.rstrip(b"\0").decode("utf-8", "replace")
        self.version = max(A_VERSION_MIN, min(A_VERSION, version))
        self.max_payload = max(256, min(MAX_PAYLOAD, maxdata or MAX_PAYLOAD))
        self.sim._log(
            f"{self.name}: CNXN version={version:#x} maxdata={maxdata} banner={self.host_banner!r}"
        )
        sim = self.sim
        if sim.never_answer_auth:
            sim._log(f"{self.name}: never_answer_auth: staying silent")
            return
        if not sim.auth_required or self.online:
            self._go_online()
            return
        self._send_token()

    def _send_token(self) -> None:
        self._token = secrets.token_bytes(TOKEN_SIZE)
        self.send(A_AUTH, AUTH_TOKEN, 0, self._token)

    def _on_auth(self, kind: int, data: bytes) -> None:
        sim = self.sim
        if sim.never_answer_auth or self.online:
            return
        if kind == AUTH_SIGNATURE:
            key = sim._match_signature(self._token, data)
            if key is not None:
                sim._log(f"{self.name}: signature verified with key {key.fingerprint}")
                self._go_online()
            else:
                sim._log(f"{self.name}: signature rejected; sending a new token")
                self._send_token()
        elif kind == AUTH_RSAPUBLICKEY:
            try:
                key = AndroidPublicKey.parse(data)
            except ValueError as exc:
                sim._log(f"{self.name}: unparsable RSAPUBLICKEY: {exc}")
                return
            sim.offered_keys.append(key)
            if sim.auto_accept_new_keys:
                sim._log(f"{self.name}: auto-accepting new key {key.fingerprint} ({key.comment})")
                sim.add_authorized_key(key)
                self._go_online()
            else:
                sim._log(
                    f"{self.name}: unauthorized key {key.fingerprint} ({key.comment}); "
                    "waiting forever like an unanswered 'Allow USB debugging?' dialog"
                )
                if sim.close_unauthorized:
                    self.abort("unauthorized key")
        else:
            sim._log(f"{self.name}: ignoring AUTH type {kind}")

    def _go_online(self) -> None:
        self.online = True
        self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.sim.banner.encode())
        self.sim._log(f"{self.name}: online (max_payload={self.max_payload})")

    def _on_open(self, remote_id: int, data: bytes) -> None:
        service = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        handler = self.sim._resolve_service(service)
        if handler is None:
            self.sim._log(f"{self.name}: refusing unknown service {service!r}")
            self.send(A_CLSE, 0, remote_id)
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = _Stream(self, local_id, remote_id, service)
            self._streams[local_id] = stream
        self.sim._log(f"{self.name}: OPEN {service!r} -> stream {local_id}")
        self.send(A_OKAY, local_id, remote_id)
        thread = threading.Thread(
            target=self._run_service,
            args=(stream, handler),
            name=f"adbsim-{self.name}-s{local_id}",
            daemon=True,
        )
        thread.start()

    def _run_service(self, stream: _Stream, handler: Callable[[_Stream], None]) -> None:
        try:
            handler(stream)
        except (_StreamClosed, _ConnectionLost):
            pass
        except Exception:
            self.sim._log(
                f"{self.name}: service {stream.service!r} crashed:\n{traceback.format_exc()}"
            )
        finally:
            stream.close()


# --------------------------------------------------------------------------------------------
# The device
# --------------------------------------------------------------------------------------------


class SimulatedAdbDevice:
    """A fake phone's ``adbd`` listening on TCP; see the module docstring for the behaviour.

    Use as a context manager (or ``start()``/``stop()``); ``serial`` is what ``adb connect``
    and ``adb -s`` want, ``port`` is what ``AdbDeviceTcp`` wants.

    Arguments (all keyword-only except ``root``):

    * ``root`` -- host directory holding the device filesystem (default: a temp dir that
      ``stop()`` deletes).  ``data_dir`` is ``<root>/data/local/tmp``.
    * ``host``/``port`` -- where to listen; ``port=0`` picks a free port (read ``.port`` after
      ``start()``).
    * ``authorized_keys`` -- ``adbkey.pub``/``adb_keys`` paths, key text, or
      :class:`AndroidPublicKey` objects.
    * ``auth_required`` -- ``False`` answers ``CNXN`` with ``CNXN`` (no AUTH at all).
    * ``auto_accept_new_keys`` -- accept (and remember) any ``AUTH RSAPUBLICKEY``; otherwise the
      device stays silent ("unauthorized"), or resets the connection if ``close_unauthorized``.
    * ``never_answer_auth`` -- swallow ``CNXN`` and never reply (the hang on an unknown host).
    * ``single_client`` -- refuse (accept, then reset) a second concurrent TCP client, after a
      ``refuse_grace_s`` wait that absorbs "client closed and reconnected at once" races.
      Note an unauthorized or silent connection still occupies the slot, as on a real device.
    * ``drop_after_bytes_pushed``/``drop_during_shell``/``drop_during_pull``/``drop_times``/
      ``drop_delay_s`` -- fault injection (see module docstring); ``drop_delay_s`` is how long a
      matching shell command runs before the drop.
    * ``storage_limit_bytes`` -- bytes available under ``/data`` + ``/sdcard``.
    * ``sync_fail_early`` -- a ``SEND`` whose file cannot be created answers ``FAIL`` at once
      and then discards the data until ``DONE`` (newer adbd), instead of after ``DONE``.
    * ``python`` -- interpreter exposed as ``python3``/``python`` on the device ``PATH``.
    * ``props`` -- extra/overriding ``getprop`` properties (also feed the CNXN banner).
    * ``features`` -- banner features; only list what this class implements.
    * ``extra_env`` -- added to the minimal shell environment.
    * ``echo_log`` -- also print log lines to stderr.
    * ``toybox`` -- an Android-like shell: commands run under ``mksh``, ``PATH`` holds only
      ``system/bin`` with one link per toybox applet (Debian's ``toybox``), ``sh`` -> ``mksh``,
      the simulated ``getprop``/``df``, and no ``python``: no bash, no GNU coreutils. Debian's
      toybox is built without ``dd``, which Android's has: ``toybox_dd`` (default on) adds a
      STAND-IN ``dd`` (an mksh script over toybox ``head``/``tail``, for ``if= of= bs= skip=
      count=`` only); ``toybox_dd=False`` is a toybox built without ``dd``.

    Useful attributes: ``serial``, ``port``, ``root``, ``data_dir``, ``bin_dir``, ``props``,
    ``log`` (debug lines), ``commands`` (shell/exec command strings received),
    ``authorized_keys``, ``offered_keys`` (keys hosts offered via RSAPUBLICKEY),
    ``connections_total``, ``refused_connections``, ``active_connections``; and
    ``host_path(device_path)`` to find the host file behind a device path.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authorized_keys: Iterable[str | os.PathLike[str] | bytes | AndroidPublicKey] = (),
        auth_required: bool = True,
        auto_accept_new_keys: bool = False,
        close_unauthorized: bool = False,
        never_answer_auth: bool = False,
        single_client: bool = True,
        refuse_grace_s: float = 0.5,
        drop_after_bytes_pushed: int | None = None,
        drop_during_shell: str | None = None,
        drop_during_pull: str | None = None,
        drop_times: int | None = 1,
        drop_delay_s: float = 0.2,
        storage_limit_bytes: int | None = None,
        sync_fail_early: bool = False,
        python: str | os.PathLike[str] | None = None,
        props: dict[str, str] | None = None,
        features: Iterable[str] = DEFAULT_FEATURES,
        extra_env: dict[str, str] | None = None,
        echo_log: bool = False,
        toybox: bool = False,
        toybox_dd: bool = True,
    ) -> None:
        self._owns_root = root is None
        self.root = Path(root if root is not None else tempfile.mkdtemp(prefix="adbsim-")).resolve()
        self.host = host
        self._requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self.authorized_keys: list[AndroidPublicKey] = []
        for spec in authorized_keys:
            self.add_authorized_key(spec)
        self.auth_required = auth_required
        self.auto_accept_new_keys = auto_accept_new_keys
        self.close_unauthorized = close_unauthorized
        self.never_answer_auth = never_answer_auth
        self.single_client = single_client
        self.refuse_grace_s = refuse_grace_s
        self.drop_after_bytes_pushed = drop_after_bytes_pushed
        self.drop_during_shell = drop_during_shell
        self.drop_during_pull = drop_during_pull
        self.drop_times = drop_times
        self.drop_delay_s = drop_delay_s
        self.storage_limit_bytes = storage_limit_bytes
        self.sync_fail_early = sync_fail_early
        self.python = os.fspath(python) if python is not None else sys.executable
        self.features = tuple(features)
        self.extra_env = dict(extra_env or {})
        self.echo_log = echo_log
        self.toybox = toybox
        self.toybox_dd = toybox_dd

        self.abi = abi_for_machine()
        self.props: dict[str, str] = {
            "ro.product.model": "SimPhone",
            "ro.product.name": "sim",
            "ro.product.device": "sim",
            "ro.product.brand": "Simulated",
            "ro.product.manufacturer": "Simulated",
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": self.abi,
            "ro.build.version.sdk": "34",
            "ro.build.version.release": "14",
            "ro.build.type": "user",
            "ro.board.platform": "simboard",
            "ro.hardware": "sim",
            "ro.debuggable": "0",
        }
        self.props.update(props or {})

        self.log: list[str] = []
        self.commands: list[str] = []  # shell/exec commands as the client sent them
        self.offered_keys: list[AndroidPublicKey] = []  # keys seen in AUTH RSAPUBLICKEY
        self.connections_total = 0
        self.refused_connections = 0

        self._fault_budget: dict[str, int | None] = {}
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: list[_Connection] = []
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._stopping = threading.Event()
        self._prepare_root()

    # -- public helpers --
    @property
    def serial(self) -> str:
        """The ``adb connect``/``adb -s`` serial, e.g. ``127.0.0.1:40123``."""
        return f"{self.host}:{self.port}"

    @property
    def banner(self) -> str:
        """The CNXN payload: product properties plus the features we actually implement."""
        return (
            f"device::ro.product.name={self.props['ro.product.name']};"
            f"ro.product.model={self.props['ro.product.model']};"
            f"ro.product.device={self.props['ro.product.device']};"
            f"features={','.join(self.features)}"
        )

    @property
    def data_dir(self) -> Path:
        """Host directory backing ``/data/local/tmp``."""
        return self.root / "data" / "local" / "tmp"

    @property
    def bin_dir(self) -> Path:
        """Host directory with the simulated tools (``getprop``, ``python3``, ``df``)."""
        return self.root / "system" / "bin"

    def add_authorized_key(self, spec: str | os.PathLike[str] | bytes | AndroidPublicKey) -> None:
        """Authorize a key (object, key text, or path to an ``adbkey.pub``/``adb_keys`` file)."""
        keys = [spec] if isinstance(spec, AndroidPublicKey) else load_public_keys(spec)
        with self._lock:
            self.authorized_keys.extend(keys)

    def host_path(self, device_path: str, *, write: bool = False) -> Path:
        """Translate a device path to the host path backing it (``PermissionError`` if unmapped)."""
        mapped = self._map_path(device_path, write=write)
        if mapped is None:
            raise PermissionError(f"{device_path}: not accessible on the simulated device")
        return mapped

    # -- lifecycle --
    def start(self) -> SimulatedAdbDevice:
        """Bind, write the device tools, and accept clients on a background thread."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(8)
        listener.settimeout(0.25)  # lets the accept loop notice stop() on any platform
        self.port = listener.getsockname()[1]
        self._listener = listener
        self.props.setdefault("ro.serialno", self.serial)
        self._write_tools()
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"adbsim-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        self._log(f"listening on {self.serial} root={self.root}")
        return self

    def stop(self) -> None:
        """Stop accepting, reset all connections, kill leftover device processes."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2)
            self._accept_thread = None
        with self._lock:
            conns = list(self._connections)
            procs = list(self._procs)
        for conn in conns:
            conn.abort("simulator stopping")
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SimulatedAdbDevice:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # -- internals: logging, faults, paths --
    def _log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        with self._lock:
            self.log.append(line)
        if self.echo_log:
            print(line, file=sys.stderr, flush=True)

    def _take_fault(self, kind: str) -> bool:
        """Consume one firing of fault ``kind``; False once ``drop_times`` is used up."""
        with self._lock:
            remaining = self._fault_budget.get(kind, self.drop_times)
            if remaining is not None and remaining <= 0:
                return False
            if remaining is not None:
                self._fault_budget[kind] = remaining - 1
            return True

    def _map_path(self, device_path: str, *, write: bool) -> Path | None:
        path = posixpath.normpath("/" + device_path.lstrip("/")) if device_path else "/"
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        for prefix, rel in _WRITABLE_PREFIXES:
            if path == prefix or path.startswith(prefix + "/"):
                return self.root / rel / path[len(prefix) :].lstrip("/")
        if not write:
            for prefix in _READONLY_PREFIXES:
                if path == prefix or path.startswith(prefix + "/"):
                    return Path(path)
        return None

    def _rewrite_command(self, command: str) -> str:
        for prefix, rel in _WRITABLE_PREFIXES:
            host_dir = str(self.root / rel)
            pattern = r"(?<![\w./-])" + re.escape(prefix) + r"(?![\w.-])"
            command = re.sub(pattern, lambda _m, h=host_dir: h, command)
        return command

    def _storage_used(self) -> int:
        total = 0
        for top in (self.root / "data", self.root / "sdcard"):
            for dirpath, _dirs, files in os.walk(top):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def _match_signature(self, token: bytes, signature: bytes) -> AndroidPublicKey | None:
        with self._lock:
            keys = list(self.authorized_keys)
        for key in keys:
            if key.verify(token, signature):
                return key
        return None

    def _prepare_root(self) -> None:
        for rel in ("data/local/tmp", "sdcard", "system/bin"):
            (self.root / rel).mkdir(parents=True, exist_ok=True)

    def _write_tools(self) -> None:
        def quote(value: str) -> str:
            return "'" + value.replace("'", "'\\''") + "'"

        listing = "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items()))
        cases = "".join(
            f"  {quote(k)}) printf '%s\\n' {quote(v)} ;;\n" for k, v in self.props.items()
        )
        getprop = (
            "#!/bin/sh\n# Simulated getprop written by tests/support/adb_device.py\n"
            "if [ \"$#\" -eq 0 ]; then\ncat <<'__SIM_PROPS__'\n"
            f"{listing}__SIM_PROPS__\nexit 0\nfi\n"
            f'case "$1" in\n{cases}  *) printf \'%s\\n\' "$2" ;;\nesac\n'
        )
        python_wrapper = f'#!/bin/sh\nexec {quote(self.python)} "$@"\n'
        limit = "None" if self.storage_limit_bytes is None else str(int(self.storage_limit_bytes))
        df_py = (
            "import os, shutil\n"
            f"root = {str(self.root)!r}\nlimit = {limit}\n"
            "used = 0\n"
            "for top in ('data', 'sdcard'):\n"
            "    for d, _s, fs in os.walk(os.path.join(root, top)):\n"
            "        for f in fs:\n"
            "            try:\n"
            "                used += os.lstat(os.path.join(d, f)).st_size\n"
            "            except OSError:\n"
            "                pass\n"
            "if limit is None:\n"
            "    du = shutil.disk_usage(root)\n"
            "    total, avail = du.total, du.free\n"
            "else:\n"
            "    total, avail = limit, max(0, limit - used)\n"
            "pct = (100 * used + total - 1) // total if total else 0\n"
            "print('Filesystem       1K-blocks    Used Available Use% Mounted on')\n"
            "print('/dev/block/dm-sim %9d %7d %9d %3d%% /data' % (total // 1024, used // 1024, avail // 1024, pct))\n"
        )
        df_wrapper = (
            f"#!/bin/sh\nexec {quote(self.python)} {quote(str(self.bin_dir / '_sim_df.py'))}\n"
        )
        tools = {
            "getprop": getprop,
            "python3": python_wrapper,
            "python": python_wrapper,
            "df": df_wrapper,
            "_sim_df.py": df_py,
        }
        if self.toybox:
            tools = self._toybox_tools(getprop, df_py)
        for name, text in tools.items():
            path = self.bin_dir / name
            path.write_text(text, encoding="utf-8")
            path.chmod(0o755)

    def _toybox_tools(self, getprop: str, df_py: str) -> dict[str, str]:
        """Link every toybox applet into bin_dir, `sh` to mksh; the tools written as mksh scripts."""
        toybox, mksh = shutil.which("toybox"), shutil.which("mksh")
        if not toybox or not mksh:
            raise RuntimeError("toybox=True needs Debian's mksh and toybox (scripts/system-deps.sh installs them)")
        applets = subprocess.run([toybox], capture_output=True, text=True, check=True).stdout.split()
        for name in applets:
            link = self.bin_dir / name
            if name not in ("getprop", "df") and not link.exists():
                link.symlink_to(toybox)
        (self.bin_dir / "sh").symlink_to(mksh)
        shebang = f"#!{mksh}\n"
        tools = {
            "getprop": getprop.replace("#!/bin/sh\n", shebang, 1),
            # the simulated df honours storage_limit_bytes; its figures come from the host's python,
            # which is no part of the device (python is not on its PATH)
            "df": f"{shebang}exec {sys.executable} {self.bin_dir / '_sim_df.py'}\n",
            "_sim_df.py": df_py,
        }
        if self.toybox_dd and "dd" not in applets:
            tools["dd"] = (
                f"{shebang}# STAND-IN dd (tests/support/adb_device.py): Debian's toybox lacks the applet\n"
                "for a; do case $a in if=*) i=${a#if=};; of=*) o=${a#of=};; bs=*) b=${a#bs=};;\n"
                "  skip=*) k=${a#skip=};; count=*) n=${a#count=};; *) echo \"dd: unknown $a\" >&2; exit 1;; esac; done\n"
                "tail -c +$(( ${b:-512} * ${k:-0} + 1 )) \"$i\" | head -c $(( ${b:-512} * ${n:-1} )) > \"$o\" || exit 1\n"
                "echo \"${n:-1}+0 records in\" >&2\n"
            )
        return tools

    def _shell_env(self, term: str | None) -> dict[str, str]:
        env = {
            "PATH": str(self.bin_dir) if self.toybox else f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "TMPDIR": str(self.data_dir),
            "USER": "shell",
            "LOGNAME": "shell",
            "HOSTNAME": "localhost",
            "ANDROID_DATA": "/data",
            "ANDROID_ROOT": "/system",
            "ADBSIM_ROOT": str(self.root),
            "LANG": "C.UTF-8",
        }
        if term:
            env["TERM"] = term
        env.update(self.extra_env)
        return env

    # -- accepting --
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        number = 0
        while not self._stopping.is_set():
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            busy = self.single_client and self._wait_for_free_slot(self.refuse_grace_s)
            if busy:
                with self._lock:
                    self.refused_connections += 1
                self._log(f"refusing second client {addr}: single_client=True")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                continue
            number += 1
            conn = _Connection(self, sock, number)
            with self._lock:
                self._connections.append(conn)
                self.connections_total += 1
            self._log(f"{conn.name}: accepted {addr}")
            threading.Thread(target=conn.run, name=f"adbsim-{conn.name}", daemon=True).start()

    def _wait_for_free_slot(self, grace_s: float) -> bool:
        """True if a client is still connected after ``grace_s``.

        The grace period covers a client that closed its socket a moment ago and reconnects
        at once: our reader thread may not have seen the EOF yet.
        """
        deadline = time.monotonic() + grace_s
        while True:
            with self._lock:
                if not self._connections:
                    return False
            if time.monotonic() >= deadline or self._stopping.is_set():
                return True
            time.sleep(0.02)

    def _connection_finished(self, conn: _Connection) -> None:
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)

    # -- services --
    def _resolve_service(self, service: str) -> Callable[[_Stream], None] | None:
        if service == "sync:":
            return self._service_sync
        if service.startswith("exec:"):
            command = service[len("exec:") :]
            return lambda stream: self._service_shell(
                stream, command, v2=False, term=None, exec_=True
            )
        if service.startswith("shell:") or service.startswith("shell,"):
            head, _, command = service.partition(":")
            args = head.split(",")[1:]
            v2 = "v2" in args
            term = next((a[len("TERM=") :] for a in args if a.startswith("TERM=")), None)
            return lambda stream: self._service_shell(
                stream, command, v2=v2, term=term, exec_=False
            )
        return None

    def _service_shell(
        self, stream: _Stream, command: str, *, v2: bool, term: str | None, exec_: bool
    ) -> None:
        conn = stream.conn
        with self._lock:
            self.commands.append(command)
        shell = str(self.bin_dir / "sh") if self.toybox else "/bin/sh"
        argv = [shell, "-c", self._rewrite_command(command)] if command.strip() else [shell]
        proc = subprocess.Popen(
            argv,
            cwd=self.root,
            env=self._shell_env(term),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if v2 else subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        self._log(f"{conn.name}: shell{' v2' if v2 else ''} pid={proc.pid}: {command!r}")
        root_bytes = str(self.root).encode()

        def pump_out(fd: int, shell_id: int) -> None:
            rewriter = None if exec_ else _RootRewriter(root_bytes)
            limit = max(1, conn.max_payload - 5) if v2 else SYNC_DATA_MAX
            try:
                while True:
                    data = os.read(fd, limit)
                    if not data:
                        if rewriter is not None and (rest := rewriter.flush()):
                            send_out(shell_id, rest)
                        return
                    if rewriter is not None:
                        data = rewriter.feed(data)
                    if data:
                        send_out(shell_id, data)
            except (_StreamClosed, _ConnectionLost, OSError):
                pass  # client gone: stop reading so the process sees a broken pipe
            finally:
                os.close(fd)  # later writes by the process get EPIPE/SIGPIPE, as with adbd

        def send_out(shell_id: int, data: bytes) -> None:
            # One write() per v2 packet: _Stream.write is serialised, so the stdout and
            # stderr pumps never interleave inside a packet.
            if v2:
                stream.write(struct.pack("<BI", shell_id, len(data)) + data)
            else:
                stream.write(data)

        def pump_in() -> None:
            stdin = proc.stdin
            assert stdin is not None
            fd = os.dup(stdin.fileno())
            stdin.close()
            open_ = True

            def close_stdin() -> None:
                nonlocal open_
                if open_:
                    open_ = False
                    os.close(fd)

            try:
                while open_:
                    if v2:
                        header = stream.read_exact(5)
                        shell_id, length = struct.unpack("<BI", header)
                        payload = stream.read_exact(length) if length else b""
                        if shell_id == SHELL_STDIN and payload:
                            _write_all(fd, payload)
                        elif shell_id == SHELL_CLOSE_STDIN:
                            close_stdin()
                    else:
                        data = stream.read_some()
                        if not data:
                            break
                        _write_all(fd, data)
            except (_StreamClosed, OSError):
                pass
            finally:
                close_stdin()

        assert proc.stdout is not None
        out_fds = [(os.dup(proc.stdout.fileno()), SHELL_STDOUT)]
        proc.stdout.close()
        if v2:
            assert proc.stderr is not None
            out_fds.append((os.dup(proc.stderr.fileno()), SHELL_STDERR))
            proc.stderr.close()
        threads = [threading.Thread(target=pump_in, daemon=True)]
        threads += [threading.Thread(target=pump_out, args=item, daemon=True) for item in out_fds]
        for thread in threads:
            thread.start()

        if (
            self.drop_during_shell
            and self.drop_during_shell in command
            and self._take_fault("shell")
        ):
            time.sleep(self.drop_delay_s)
            conn.abort(f"drop_during_shell matched {command!r}")
            threading.Thread(target=self._reap, args=(proc,), daemon=True).start()
            raise _ConnectionLost("dropped on purpose")

        returncode = proc.wait()
        for thread in threads[1:]:
            thread.join()  # like adbd: wait until every holder of stdout/stderr closed it
        self._forget_proc(proc)
        code = 128 - returncode if returncode < 0 else returncode
        self._log(f"{conn.name}: pid={proc.pid} exited with {code}")
        if v2:
            stream.write(struct.pack("<BIB", SHELL_EXIT, 1, code & 0xFF))
        stream.drain()

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._forget_proc(proc)

    def _forget_proc(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    # -- sync --
    def _service_sync(self, stream: _Stream) -> None:
        while True:
            header = stream.read_exact(8)
            ident, length = header[:4], struct.unpack("<I", header[4:])[0]
            if ident == b"QUIT":
                return
            if ident not in (b"STAT", b"LIST", b"SEND", b"RECV"):
                self._sync_fail(stream, f"unknown sync command {ident!r}")
                return
            if length > _SYNC_PATH_MAX:
                self._sync_fail(stream, "path too long")
                return
            arg = stream.read_exact(length).decode("utf-8", "surrogateescape")
            if ident == b"STAT":
                self._sync_stat(stream, arg)
            elif ident == b"LIST":
                self._sync_list(stream, arg)
            elif ident == b"SEND":
                if not self._sync_send(stream, arg):
                    return  # adbd closes the sync socket after a failed SEND
            elif not self._sync_recv(stream, arg):
                return

    @staticmethod
    def _sync_fail(stream: _Stream, message: str) -> None:
        data = message.encode()
        stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def _sync_stat(self, stream: _Stream, device_path: str) -> None:
        mapped = self._map_path(device_path, write=False)
        mode = size = mtime = 0
        if mapped is not None:
            with contextlib.suppress(OSError):
                st = os.lstat(mapped)
                mode, size, mtime = st.st_mode, st.st_size, int(st.st_mtime)
        stream.write(b"STAT" + struct.pack("<3I", mode, size & 0xFFFFFFFF, mtime & 0xFFFFFFFF))

    def _sync_list(self, stream: _Stream, device_path: str) -> None:
        mapped = self._map_path(device_path, write=False)
        out = bytearray()
        if mapped is not None and mapped.is_dir():
            names = [".", ".."]
            with contextlib.suppress(OSError):
                names += sorted(os.listdir(mapped))
            for name in names:
                try:
                    st = os.lstat(mapped / name)
                except OSError:
                    continue
                encoded = name.encode("utf-8", "surrogateescape")
                out += b"DENT" + struct.pack(
                    "<4I",
                    st.st_mode,
                    st.st_size & 0xFFFFFFFF,
                    int(st.st_mtime) & 0xFFFFFFFF,
                    len(encoded),
                )
                out += encoded
        out += b"DONE" + struct.pack("<4I", 0, 0, 0, 0)
        stream.write(bytes(out))

    def _sync_send(self, stream: _Stream, spec: str) -> bool:
        conn = stream.conn
        device_path, comma, mode_text = spec.rpartition(",")
        if not comma:
            device_path, mode_text = spec, "0"
        try:
            mode = int(mode_text)
        except ValueError:
            mode = 0o100644
        error: str | None = None
        target = self._map_path(device_path, write=True)
        handle = None
        is_link = stat.S_ISLNK(mode)
        link_target = bytearray()
        if target is None:
            error = "couldn't create file: Permission denied"
        else:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_dir() and not target.is_symlink():
                    raise IsADirectoryError(21, "Is a directory")
                if not is_link:
                    handle = open(target, "wb")  # noqa: SIM115 - closed on every path below
            except OSError as exc:
                error = f"couldn't create file: {exc.strerror or exc}"
        failed_early = error is not None and self.sync_fail_early
        if failed_early:
            assert error is not None
            self._sync_fail(stream, error)  # then discard until DONE, as adbd does
        # Measured after open() truncated the target, so overwriting a file reuses its space.
        used = self._storage_used() if self.storage_limit_bytes is not None else 0
        written = 0
        mtime = 0
        try:
            while True:
                header = stream.read_exact(8)
                ident, length = header[:4], struct.unpack("<I", header[4:])[0]
                if ident == b"DONE":
                    mtime = length
                    break
                if ident != b"DATA" or length > 4 * SYNC_DATA_MAX:
                    error = error or f"invalid data message {ident!r}"
                    self._discard_partial(handle, target if not is_link else None)
                    handle = None
                    if not failed_early:
                        self._sync_fail(stream, error)
                    return False
                data = stream.read_exact(length)
                conn.pushed_bytes += length
                if (
                    self.drop_after_bytes_pushed is not None
                    and conn.pushed_bytes >= self.drop_after_bytes_pushed
                    and self._take_fault("push")
                ):
                    self._discard_partial(handle, target)
                    handle = None
                    conn.abort(f"drop_after_bytes_pushed={self.drop_after_bytes_pushed}")
                    raise _ConnectionLost("dropped on purpose")
                if error is not None:
                    continue  # adbd keeps reading and discarding until DONE
                if is_link:
                    link_target += data
                    continue
                if (
                    self.storage_limit_bytes is not None
                    and used + written + length > self.storage_limit_bytes
                ):
                    error = "write failed: No space left on device"
                    self._discard_partial(handle, target)
                    handle = None
                    continue
                assert handle is not None
                try:
                    handle.write(data)
                    written += length
                except OSError as exc:
                    error = f"write failed: {exc.strerror or exc}"
                    self._discard_partial(handle, target)
                    handle = None
        except BaseException:
            self._discard_partial(handle, target if handle is not None else None)
            raise
        if error is not None:
            self._log(f"{conn.name}: SEND {device_path!r} failed: {error}")
            if not failed_early:
                self._sync_fail(stream, error)
            return False
        assert target is not None
        try:
            if is_link:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                os.symlink(link_target.decode("utf-8", "surrogateescape"), target)
            else:
                assert handle is not None
                handle.close()
                os.chmod(target, (mode & 0o777) | 0o600)
                os.utime(target, (mtime, mtime))
        except OSError as exc:
            self._sync_fail(stream, f"couldn't finish file: {exc.strerror or exc}")
            return False
        self._log(f"{conn.name}: SEND {device_path!r} ok ({written} bytes)")
        stream.write(b"OKAY" + struct.pack("<I", 0))
        return True

    @staticmethod
    def _discard_partial(handle: object, target: Path | None) -> None:
        """Close and delete a half-written file, as adbd does when a SEND fails."""
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()  # type: ignore[attr-defined]
        if target is not None:
            with contextlib.suppress(OSError):
                if target.is_file():
                    target.unlink()

    def _sync_recv(self, stream: _Stream, device_path: str) -> bool:
        conn = stream.conn
        mapped = self._map_path(device_path, write=False)
        if mapped is None:
            self._sync_fail(stream, "open failed: Permission denied")
            return False
        try:
            handle = open(mapped, "rb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            self._sync_fail(stream, f"open failed: {exc.strerror or exc}")
            return False
        drop = bool(self.drop_during_pull and self.drop_during_pull in device_path)
        if drop:
            drop = self._take_fault("pull")
        sent = 0
        try:
            while True:
                try:
                    chunk = handle.read(SYNC_DATA_MAX)
                except OSError as exc:
                    self._sync_fail(stream, f"read failed: {exc.strerror or exc}")
                    return False
                if not chunk:
                    break
                stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                sent += len(chunk)
                if drop:
                    break
            if drop:
                stream.drain(timeout=1.0)
                conn.abort(f"drop_during_pull matched {device_path!r}")
                raise _ConnectionLost("dropped on purpose")
        finally:
            handle.close()
        self._log(f"{conn.name}: RECV {device_path!r} ok ({sent} bytes)")
        stream.write(b"DONE" + struct.pack("<I", 0))
        return True


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (pipes accept partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --------------------------------------------------------------------------------------------
# Standalone entry point
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run a simulated device until interrupted (handy for poking at it with a real ``adb``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--root", help="device root directory (default: a temporary one)")
    parser.add_argument(
        "--authorized-key",
        action="append",
        default=[],
        help="adbkey.pub path or key text (repeatable)",
    )
    parser.add_argument("--no-auth", action="store_true", help="skip AUTH entirely")
    parser.add_argument("--auto-accept", action="store_true", help="accept any offered public key")
    parser.add_argument("--multi-client", action="store_true", help="allow concurrent TCP clients")
    parser.add_argument("--storage-limit", type=int, default=None, help="bytes available")
    parser.add_argument("--quiet", action="store_true", help="do not echo the log to stderr")
    args = parser.parse_args(argv)
    sim = SimulatedAdbDevice(
        args.root,
        host=args.host,
        port=args.port,
        authorized_keys=[os.path.expanduser(k) for k in args.authorized_key],
        auth_required=not args.no_auth,
        auto_accept_new_keys=args.auto_accept,
        single_client=not args.multi_client,
        storage_limit_bytes=args.storage_limit,
        echo_log=not args.quiet,
    )
    sim.start()
    print(sim.port, flush=True)
    print(
        f"simulated device {sim.serial} (root {sim.root}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
