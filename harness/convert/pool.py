"""Parent side of conversion: a pool of converter worker processes.

Each worker imports TensorFlow once and then converts job after job. A worker that dies
(a converter segfault) or hangs past the job's timeout is replaced, and only the job it
was doing fails. Workers start lazily, so a run whose conversions are all cached
never pays TensorFlow's import; a caller that knows work is coming calls `start()` to
begin every worker's import at once instead of one per submitted job.

Jobs carry a priority (highest first, then submission order): the builder puts the jobs
that unblock others (reference preparation) and the longest conversions first, so two
workers do not end on one long conversion while the other idles.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from harness.convert import forkserver
from harness.convert.forkserver import ForkServer, kill_group
from harness.convert.keras_export import EXPORTS_ENV

READY_TIMEOUT_S = 180.0


@dataclass
class WorkerAnswer:
    ok: bool
    data: dict = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    usage: bool = False  # the model or its data is wrong, not the converter
    signal: int | None = None
    timed_out: bool = False
    lost: bool = False  # the machine that ran it went away (an executor's node): not the model's fault, not cached
    log: str = ""
    started_at: float | None = None  # time.time() when a worker took the job (None: never ran here)
    finished_at: float | None = None


class WorkerDied(Exception):
    def __init__(self, returncode: int | None):
        super().__init__(f"worker exited with {returncode}")
        self.returncode = returncode


class _Worker:
    def __init__(self, log_path: Path, env: dict[str, str], server: ForkServer | None = None):
        """SERVER: fork the worker from it (TensorFlow already imported) instead of spawning one."""
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        self.forked = False
        if server is not None:
            try:
                self.proc = server.fork(self.log)
                self.forked = True
                return
            except OSError:  # the server ended (killed, out of memory): this worker imports for itself
                pass
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.convert.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Wait for TensorFlow's import; separate from __init__ so the pool can register (and
        kill, on Ctrl-C) a worker that is still importing."""
        self._read(READY_TIMEOUT_S)

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    raise WorkerDied(self.proc.wait())
                if line.strip():
                    return json.loads(line)
            elif self.proc.poll() is not None:
                raise WorkerDied(self.proc.returncode)

    def run(self, job: dict, timeout: float) -> dict:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerDied(self.proc.wait()) from None
        return self._read(timeout)

    def log_offset(self) -> int:
        self.log.flush()
        return self.log_path.stat().st_size

    def read_log(self, start: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def kill(self) -> None:
        kill_group(self.proc)
        self.log.close()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                pass
        self.kill()


class WorkerPool:
    """Runs worker jobs on up to `size` processes; `submit` returns a Future[WorkerAnswer]."""

    def __init__(self, size: int, log_dir: Path, timeout_s: float = 600.0, light: bool = False,
                 fork: bool | None = None):
        """LIGHT: workers that do not import TensorFlow, for the tools that need none (the quantizer).
        FORK: fork the workers from one server (`forkserver.py`); by default converter workers
        do where the platform can, light ones spawn (they have no import worth sharing)."""
        self.size = max(1, size)
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()  # (-priority, seq, job, future)
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._killed = False
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._unfinished = 0  # jobs submitted and not yet answered: a thread is added only for more than this
        self.workers_started = 0
        self.worker_imports: list[tuple[float, float]] = []  # (spawned, ready) per worker, time.time()
        root = str(Path(__file__).resolve().parents[2])
        # Keras models exported once for all workers (`keras_export.py`), removed at close.
        self.export_dir = tempfile.mkdtemp(prefix="tflite-harness-exports-")
        weakref.finalize(self, shutil.rmtree, self.export_dir, True)  # a pool never closed, or at exit
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
                     EXPORTS_ENV: self.export_dir}
        self._light = light
        self._log_name = "light-worker" if light else "worker"
        # converter workers fork from one TensorFlow import (`forkserver.py`); light ones spawn (no import to share)
        self._forks = (not light if fork is None else fork) and forkserver.available()
        self._server: ForkServer | None = None
        self._server_lock = threading.Lock()  # held while the server imports: the other workers wait for it
        self.tensorflow_imports = 0  # processes of this pool that imported TensorFlow (server, spawned workers)
        if light:
            self._env["TFLITE_HARNESS_LIGHT_WORKER"] = "1"  # worker.LIGHT_ENV

    def start(self, limit: int | None = None) -> None:
        """Start the workers now (each imports TensorFlow, ~6 s) rather than at their first job;
        at most LIMIT of them when the caller knows that fewer jobs are missing (one conversion
        needs one TensorFlow import, not `size`); `submit` adds the others if jobs come."""
        want = self.size if limit is None else min(self.size, max(1, limit))
        with self._lock:
            while len(self._threads) < want and not self._closed:
                self._add_thread(eager=True)

    def _add_thread(self, eager: bool) -> None:
        t = threading.Thread(target=self._loop, args=(len(self._threads), eager), daemon=True,
                             name=f"converter-{len(self._threads)}")
        self._threads.append(t)
        t.start()

    def submit(self, job: dict, priority: float = 0.0) -> Future:
        """Queue a job; higher `priority` runs first, equal priorities in submission order."""
        future: Future = Future()
        seq = next(self._ids)
        job = {**job, "id": seq}
        with self._lock:
            self._unfinished += 1
            # Only for a job no thread will take: one job submitted right after `start(limit=1)`
            # must wait for that worker's import, not start a second TensorFlow beside it.
            if self._unfinished > len(self._threads) and len(self._threads) < self.size and not self._closed:
                self._add_thread(eager=False)
        future.add_done_callback(self._answered)
        self._jobs.put((-priority, seq, job, future))
        return future

    def _answered(self, _future: Future) -> None:
        with self._lock:
            self._unfinished -= 1

    def _fork_server(self) -> ForkServer | None:
        """The running fork server, started at the first worker; None when workers spawn (light
        pools, no fork, or a server that could not start: then each worker imports TensorFlow)."""
        if not self._forks:
            return None
        with self._server_lock:
            if self._server is None and self._forks:
                server = ForkServer(self._env, self.log_dir / "fork-server.log")
                with self._lock:
                    self._server = server  # registered before its import: Ctrl-C kills it too
                    self.tensorflow_imports += 1
                    killed = self._killed
                if killed or not server.wait_ready():
                    server.kill()
                    with self._lock:
                        self._server, self._forks = None, False
            return self._server

    def _spawn(self, slot: int) -> _Worker:
        t0 = time.time()
        worker = _Worker(self.log_dir / f"{self._log_name}-{slot}.log", self._env, self._fork_server())
        with self._lock:
            self._workers.add(worker)
            self.tensorflow_imports += not (worker.forked or self._light)
            killed = self._killed
        try:
            if killed:
                raise WorkerDied(None)
            worker.wait_ready()
        except BaseException:
            self._retire(worker)
            raise
        with self._lock:
            self.workers_started += 1
            self.worker_imports.append((t0, time.time()))
        return worker

    def _loop(self, slot: int, eager: bool = False) -> None:
        worker: _Worker | None = None
        if eager:
            try:
                worker = self._spawn(slot)
            except Exception:  # noqa: BLE001 - the first job tries again and reports the failure
                worker = None
        while True:
            _, _, job, future = self._jobs.get()
            if job is None:
                break
            if not future.set_running_or_notify_cancel():
                continue
            started = time.time()
            try:
                if worker is None:
                    worker = self._spawn(slot)
                    started = time.time()
                start = worker.log_offset()
                try:
                    raw = worker.run(job, job.get("timeout_s", self.timeout_s))
                    answer = WorkerAnswer(
                        ok=raw.pop("ok"),
                        data=raw,
                        error=raw.get("error"),
                        error_type=raw.get("error_type"),
                        usage=bool(raw.get("usage")),
                    )
                    answer.log = worker.read_log(start)
                except WorkerDied as died:
                    log = worker.read_log(start)
                    rc = died.returncode
                    answer = WorkerAnswer(ok=False, error=f"worker exited with code {rc}",
                                          signal=-rc if rc is not None and rc < 0 else None, log=log)
                    self._retire(worker)
                    worker = None
                except TimeoutError:
                    log = worker.read_log(start)
                    self._retire(worker)
                    worker = None
                    answer = WorkerAnswer(ok=False, timed_out=True, log=log,
                                          error=f"no answer within {job.get('timeout_s', self.timeout_s):.0f} s")
                answer.started_at, answer.finished_at = started, time.time()
                future.set_result(answer)
            except Exception as exc:  # noqa: BLE001 - the pool must outlive any one job
                if worker is not None:
                    self._retire(worker)
                    worker = None
                future.set_result(WorkerAnswer(ok=False, error=f"{type(exc).__name__}: {exc}",
                                               started_at=started, finished_at=time.time()))
        if worker is not None:
            worker.close()
            with self._lock:
                self._workers.discard(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)

    def close(self, kill: bool = False) -> None:
        """Stop all workers; with kill=True do not wait for queued jobs (Ctrl-C)."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._killed = kill
            threads = list(self._threads)
        if kill:
            with self._lock:
                workers = list(self._workers)
                server = self._server
            for w in workers:
                w.kill()
            if server is not None:
                server.kill()
        # Stop markers sort after every queued job (a normal close finishes them) or, on kill,
        # before them (nothing more starts; the queued futures are cancelled below).
        rank = -math.inf if kill else math.inf
        for _ in threads:
            self._jobs.put((rank, next(self._ids), None, None))
        if kill:
            self._cancel_queued()
        for t in threads:
            t.join(timeout=None if not kill else 5)
        with self._lock:
            server, self._server = self._server, None
        if server is not None:  # after its workers: it reports their exits until they are gone
            server.kill() if kill else server.close()
        shutil.rmtree(self.export_dir, ignore_errors=True)

    def _cancel_queued(self) -> None:
        kept = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item[2] is None:
                kept.append(item)
            else:
                item[3].cancel()
        for item in kept:
            self._jobs.put(item)
