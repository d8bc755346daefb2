"""Conversions on a Ray cluster: the `WorkerPool` interface over Ray tasks.

`RayPool` submits each converter-worker job (reference outputs, conversion) as a Ray task
on any node with a free CPU and resolves a `Future[WorkerAnswer]` when it ends, so
`Builder` keeps its cache keys, classification, caching and schedule unchanged: the Ray
executor hands it `RayPools` as its `pool_factory` (composition, no subclass). The files a
task wrote come back as bytes and land where `Builder` expects them. A task lost with its
node is retried by Ray (`max_retries`); when retries run out the answer is `lost` ("node
lost"), which `Builder` neither caches nor classifies as the converter's fault.

Jobs outside the plan (diagnosis, the steps of a budget flag set's search) stay in the
builder's host pool: they read this host's calibration and are measured here.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from harness.convert.cache import hash_path
from harness.convert.pool import WorkerAnswer
from harness.executors.ray_tasks import pack, worker_job
from harness.pipeline.build import LOST_REASON, Builder

LOST = LOST_REASON  # error prefix of a job whose node (or worker) was lost


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def is_lost(exc: BaseException) -> bool:
    """A system failure (node, worker, object), not an exception raised by our task's code."""
    if isinstance(exc, RayTaskError):
        return isinstance(getattr(exc, "cause", None), RayError)
    return isinstance(exc, RayError)


class Shipper:
    """Files into the object store once, by content hash: {"key", "name", "dir", "ref": [ref]}."""

    def __init__(self):
        self._blobs: dict[tuple, dict] = {}
        self._hashes: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def blob(self, path: Path, key: str | None = None) -> dict:
        path = Path(path)
        st = path.stat()
        with self._lock:
            stamp = (str(path), st.st_mtime_ns, st.st_size)
            if key is None:
                key = self._hashes.get(stamp) or hash_path(path)
                self._hashes[stamp] = key
            ident = (key, path.name)
            if ident not in self._blobs:
                self._blobs[ident] = {"key": key, "name": path.name, "dir": path.is_dir(),
                                      "ref": [ray.put(pack(path))]}
            return self._blobs[ident]


class RayPool:
    """`WorkerPool`'s interface (submit -> Future[WorkerAnswer], close) over Ray tasks."""

    on_host = False  # its jobs run on the cluster's nodes, not where the builder's cache is

    def __init__(self, shipper: Shipper, timeout_s: float, cache_template: str | None):
        self.shipper = shipper
        self.timeout_s = timeout_s
        self.cache_template = cache_template
        self.lost_prepares: set[str] = set()
        self.nodes: list[str] = []  # where each conversion ran, in completion order
        self.fresh_workers = 0  # converter workers started (each pays TensorFlow's import)
        self._pending: dict = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._collect, name="ray-conversions", daemon=True)
        self._thread.start()

    def submit(self, job: dict, priority: float = 0.0) -> Future:
        """WorkerPool.submit's interface; Ray places tasks itself, so PRIORITY (a local pool's
        order) is not used."""
        m = job["model"]
        blobs = {f: self.shipper.blob(Path(m[f])) for f in ("path", "samples", "representative") if m.get(f)}
        if job.get("rep_path"):
            blobs["rep_path"] = self.shipper.blob(Path(job["rep_path"]))
        # the shared calibration lives in this host's cache (Builder gives none to a pool not `on_host`):
        # on a cluster each flag set converts standalone
        job = {**job, "timeout_s": self.timeout_s, "calibration": None}
        future: Future = Future()
        future.set_running_or_notify_cancel()
        ref = worker_job.remote(job, blobs, self.cache_template)
        with self._cond:
            self._pending[ref] = (future, job)
            self._cond.notify()
        return future

    def _collect(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                refs = list(self._pending)
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in ready:
                with self._cond:
                    item = self._pending.pop(ref, None)
                if item is not None:
                    item[0].set_result(self._answer(ref, item[1]))

    def _answer(self, ref, job: dict) -> WorkerAnswer:
        try:
            out = ray.get(ref)
        except TaskCancelledError:
            return WorkerAnswer(ok=False, lost=True, error=f"{LOST}: cancelled")
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            if not is_lost(exc):
                return WorkerAnswer(ok=False, error=one_line(getattr(exc, "cause", None) or exc))
            if job["op"] == "prepare":
                self.lost_prepares.add(job["model"]["name"])
            # lost: Builder does not cache it, and the row says --resume runs it again
            return WorkerAnswer(ok=False, lost=True, error=f"{LOST}: {one_line(exc)}")
        files = out.pop("files")
        if job["op"] == "convert" and "out.tflite" in files:
            Path(job["out_path"]).write_bytes(files["out.tflite"])
        elif job["op"] == "prepare" and files:
            folder = Path(job["out_dir"])
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
        self.nodes.append(out.pop("node_id"))
        self.fresh_workers += bool(out.get("fresh_worker"))
        return WorkerAnswer(ok=out["ok"], data=out["data"], error=out["error"], error_type=out["error_type"],
                            usage=out["usage"], signal=out["signal"], timed_out=out["timed_out"], log=out["log"])

    def close(self, kill: bool = False) -> None:
        with self._cond:
            self._closed = True
            refs = list(self._pending) if kill else []
            self._cond.notify_all()
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if not kill:
            self._thread.join()


class RayPools:
    """The Ray executor's pool factory (`Builder(pool_factory=RayPools(...))`): one `RayPool`
    per builder, kept so the run can say where its conversions ran."""

    def __init__(self, shipper: Shipper, cache_template: str | None):
        self.shipper = shipper
        self.cache_template = cache_template
        self.made: list[RayPool] = []

    def __call__(self, builder: Builder) -> RayPool:
        pool = RayPool(self.shipper, builder.campaign.settings.timeout_s, self.cache_template)
        self.made.append(pool)
        return pool

    @property
    def conversion_nodes(self) -> list[str]:
        """The Ray node of each finished conversion or preparation, in completion order."""
        return [n for pool in self.made for n in pool.nodes]

    @property
    def fresh_workers(self) -> int:
        """Converter workers started on the nodes (each paid TensorFlow's import)."""
        return sum(pool.fresh_workers for pool in self.made)
