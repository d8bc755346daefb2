"""Converter workers forked from one process that imported TensorFlow once.

Every converter worker imports TensorFlow before its first job (6-10 s of CPU, ~570 MB). A
pool of two paid it twice, and a worker replaced after a converter crash (SIGSEGV, timeout)
paid it again. The fork server imports it once; each worker is then a fork of the server
(well under a second), and the workers share TensorFlow's pages until they write them.
A worker is still its own process: a crash kills only it, and the next fork is clean,
since the server itself never converts, loads a model or starts a thread. (The one native
thread it has after the import is OpenBLAS's pool, from NumPy, which re-creates it in a
forked child through its own `pthread_atfork` handlers.)

The parent's side (`ForkServer`) speaks to the server over a Unix socket pair
(SOCK_SEQPACKET: one message per packet):

- parent -> server: ``fork`` with three file descriptors (the worker's stdin, its answer
  pipe, its log); the server forks and the child runs `worker.serve` on them, in its own
  session (so that the parent can kill its group, as with a spawned worker);
- server -> parent: ``{"ready": pid}`` once TensorFlow is imported, ``{"forked": pid}`` per
  fork, ``{"exit": pid, "returncode": rc}`` when a worker ends (negative: the signal, as
  `subprocess.Popen.returncode`), which is how a crash is told from a clean exit.

A `ForkedProcess` answers the part of `subprocess.Popen` that `pool._Worker` uses. Where
fork is unavailable or the server cannot start, the pool spawns workers as before.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DISABLE_ENV = "TFLITE_HARNESS_SPAWN_WORKERS"  # set to 1: spawn every converter worker (no fork server)
READY_TIMEOUT_S = 180.0
FORK_TIMEOUT_S = 30.0
REAP_POLL_S = 0.05


def available() -> bool:
    """Forking is used where it exists (Linux, macOS) unless the user turned it off."""
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and os.environ.get(DISABLE_ENV) != "1"


# ----------------------------------------------------------------------------- parent side
class ForkedProcess:
    """A worker forked by the server: the `subprocess.Popen` surface `pool._Worker` uses."""

    def __init__(self, server: ForkServer, pid: int, stdin, stdout):
        self._server = server
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout

    @property
    def returncode(self) -> int | None:
        return self._server.returncode(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self._server.wait(self.pid, timeout)


class ForkServer:
    """The parent's handle on a running fork server: start it, fork workers, learn their exits."""

    def __init__(self, env: dict[str, str], log_path: Path):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.convert.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=env, start_new_session=True)
        theirs.close()
        self._sock = ours
        self._cond = threading.Condition()
        self._exits: dict[int, int] = {}
        self._forked: list[int] = []
        self._ready = False
        self._gone = False  # the server ended: no more forks, no more exit reports
        self._fork_lock = threading.Lock()  # one fork at a time: its reply is the next "forked"
        self._reader = threading.Thread(target=self._read, name="forkserver-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._gone = True
                    self._cond.notify_all()
                return
            msg = json.loads(data)
            with self._cond:
                if "ready" in msg:
                    self._ready = True
                elif "forked" in msg:
                    self._forked.append(msg["forked"])
                elif "exit" in msg:
                    self._exits[msg["exit"]] = msg["returncode"]
                self._cond.notify_all()

    def _wait_for(self, check, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not check():
                if self._gone:
                    return check()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """True once TensorFlow is imported in the server; False if it died or took too long."""
        return self._wait_for(lambda: self._ready, timeout)

    def fork(self, log_file) -> ForkedProcess:
        """A new worker whose stderr is LOG_FILE (an open binary file); raises OSError when the
        server cannot fork (it ended)."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            with self._fork_lock:
                with self._cond:
                    if self._gone:
                        raise OSError("the fork server has ended")
                    self._forked.clear()
                socket.send_fds(self._sock, [b"fork"], [in_r, out_w, log_file.fileno()])
                if not self._wait_for(lambda: bool(self._forked), FORK_TIMEOUT_S):
                    raise OSError("the fork server did not fork")
                with self._cond:
                    pid = self._forked.pop()
        except BaseException:
            os.close(in_w)
            os.close(out_r)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        return ForkedProcess(self, pid, os.fdopen(in_w, "w", buffering=1, encoding="utf-8"),
                             os.fdopen(out_r, "r", buffering=1, encoding="utf-8"))

    def returncode(self, pid: int) -> int | None:
        with self._cond:
            if pid in self._exits:
                return self._exits[pid]
            if self._gone and not _alive(pid):
                return -signal.SIGKILL  # its server died before reporting it: it was killed with it
            return None

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._wait_for(lambda: pid in self._exits or self._gone, left if left is None else min(left, 0.5))
            code = self.returncode(pid)
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked worker {pid}", timeout)

    def close(self) -> None:
        """End the server: it exits once its socket closes (its workers are closed first)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()

    def kill(self) -> None:
        kill_group(self.proc)
        self._log.close()


def kill_group(proc) -> None:
    """SIGKILL PROC's process group (it leads its own session) and wait for it: a spawned
    worker, a forked one (`ForkedProcess`) or the server."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- server side
def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _child(sock: socket.socket, fds: list[int], server: int) -> None:
    """In the forked child: become a worker on FDS (stdin, answer pipe, log) and never return."""
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # its own group, as a spawned worker: the parent kills it with killpg
        stdin_fd, answer_fd, log_fd = fds
        os.dup2(log_fd, 2)
        os.dup2(stdin_fd, 0)
        os.close(log_fd)
        os.close(stdin_fd)
        sys.stdin = os.fdopen(0, "r", encoding="utf-8")
        from harness.convert import worker

        code = worker.serve(os.fdopen(answer_fd, "w", buffering=1, encoding="utf-8"), parent=server)
    except BaseException:  # noqa: BLE001 - a child must never return into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve(sock_fd: int) -> int:
    """The server's loop: one thread, no model; fork on request, report exits, end with the parent."""
    sock = socket.socket(fileno=sock_fd)
    parent = os.getppid()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from harness.convert import worker  # imported once too

    if not os.environ.get(worker.LIGHT_ENV):  # (light: the protocol's own tests, no TensorFlow)
        import tensorflow  # noqa: F401  - once, for every worker forked from here

    sock.send(json.dumps({"ready": os.getpid()}).encode())
    children: set[int] = set()
    open_ = True
    while open_ or children:
        ready, _, _ = select.select([sock] if open_ else [], [], [], REAP_POLL_S)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            if open_:
                try:
                    sock.send(json.dumps({"exit": pid, "returncode": _returncode(status)}).encode())
                except OSError:
                    open_ = False
        if os.getppid() != parent:  # the parent is gone (kill -9): the workers notice theirs is too
            return 3
        if not ready:
            continue
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 64, 3)
        except OSError:
            msg, fds = b"", []
        if not msg:
            open_ = False  # the parent closed: wait for the workers it is closing, then end
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(sock, fds, me)
        for fd in fds:
            os.close(fd)
        children.add(pid)
        sock.send(json.dumps({"forked": pid}).encode())
    return 0


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
