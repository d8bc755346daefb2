"""The converter workers' fork server (harness/convert/forkserver.py), on light workers.

The protocol is the same with or without TensorFlow in the server; these run it without
(the light-worker switch), so they take a second, not a TensorFlow import each. That the
real pool forks its converter workers from one TensorFlow import, a crash included, is
tests/test_failures.py::test_converter_crash_is_classified.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from harness.convert import forkserver
from harness.convert.forkserver import ForkServer
from harness.convert.pool import WorkerPool
from harness.convert.worker import LIGHT_ENV

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="no fork on this platform")


@pytest.fixture
def server(tmp_path):
    s = ForkServer({**os.environ, LIGHT_ENV: "1"}, tmp_path / "server.log")
    assert s.wait_ready(60), (tmp_path / "server.log").read_text()
    yield s
    s.kill()


def _alive(pid: int) -> bool:
    """Running, or stopped; not gone and not a zombie."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_forked_worker_answers_jobs_in_its_own_session(server, tmp_path):
    with open(tmp_path / "w.log", "ab") as log:
        proc = server.fork(log)
    assert json.loads(proc.stdout.readline()) == {"ready": True, "pid": proc.pid}
    assert proc.pid != server.proc.pid and os.getsid(proc.pid) == proc.pid  # killpg reaches it alone
    proc.stdin.write(json.dumps({"id": 7, "op": "no-such-op"}) + "\n")
    answer = json.loads(proc.stdout.readline())
    assert answer["id"] == 7 and not answer["ok"] and answer["error_type"] == "KeyError"
    assert "=== job 7 no-such-op" in (tmp_path / "w.log").read_text()  # its stderr is the log it was given
    assert proc.poll() is None
    proc.stdin.close()  # stdin closed: the worker's loop ends, exit code 0
    assert proc.wait(10) == 0
    assert proc.stdout.readline() == ""


def test_a_worker_killed_by_a_signal_reports_it_as_popen_does(server, tmp_path):
    with open(tmp_path / "w.log", "ab") as log:
        first, second = server.fork(log), server.fork(log)
    for p in (first, second):
        p.stdout.readline()
    os.kill(first.pid, signal.SIGSEGV)
    assert first.wait(10) == -signal.SIGSEGV
    assert first.stdout.readline() == ""  # EOF: how the pool notices, before asking for the code
    assert second.poll() is None  # a crash kills one worker, not its siblings or the server
    second.stdin.write(json.dumps({"id": 1, "op": "no-such-op"}) + "\n")
    assert json.loads(second.stdout.readline())["id"] == 1


def test_the_pool_replaces_a_crashed_forked_worker_without_a_new_import(tmp_path):
    pool = WorkerPool(1, tmp_path, light=True, fork=True)
    try:
        assert not pool.submit({"op": "no-such-op"}).result(timeout=60).ok
        (worker,) = pool._workers
        os.kill(worker.proc.pid, signal.SIGSEGV)
        time.sleep(0.2)
        died = pool.submit({"op": "no-such-op"}).result(timeout=60)
        assert died.signal == signal.SIGSEGV and "code -11" in died.error
        answer = pool.submit({"op": "no-such-op"}).result(timeout=60)
        assert answer.error_type == "KeyError"  # a fresh fork took the next job
        assert pool.tensorflow_imports == 1 and pool.workers_started == 2
        (fresh,) = pool._workers
        assert fresh.proc.pid != worker.proc.pid
    finally:
        pool.close()
    server_pid = None if pool._server is None else pool._server.proc.pid
    assert server_pid is None  # closed: the server is gone with its workers
    assert not _alive(fresh.proc.pid)


def test_closing_the_pool_ends_the_server_and_every_worker(tmp_path):
    pool = WorkerPool(2, tmp_path, light=True, fork=True)
    futures = [pool.submit({"op": "no-such-op"}) for _ in range(4)]
    assert all(f.result(timeout=60).error_type == "KeyError" for f in futures)
    pids = [w.proc.pid for w in pool._workers]
    server = pool._server
    assert len(pids) == 2 and server is not None and pool.tensorflow_imports == 1
    pool.close(kill=True)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    assert server.proc.poll() is not None


def test_forking_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv(forkserver.DISABLE_ENV, "1")
    pool = WorkerPool(1, tmp_path, light=True, fork=True)
    try:
        assert pool.submit({"op": "no-such-op"}).result(timeout=60).error_type == "KeyError"
        assert pool._server is None and not (tmp_path / "fork-server.log").exists()
    finally:
        pool.close()
