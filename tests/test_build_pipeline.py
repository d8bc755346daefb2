"""The pipelined build (harness/pipeline/schedule.py) with a fake worker pool: no TensorFlow.

The fake pool answers jobs on its own threads in priority order, like `WorkerPool`, and
logs what it did, so the tests assert orderings (what was handed on before what), never
durations. It reaches the builder the way every executor's pool does, through
`Builder(pool_factory=...)`. Its conversions with a shared calibration take the real file
lock (`convert/calibration.py: calibrated_model`), so a worker that would wait on it does.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from harness.config import Campaign, ModelSpec, Settings
from harness.convert.cache import Cache
from harness.convert.calibration import calibrated_model
from harness.convert.pool import WorkerAnswer
from harness.core.flag_sets import resolve_flag_sets
from harness.pipeline.build import Builder
from harness.pipeline.timeline import lock_waits

GATE_S = 20.0  # only a guard against hanging: a staged build would wait this long, then fail the order checks


class FakePool:
    """`WorkerPool`'s interface; `prepare` of a model in `blocked` waits for `gate`."""

    def __init__(self, size: int, gate: threading.Event, blocked: set[str], failing: set[str],
                 calibrate=None):
        self.calibrate = calibrate or (lambda name: b"calibrated " + name.encode())  # model name -> bytes
        self.jobs: queue.PriorityQueue = queue.PriorityQueue()
        self.seq = itertools.count()
        self.gate, self.blocked, self.failing = gate, blocked, failing
        self.log: list[tuple[str, str, str]] = []  # (event, op, model)
        self.submitted: list[dict] = []
        self.started = False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(size)]
        for t in self.threads:
            t.start()

    def start(self, limit: int | None = None) -> None:  # as WorkerPool.start
        self.started = True

    def submit(self, job: dict, priority: float = 0.0) -> Future:
        fut: Future = Future()
        with self.lock:
            self.submitted.append(job)
        self.jobs.put((-priority, next(self.seq), job, fut))
        return fut

    def _record(self, event: str, job: dict) -> None:
        with self.lock:
            self.log.append((event, job["op"], job["model"]["name"]))

    def _loop(self) -> None:
        while True:
            _, _, job, fut = self.jobs.get()
            if job is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            self._record("start", job)
            started = time.time()
            name = job["model"]["name"]
            if job["op"] == "prepare":
                if name in self.blocked:
                    self.gate.wait(GATE_S)
                if name in self.failing:
                    answer = WorkerAnswer(ok=False, error="bad samples", usage=True)
                else:
                    answer = WorkerAnswer(ok=True, data={
                        "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}], "output_names": ["y"],
                        "eval_source": "samples", "representative_source": "samples", "eval_count": 4,
                        "has_labels": False})
            else:
                data = {"size_bytes": 20, "convert_s": 0.1, "tf_version": "fake"}
                if job.get("calibration"):  # as convert/diagnose.py: convert_calibrated does
                    _blob, made, waited = calibrated_model(Path(job["calibration"]), lambda name=name: self.calibrate(name))
                    data.update(calibration="made" if made else "reused", calibration_wait_s=waited)
                Path(job["out_path"]).write_bytes(b"fake tflite " + name.encode() + str(job["options"]).encode())
                answer = WorkerAnswer(ok=True, data=data)
            answer.started_at, answer.finished_at = started, time.time()
            self._record("done", job)
            fut.set_result(answer)

    def close(self, kill: bool = False) -> None:
        for _ in self.threads:
            self.jobs.put((float("inf"), next(self.seq), None, None))


def make_builder(tmp_path: Path, models: dict[str, int], pool_factory, flag_sets=("fp32", "int8")) -> Builder:
    specs = []
    for name, size in models.items():
        path = tmp_path / f"{name}.keras"
        path.write_bytes(name.encode() * size)
        specs.append(ModelSpec(name=name, kind="keras", path=path))
    fs = resolve_flag_sets(list(flag_sets), {})
    campaign = Campaign(name="t", models=tuple(specs), flag_sets=tuple(fs), devices=("local",), settings=Settings())
    return Builder(campaign, Cache(tmp_path / "cache"), {"tensorflow": "x"}, tmp_path / "out", 2,
                   pool_factory=lambda builder: pool_factory())


def test_a_models_artifacts_are_handed_on_while_another_model_is_still_preparing(tmp_path):
    gate = threading.Event()
    pools: list[FakePool] = []

    def factory():
        pools.append(FakePool(2, gate, blocked={"slow"}, failing=set()))
        return pools[-1]

    b = make_builder(tmp_path, {"slow": 2000, "fast": 10}, factory)
    handed: list[tuple[str, str, bool]] = []  # (model, flag set, slow's preparation done at that moment)
    prepared: dict = {}

    def on_done(art):
        handed.append((art.model.name, art.flag_set, "slow" in prepared))
        if (art.model.name, art.flag_set) == ("fast", "fp32"):
            gate.set()
        assert art.model.name in prepared and prepared[art.model.name].ok  # measurable when handed on

    arts = b.build(prepared, on_done)
    pool = pools[0]
    assert pool.started  # every worker starts at once
    assert [(a.model.name, a.flag_set) for a in arts] == [("slow", "fp32"), ("slow", "int8"),
                                                          ("fast", "fp32"), ("fast", "int8")]
    assert all(a.ok and a.converted for a in arts)
    # the pipelining itself: fast's artifact reached the devices before slow's references were done
    assert ("fast", "fp32", False) in handed
    assert pool.log.index(("done", "convert", "fast")) < pool.log.index(("done", "prepare", "slow"))
    # slow's artifacts waited for slow's preparation
    assert all(done for m, _, done in handed if m == "slow")
    # calibrating conversions are submitted only once their representative data exists; the others
    # at once, without shapes (the worker resolves them)
    t = b.timeline
    for model in ("slow", "fast"):
        prep_done = next(i for i, e in enumerate(t) if e["event"] == "finished" and e["op"] == "prepare"
                         and e["model"] == model)
        int8_sub = next(i for i, e in enumerate(t) if e["event"] == "submitted" and e["flag_set"] == "int8"
                        and e["model"] == model)
        fp32_sub = next(i for i, e in enumerate(t) if e["event"] == "submitted" and e["flag_set"] == "fp32"
                        and e["model"] == model)
        assert fp32_sub < prep_done < int8_sub
    jobs = {(j["op"], j["model"]["name"], j.get("rep_path") is not None): j for j in pool.submitted}
    assert jobs[("convert", "slow", False)]["shapes"] is None
    assert jobs[("convert", "slow", True)]["shapes"] == [[1, 4]]


def test_preparations_first_then_the_largest_model(tmp_path):
    """One worker, nothing blocked: the pool's order is preparations, then the big model's conversions."""
    gate = threading.Event()
    gate.set()
    pools: list[FakePool] = []

    def factory():
        pools.append(FakePool(1, gate, blocked=set(), failing=set()))
        return pools[-1]

    b = make_builder(tmp_path, {"small": 10, "big": 5000}, factory, flag_sets=("fp32", "float16"))
    b.build({}, lambda a: None)
    starts = [(op, model) for ev, op, model in pools[0].log if ev == "start"]
    assert starts == [("prepare", "big"), ("prepare", "small"), ("convert", "big"), ("convert", "big"),
                      ("convert", "small"), ("convert", "small")]


def test_failed_preparation_fails_every_flag_set_of_that_model_only(tmp_path):
    gate = threading.Event()
    gate.set()

    def factory():
        return FakePool(2, gate, blocked=set(), failing={"broken"})

    b = make_builder(tmp_path, {"broken": 100, "good": 10}, factory)
    handed = []
    arts = b.build({}, handed.append)
    rows = {(a.model.name, a.flag_set): a for a in arts}
    for fs in ("fp32", "int8"):
        assert rows[("broken", fs)].status == "conversion_failed"
        assert rows[("broken", fs)].reason == "bad samples"
        assert rows[("good", fs)].ok
    assert len(handed) == 4  # one row per model and flag set, never two


def test_warm_build_starts_no_worker(tmp_path):
    gate = threading.Event()
    gate.set()
    made = []

    def factory():
        made.append(FakePool(2, gate, blocked=set(), failing=set()))
        return made[-1]

    make_builder(tmp_path, {"m": 10}, factory).build({}, lambda a: None)
    assert len(made) == 1
    again = make_builder(tmp_path, {"m": 10}, factory)
    assert not again.start_workers()
    arts = again.build({}, lambda a: None)
    assert len(made) == 1  # the cache held everything: no pool, so no TensorFlow import
    assert all(a.ok and not a.converted for a in arts) and again.conversions_cached == 2


def test_a_second_int8_family_job_waits_for_the_calibration_in_the_queue_not_on_its_lock(tmp_path):
    """Two workers. Big's int8 calibrates until small's conversions are all done; big's other
    family flag sets outrank small's jobs in the queue. Submitted at once, the second worker
    would take big/int8_float_io and sit on the calibration's lock, small's jobs would stay
    queued, and the calibration would end only at GATE_S. Held back until the calibration
    exists, the second worker converts small meanwhile, and no job waited on the lock."""
    gate = threading.Event()
    gate.set()
    small_done = threading.Event()
    pools: list[FakePool] = []

    def calibrate(name: str) -> bytes:
        if name == "big":
            small_done.wait(GATE_S)
        return b"calibrated " + name.encode()

    def factory():
        pools.append(FakePool(2, gate, blocked=set(), failing=set(), calibrate=calibrate))
        return pools[-1]

    flag_sets = ("int8", "int8_float_io", "int16x8", "fp32")
    b = make_builder(tmp_path, {"big": 5000, "small": 10}, factory, flag_sets=flag_sets)

    def on_done(art):
        small = [a for a in done if a.model.name == "small"]
        if art.model.name == "small" and len(small) == len(flag_sets) - 1:  # this one is the last
            small_done.set()
        done.append(art)

    done: list = []
    arts = b.build({}, on_done)
    assert all(a.ok for a in arts) and len(arts) == 2 * len(flag_sets)
    # from the timeline (what the run writes to logs/build-timeline.json)
    t = b.timeline
    assert lock_waits(t) == []
    made = {e["flag_set"] for e in t if e["event"] == "finished" and e.get("calibration") == "made"
            and e["model"] == "big"}
    assert len(made) == 1
    maker_done = next(e["t"] for e in t if e["event"] == "finished" and e["model"] == "big"
                      and e["flag_set"] in made)
    # small was converted while big calibrated (the calibration ended only after small's last job)
    small = [e["t"] for e in t if e["event"] == "finished" and e["op"] == "convert" and e["model"] == "small"]
    assert small_done.is_set() and len(small) == len(flag_sets) and max(small) <= maker_done
    held = [e for e in t if e["event"] == "held" and e["model"] == "big"]
    assert {e["flag_set"] for e in held} == set(flag_sets[:3]) - made  # the other two family members
    for e in held:  # submitted to the pool only once the calibration existed
        submitted = next(x["t"] for x in t if x["event"] == "submitted" and x["model"] == "big"
                         and x["flag_set"] == e["flag_set"])
        assert submitted >= maker_done
    assert all(e.get("calibration") == "reused" and e["calibration_wait_s"] < GATE_S / 2 for e in t
               if e["event"] == "finished" and e["model"] == "big" and e["flag_set"] in {x["flag_set"] for x in held})


def test_lock_waits_finds_a_worker_that_sat_on_the_lock():
    """The timeline reader itself, on a recorded shape of the old schedule (no hold): big's
    int8_float_io started while int8 calibrated, with small's fp32 queued meanwhile."""
    def ev(event, t, fs, model="big", **kw):
        return {"t": t, "event": event, "op": "convert", "model": model, "flag_set": fs, **kw}

    events = [ev("submitted", 0, "int8", calibration_key="k"), ev("submitted", 0, "int8_float_io", calibration_key="k"),
              ev("submitted", 0, "fp32", model="small"),
              ev("started", 1, "int8"), ev("started", 1, "int8_float_io"),
              ev("finished", 9, "int8", calibration="made"), ev("finished", 10, "int8_float_io", calibration="reused"),
              ev("started", 9, "fp32", model="small"), ev("finished", 11, "fp32", model="small")]
    (w,) = lock_waits(events)
    assert (w.model, w.flag_set, w.blocked_s, w.ready) == ("big", "int8_float_io", 8, 1)
    # an older timeline without calibration keys: the family is told by flag set
    bare = [{k: v for k, v in e.items() if k not in ("calibration_key", "calibration")} for e in events]
    assert lock_waits(bare) == []
    assert [x.flag_set for x in lock_waits(bare, family={"int8", "int8_float_io"})] == ["int8_float_io"]


def test_a_pool_started_for_one_missing_job_starts_one_worker(tmp_path):
    """Each converter worker imports TensorFlow (~6 s of CPU): a run that lacks one conversion
    starts one, not `workers` (light workers here: the same pool code, no TensorFlow)."""
    from harness.convert.pool import WorkerPool

    pool = WorkerPool(2, tmp_path, light=True)
    try:
        pool.start(limit=1)
        deadline = time.monotonic() + 60
        while pool.workers_started < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.workers_started == 1
        pool.start(limit=5)  # never more than the pool's size
        deadline = time.monotonic() + 60
        while pool.workers_started < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.workers_started == 2
    finally:
        pool.close(kill=True)


def test_a_job_submitted_after_start_waits_for_that_worker_instead_of_starting_another(tmp_path):
    """A run whose conversions are cached but whose references are not (another --eval-samples)
    has one job: it must not start a second worker (a second TensorFlow import) beside the
    first one's. Two jobs at once still get two workers."""
    from harness.convert.pool import WorkerPool

    pool = WorkerPool(2, tmp_path, light=True)
    try:
        pool.start(limit=1)
        answer = pool.submit({"op": "no-such-op"}).result(timeout=120)  # a cheap job: answered with an error
        assert not answer.ok and pool.workers_started == 1
        both = [pool.submit({"op": "no-such-op"}) for _ in range(2)]
        assert all(not f.result(timeout=120).ok for f in both)
        assert pool.workers_started == 2
    finally:
        pool.close(kill=True)


def test_reference_arrays_are_replaced_whole_or_not_at_all(tmp_path):
    """Runs that share a cache (CI jobs, the suite's parallel workers) may compute the same
    reference at once: a write that fails half-way keeps the file that was there, and no
    temporary file is left behind."""
    import numpy as np

    from harness.convert.cache import savez_atomic

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("the worker died mid-write")

    path = tmp_path / "eval.npz"
    savez_atomic(path, **{"0": np.arange(4.0)})
    with pytest.raises(RuntimeError):
        savez_atomic(path, **{"0": np.ones(3), "1": Unsaveable()})
    with np.load(path) as kept:
        assert kept["0"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.npz"]
