"""Stage one as a pipeline: preparations and conversions share one worker pool.

A conversion needs the model and its input shapes, and a calibrating flag set (int8,
int16x8) also needs the representative data; none needs the reference outputs. Waiting
for every model's preparation before the first conversion (`Builder.prepare_all`, then
`convert_all`) leaves workers idle while one model's reference outputs are computed, so
here:

- every worker starts at once (TensorFlow's import, ~6 s) as soon as any job is known
  to be needed, and none starts when the cache holds everything;
- a model's preparation runs first (highest priority): it unblocks that model's
  calibrating conversions and the measurements of all its artifacts;
- conversions that do not calibrate are submitted at once, and the worker resolves the
  input shapes the way the preparation does; calibrating ones are submitted when their
  model's representative data exists;
- conversions run largest model first (`estimate`), so the last jobs in the
  pool are short and two workers do not end on one long conversion;
- of the flag sets that quantize from one shared calibration (the int8 family and budget
  searches, `pipeline/calibrate.py`), only the first goes to the pool while that
  calibration does not exist yet; the others are held until it ends. Submitted together,
  the second would take a worker only to wait on the calibration's file lock while other
  models' conversions stay queued; held, that worker takes them, and the held ones (a
  quantization each) follow. When the first fails, the next held one makes it;
- an artifact is handed on (`on_done`) only when its model's preparation is done, since
  measuring needs the evaluation inputs and reference outputs; when the preparation
  fails, every flag set of that model carries that failure (as in the staged order) and
  its queued conversions are cancelled.

Caching, failure classification and crash isolation are `Builder`'s, unchanged.
"""

from __future__ import annotations

import queue
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from harness.pipeline.artifacts import AS_GIVEN
from harness.pipeline.quantize import tflite_flag_sets

if TYPE_CHECKING:
    from harness.config import ModelSpec
    from harness.pipeline.artifacts import Artifact, Prepared  # noqa: F401
    from harness.pipeline.build import Builder

PREPARE_PRIORITY = 1e15  # above any conversion estimate (bytes on disk)


def estimate(m: ModelSpec) -> float:
    """A cheap guess of a model's conversion cost, to start the longest first: its size on
    disk (the bundled models convert in time roughly proportional to it: MobileNet's 2.3 MB
    take ~15 s per flag set, the 0.1-0.2 MB models 1-2 s)."""
    try:
        if m.path.is_dir():
            return float(sum(f.stat().st_size for f in m.path.rglob("*") if f.is_file()))
        return float(m.path.stat().st_size)
    except OSError:
        return 0.0


def calibration_of(job: dict) -> dict:
    """The timeline's note of the shared calibration a job quantizes from (its file name), if any."""
    return {"calibration_key": Path(job["calibration"]).stem} if job.get("calibration") else {}


def needs_workers(b: Builder) -> bool:
    """True when some preparation or conversion is missing from the cache (cheap: hashes and lookups)."""
    return missing_worker_jobs(b) > 0


def start_pool(pool, jobs: int) -> None:
    """Start POOL's workers (`WorkerPool.start`) for JOBS missing jobs: no more TensorFlow imports
    than there is work for; the pool adds workers if more jobs come."""
    pool.start(limit=jobs)


def missing_worker_jobs(b: Builder) -> int:
    """How many preparations and converter conversions the cache lacks: the converter workers
    worth starting early (quantizer flag sets run in light workers, without TensorFlow)."""
    missing = 0
    for m in b.campaign.models:
        if m.kind == "tflite" and m.original is None:
            continue
        missing += b.cache.reference_meta(b._reference_key(m)) is None
        if m.kind == "tflite":
            continue
        missing += sum(b.cache.conversion(b.conversion_key(m, fs)) is None
                       for fs in b.campaign.flag_sets if fs.needs_tensorflow_worker)
        if missing >= b.workers:
            break
    return missing


def run_pipeline(b: Builder, prepared: dict[str, Prepared], on_done: Callable[[Artifact], None]) -> list[Artifact]:
    """Prepare and convert every model, handing each artifact on as soon as it can be measured.

    PREPARED is filled as preparations finish (device threads read it). Returns the
    artifacts in campaign order.
    """
    flag_sets = b.campaign.flag_sets
    out: list[Artifact] = []
    held: dict[str, list[Artifact]] = defaultdict(list)  # done, but their model's preparation is not
    waiting: dict[str, list] = defaultdict(list)  # calibrating conversions waiting for representative data
    inflight: dict[str, list[Future]] = defaultdict(list)
    failed: set[str] = set()
    calibrating: dict[str, list] = {}  # calibration path being made -> conversions held until it exists
    finished: queue.SimpleQueue = queue.SimpleQueue()
    outstanding = 0

    def emit(art: Artifact) -> None:
        out.append(art)
        on_done(art)

    def note(event: str, op: str, m, fs, t: float | None = None, **more) -> None:
        b.timeline.append({"t": time.time() if t is None else t, "event": event, "op": op, "model": m.name,
                           "flag_set": fs.name if fs is not None else None, **more})

    def submit(op: str, m, fs, job: dict, priority: float, extra, p: Prepared | None = None) -> None:
        nonlocal outstanding
        fut = (b.submit_conversion(m, fs, job, extra[1], p, priority) if op == "convert"
               else b.pool().submit(job, priority=priority))
        note("submitted", op, m, fs, **calibration_of(job))
        inflight[m.name].append(fut)
        outstanding += 1
        fut.add_done_callback(lambda f: finished.put((op, m, fs, extra, f)))

    def submit_conversion(m, fs, key: str, p: Prepared | None) -> None:
        job, out_path = b._convert_job(m, fs, p)
        calibration = job.get("calibration")
        if calibration and not Path(calibration).is_file():
            if calibration in calibrating:  # another job is making it: wait for that one, not on its lock
                calibrating[calibration].append((m, fs, key, p))
                note("held", "convert", m, fs, **calibration_of(job))
                out_path.unlink(missing_ok=True)
                return
            calibrating[calibration] = []
        submit("convert", m, fs, job, estimate(m), (key, out_path, calibration), p)

    def calibration_done(calibration: str | None) -> None:
        """The job making CALIBRATION ended (made it, or failed): the held ones go to the pool."""
        for m, fs, key, p in calibrating.pop(calibration, None) or []:
            submit_conversion(m, fs, key, p)

    def prepare_done(m, p: Prepared) -> None:
        """M's preparation finished: release its waiting conversions and held artifacts, or fail its rows."""
        prepared[m.name] = p
        if p.ok:
            # a budget search last: it holds the calibration for its whole search, not one conversion
            for wfs, key in sorted(waiting.pop(m.name, []), key=lambda w: bool(w[0].budget)):
                submit_conversion(m, wfs, key, p)
            for art in held.pop(m.name, []):
                emit(art)
            return
        failed.add(m.name)
        for other in inflight[m.name]:
            other.cancel()  # only queued ones; a running conversion ends and is cached as usual
        held.pop(m.name, None)
        waiting.pop(m.name, None)
        for name in ([AS_GIVEN, *(f.name for f in tflite_flag_sets(b, m))] if m.kind == "tflite"
                     else [f.name for f in flag_sets]):
            emit(b.prepare_failed(m, name, p))

    # models whose preparation is another's (same reference key): they wait for that one's answer
    sharing: dict[str, list] = {}
    # Everything the cache already holds is handed on first (devices can start at once).
    jobs: list[tuple] = []
    for m in b.campaign.models:
        p = b.cached_prepared(m)
        if p is not None:
            prepared[m.name] = p
        if m.kind == "tflite":
            if p is not None:
                emit(b.tflite_artifact(m, p))
            else:
                held[m.name].append(b.tflite_artifact(m, None))  # its original's references come first
        for fs in (tflite_flag_sets(b, m) if m.kind == "tflite" else flag_sets):
            key = b.conversion_key(m, fs)
            art = b.cached_artifact(m, fs, key)
            if art is not None:
                (held[m.name].append if p is None else emit)(art)
            elif p is None and (fs.needs_representative_data or fs.budget):
                waiting[m.name].append((fs, key))
            else:
                jobs.append(("convert", m, fs, key, p))
        if p is None:
            jobs.append(("prepare", m, None, b._reference_key(m), None))
    if jobs:
        tf_jobs = sum(j[0] == "prepare" or j[2].needs_tensorflow_worker for j in jobs)
        tf_jobs += sum(fs.needs_tensorflow_worker for pending in waiting.values() for fs, _key in pending)
        pool = b.pool() if tf_jobs else None
        if hasattr(pool, "start"):  # not for the quantizer on a given .tflite: no TensorFlow there
            start_pool(pool, tf_jobs)
        # in priority order, so that a worker taking a job while the rest are still being queued
        # already takes the right one
        for op, m, fs, key, p in sorted(jobs, key=lambda j: (j[0] != "prepare", -estimate(j[1]),
                                                              bool(j[2] is not None and j[2].budget))):
            if op == "prepare":
                if key in sharing:  # a .tflite held to a model of this campaign: one preparation for both
                    sharing[key].append(m)
                    continue
                sharing[key] = []
                submit("prepare", m, None, b._prepare_job(m, key), PREPARE_PRIORITY + estimate(m), key)
            else:
                submit_conversion(m, fs, key, p)

    while outstanding:
        op, m, fs, extra, fut = finished.get()
        outstanding -= 1
        if fut.cancelled():  # the pool is closing (Ctrl-C) or the model failed: held jobs go nowhere
            note("cancelled", op, m, fs)
            if op == "convert":
                extra[1].unlink(missing_ok=True)
                calibrating.pop(extra[2], None)
                b.adopted(extra[0]).set()  # a quantizer flag set waiting for it converts fp32 itself
            continue
        answer = fut.result()
        note("started", op, m, fs, answer.started_at)
        made = {k: answer.data[k] for k in ("calibration", "calibration_wait_s") if k in answer.data}
        note("finished", op, m, fs, answer.finished_at, **made)
        if op == "prepare":
            for other in sharing.pop(extra, []):
                prepare_done(other, b._prepared_from_answer(other, extra, answer))
            prepare_done(m, b._prepared_from_answer(m, extra, answer))
            continue
        key, out_path, calibration = extra
        art = b._finish_conversion(m, fs, key, out_path, answer, prepared.get(m.name))
        if m.name in failed:
            continue  # this model's rows are its preparation's failure, already handed on
        calibration_done(calibration)
        (emit if m.name in prepared else held[m.name].append)(art)

    models = {m.name: i for i, m in enumerate(b.campaign.models)}
    columns = {fs.name: j for j, fs in enumerate(flag_sets)}
    return sorted(out, key=lambda a: (models[a.model.name], columns.get(a.flag_set, len(columns))))

