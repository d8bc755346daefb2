"""The node side of the ray executor: Ray tasks that convert and measure.

Conversions run the usual converter worker (`harness/convert/worker.py`) in a child
process through a `WorkerPool` of size one, so a converter segfault fails only its job,
never the Ray worker. The pool is kept per Ray worker process while conversions keep
coming and closed after `POOL_IDLE_S` idle seconds (it holds ~600 MB of TensorFlow).

Inputs travel by content hash through Ray's object store: models, representative data,
evaluation inputs, reference outputs and .tflite artifacts. A task writes what it needs
into the node's cache (`node_cache`), keyed by hash, only when it is missing there; refs
are passed inside lists so Ray does not fetch bytes a node already has.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import ray

from harness.core import statuses

POOL_IDLE_S = 20.0
NODE_CACHE_ENV = "TFLITE_HARNESS_NODE_CACHE"


def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def node_cache(template: str | None) -> Path:
    """The node's cache: `template`, else $TFLITE_HARNESS_NODE_CACHE, else a temp folder;
    `{node}` expands to the first 12 hex digits of the Ray node id."""
    base = template or os.environ.get(NODE_CACHE_ENV) or str(Path(tempfile.gettempdir()) / "tflite-harness-node")
    path = Path(base.replace("{node}", node_id()[:12])).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------- blobs by hash
def pack(path: Path) -> bytes:
    """A file's bytes, or a directory as an uncompressed tar."""
    if path.is_dir():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(path, arcname=".")
        return buf.getvalue()
    return path.read_bytes()


def materialize(cache: Path, blob: dict) -> Path:
    """`blob` = {"key": content hash, "name": file name, "dir": bool, "ref": [ObjectRef]}
    -> its path in the node cache, fetched from the object store only when missing."""
    dest = cache / "blobs" / blob["key"] / blob["name"]
    if dest.exists():
        return dest
    data = ray.get(blob["ref"][0])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".part-"))
    try:
        if blob["dir"]:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
                tar.extractall(tmp / "d", filter="data")
            staged = tmp / "d"
        else:
            staged = tmp / "f"
            staged.write_bytes(data)
        try:
            os.replace(staged, dest)
        except OSError:  # another task on this node won the race
            if not dest.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------- conversion
_pool = None
_pool_lock = threading.Lock()
_pool_busy = 0
_pool_last = 0.0


def _reaper() -> None:
    global _pool
    while True:
        time.sleep(2.0)
        with _pool_lock:
            if _pool is not None and _pool_busy == 0 and time.monotonic() - _pool_last > POOL_IDLE_S:
                _pool.close()
                _pool = None


def _acquire_pool(cache: Path, timeout_s: float):
    """(the pool, whether it is new: a new one pays TensorFlow's import on its first job)"""
    global _pool, _pool_busy
    from harness.convert.pool import WorkerPool

    with _pool_lock:
        fresh = _pool is None
        if fresh:
            if not any(t.name == "tflite-harness-pool-reaper" for t in threading.enumerate()):
                threading.Thread(target=_reaper, name="tflite-harness-pool-reaper", daemon=True).start()
            _pool = WorkerPool(1, cache / "logs", timeout_s)
        _pool_busy += 1
        return _pool, fresh


def _release_pool() -> None:
    global _pool_busy, _pool_last
    with _pool_lock:
        _pool_busy -= 1
        _pool_last = time.monotonic()


@ray.remote(num_cpus=1, max_retries=2)
def worker_job(job: dict, blobs: dict, cache_template: str | None) -> dict:
    """One converter-worker job (`prepare` or `convert`) on this node; returns the answer
    and the files it wrote (reference folder or .tflite) as bytes."""
    cache = node_cache(cache_template)
    job = dict(job)
    model = dict(job["model"])
    for field in ("path", "samples", "representative"):
        if blobs.get(field):
            model[field] = str(materialize(cache, blobs[field]))
    job["model"] = model
    if blobs.get("rep_path"):
        job["rep_path"] = str(materialize(cache, blobs["rep_path"]))
    (cache / "tmp").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache / "tmp"))
    try:
        if job["op"] == "convert":
            job["out_path"] = str(tmp / "out.tflite")
        elif job["op"] == "prepare":
            job["out_dir"] = str(tmp / "prepared")
        pool, fresh = _acquire_pool(cache, float(job.get("timeout_s", 600.0)))
        try:
            answer = pool.submit(job).result()
        finally:
            _release_pool()
        files: dict[str, bytes] = {}
        if job["op"] == "convert":
            out = tmp / "out.tflite"
            if out.is_file():
                files["out.tflite"] = out.read_bytes()
        elif job["op"] == "prepare" and (tmp / "prepared").is_dir():
            files = {p.name: p.read_bytes() for p in (tmp / "prepared").iterdir() if p.is_file()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"ok": answer.ok, "data": answer.data, "error": answer.error, "error_type": answer.error_type,
            "usage": answer.usage, "signal": answer.signal, "timed_out": answer.timed_out, "log": answer.log,
            "files": files, "node_id": node_id(), "fresh_worker": fresh, "pid": os.getpid()}


# ---------------------------------------------------------------------------- measurement
@ray.remote(num_cpus=0, max_retries=1)
def measure_job(device_name: str, art, prepared, threads: int, settings, base: dict, blobs: dict,
                cache_template: str | None) -> dict:
    """Measure one artifact on a device attached to this node (placed by the device's
    resource); the row is filled here exactly as the local executor fills it."""
    from harness.core.result import Result
    from harness.devices.registry import open_device
    from harness.pipeline.evaluate import measure_on

    cache = node_cache(cache_template)
    here = node_id()
    art = replace(art, path=materialize(cache, blobs["artifact"]))
    folder = cache / "prepared" / blobs["prepared_key"]
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs["prepared"].items():
        link = folder / name
        if not link.exists():
            shutil.copyfile(materialize(cache, blob), link)
    prepared = replace(prepared, dir=folder)
    result = Result.from_dict(base)
    outputs: list = []
    runner_log = None  # benchmark_model's command line and output, kept by the driver in logs/
    device = None
    try:
        device = open_device(device_name)
        result, m = measure_on(device, art, prepared, threads, settings, result)
        if m is not None and m.outputs and result.status in (statuses.OK, statuses.UNHEALTHY):
            outputs = m.outputs
        if m is not None and m.report is not None and (m.report.raw_output or m.report.scripts):
            runner_log = {"runtime": m.report.runtime, "command": list(m.report.command),
                          "raw_output": m.report.raw_output, "scripts": list(m.report.scripts)}
    except Exception as exc:  # noqa: BLE001 - one failing job must not stop the device
        from harness.core.errors import HarnessError
        from harness.devices.adb.transport import TransportError

        lost = isinstance(exc, (HarnessError, TransportError, OSError))
        result.status = statuses.DEVICE_LOST if lost else statuses.RUNTIME_FAILED
        result.reason = f"{'' if lost else type(exc).__name__ + ': '}{' '.join(str(exc).split())}"[:400]
    finally:
        if device is not None:
            try:
                device.close()
            except Exception:  # noqa: BLE001
                pass
    ctx = ray.get_runtime_context()
    result.device_info = {**result.device_info, "ray_node_id": here,
                          "ray_node_ip": ray.util.get_node_ip_address(),
                          "ray_worker_pid": os.getpid(), "ray_job": str(ctx.get_job_id())}
    from harness.core.version import __version__

    return {"result": result.to_dict(), "outputs": outputs, "node_id": here, "harness": __version__,
            "runner_log": runner_log}
