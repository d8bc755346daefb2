"""Stage one of a campaign: prepare models and convert them into artifacts.

Preparing a model computes its evaluation inputs, representative data and reference
outputs; converting applies each flag set. Both run in TensorFlow worker processes
(`convert/pool.py`), as one pipeline (`build`, `pipeline/schedule.py`), and are cached by
content (`convert/cache.py`), so a warm run starts no worker at all. Nothing here knows
about devices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import Campaign, ModelSpec, model_payload, reference_model
from harness.convert.cache import CACHE_FORMAT, Cache, hash_json, hash_path
from harness.convert.failures import classify
from harness.core import statuses
from harness.core.flag_sets import FlagSet
from harness.pipeline.artifacts import AS_GIVEN, Artifact, Prepared
from harness.pipeline.original import fit_to_tflite
from harness.pipeline.quantize import failure as quantize_failure
from harness.pipeline.quantize import start_quantize, tflite_flag_sets, tool_key

LOST_REASON = "node lost"  # how the reason of a job whose machine was lost starts


class _NoEvents:
    def note(self, text: str) -> None: ...  # noqa: E704


PoolFactory = Callable[["Builder"], Any]  # -> a pool: submit(job, priority) -> Future[WorkerAnswer], close(kill)


class Builder:
    """Prepares and converts the campaign's models; owns the converter worker pools.

    Two pools, both made lazily (a warm run starts none):
    - the campaign's pool (`pool()`): preparations and conversions. `pool_factory(builder)`
      makes it; without one it is a `WorkerPool` of `workers` processes on this host. An
      executor that runs them elsewhere passes its own (the Ray executor: `RayPools`). A pool
      whose jobs do not run on this host says so with `on_host = False`: its conversions
      then get no shared calibration (it lives in this host's cache) and convert standalone.
    - the host pool (`host_pool()`): jobs outside the plan (`submit`: diagnosis, the steps
      of a budget search). They read and write this host's cache (the calibration, the
      diagnosis) and their caller measures on this host, so they always run here; with no
      factory it is the campaign's pool.
    """

    def __init__(self, campaign: Campaign, cache: Cache, versions: dict[str, str], out_dir: Path,
                 workers: int, events=None, pool_factory: PoolFactory | None = None):
        self.campaign = campaign
        self.cache = cache
        self.versions = versions
        self.out_dir = out_dir
        self.workers = workers
        self.events = events or _NoEvents()
        self.pool_factory = pool_factory
        self.conversions_performed = 0
        self.conversions_cached = 0
        self._pool = None
        self._host_pool = None
        self._pools_lock = threading.RLock()  # budget searches ask for the host pool from their own threads
        self._model_hashes: dict[str, str] = {}
        self._reference_keys: dict[str, str] = {}
        self.timeline: list[dict] = []  # worker jobs: submitted / started / finished (time.time()), see `build`
        self.worker_imports: list[tuple[float, float]] = []  # (spawned, ready) of each converter worker
        self._adopted: dict[str, threading.Event] = {}  # conversion key -> set once its outcome is in the cache

    @property
    def busy(self) -> bool:
        """True while converter workers exist (and may be using the CPU)."""
        return self._pool is not None or self._host_pool is not None

    def close(self, kill: bool = False) -> None:
        """Stop the worker processes (they hold ~600 MB each and must not share the CPU with measurements)."""
        with self._pools_lock:
            pools = {id(p): p for p in (self._pool, self._host_pool) if p is not None}
        for pool in pools.values():
            pool.close(kill=kill)
            self.worker_imports += getattr(pool, "worker_imports", [])
        with self._pools_lock:  # only now: `busy` stays true until the workers are gone
            self._pool = self._host_pool = None
        if getattr(self, "quantize_state", None) is not None:  # the quantizer's light workers
            self.quantize_state.close(kill=kill)

    def pool(self):
        """The campaign's pool (preparations, conversions), made on first use."""
        with self._pools_lock:
            if self._pool is None:
                self._pool = self.pool_factory(self) if self.pool_factory is not None else self.host_pool()
            return self._pool

    def host_pool(self):
        """Converter workers on this host, made on first use (the campaign's pool when there is no factory)."""
        with self._pools_lock:
            if self._host_pool is None:
                from harness.convert.pool import WorkerPool

                self._host_pool = WorkerPool(self.workers, self.out_dir / "logs", self.campaign.settings.timeout_s)
            return self._host_pool

    @property
    def shares_calibration(self) -> bool:
        """Whether the campaign's conversions can use this host's shared calibration (their pool runs here)."""
        return getattr(self.pool(), "on_host", True)

    @property
    def pipelined(self) -> bool:
        """Whether `build` may run preparations and conversions as one pipeline. A subclass that
        customises the staged steps (`prepare_all`, `convert_all`) keeps the staged order, so
        its customisations still apply. Where the jobs run is the pool's business
        (`pool_factory`), not a subclass's."""
        return type(self).prepare_all is Builder.prepare_all and type(self).convert_all is Builder.convert_all

    def start_workers(self) -> bool:
        """Start the converter workers now (TensorFlow's import) if the cache lacks anything;
        called as early as possible so the import overlaps the rest of the set-up."""
        from harness.pipeline.schedule import missing_worker_jobs, start_pool

        missing = missing_worker_jobs(self) if self.pipelined else 0
        if not missing:
            return False
        pool = self.pool()
        if hasattr(pool, "start"):
            start_pool(pool, missing)
        return True

    def build(self, prepared: dict[str, Prepared], on_done: Callable[[Artifact], None]) -> list[Artifact]:
        """Prepare and convert every model; PREPARED fills in as preparations finish.

        Pipelined (`schedule.py`) unless a subclass customises the staged steps."""
        if not self.pipelined:
            prepared.update(self.prepare_all())
            return self.convert_all(prepared, on_done)
        from harness.pipeline.schedule import run_pipeline

        return run_pipeline(self, prepared, on_done)

    # ------------------------------------------------------------------ helpers
    def _model_hash(self, m: ModelSpec) -> str:
        key = str(m.path)
        if key not in self._model_hashes:
            self._model_hashes[key] = hash_path(m.path)
        return self._model_hashes[key]

    def _reference_key(self, m: ModelSpec) -> str:
        if m.name not in self._reference_keys:  # hashes the sample files: once per model, not per flag set
            self._reference_keys[m.name] = self._reference_key_uncached(m)
        return self._reference_keys[m.name]

    def _reference_key_uncached(self, m: ModelSpec) -> str:
        s = self.campaign.settings
        m = reference_model(m)  # a .tflite held to its original shares that original's references
        return hash_json({
            "format": CACHE_FORMAT, "model": self._model_hash(m), "entry": m.entry, "signature": m.signature,
            "samples": hash_path(m.samples) if m.samples else None,
            "representative": hash_path(m.representative) if m.representative else None,
            "eval_samples": s.eval_samples, "seed": s.seed,
            "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
            "tf": self.versions.get("tensorflow"), "keras": self.versions.get("keras"),
            **({"float_reference": True} if tflite_flag_sets(self, m) else {}),  # pipeline/quantize.py
        } | ({"trusted": True} if m.trusted else {}))  # a trusted model's results are its own

    def _conversion_key(self, m: ModelSpec, fs: FlagSet, ref_key: str) -> str:
        return hash_json({
            "format": CACHE_FORMAT, "model": self._model_hash(m), "entry": m.entry, "signature": m.signature,
            "flag_set": fs.converter_options(),
            "representative": ref_key if fs.needs_representative_data else None,
            "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
            "tf": self.versions.get("tensorflow"), "keras": self.versions.get("keras"), "tool": tool_key(fs),
        } | ({"trusted": True} if m.trusted else {}))  # a trusted model's results are its own

    # ------------------------------------------------------------------ int8 family and diagnosis
    def model_hash(self, m: ModelSpec) -> str: return self._model_hash(m)  # noqa: E704
    def reference_key(self, m: ModelSpec) -> str: return self._reference_key(m)  # noqa: E704

    def calibration_path(self, m: ModelSpec, fs: FlagSet) -> Path | None:
        """The shared calibration FS quantizes from (pipeline/calibrate.py), or None: standalone."""
        from harness.pipeline.calibrate import calibration_path

        return calibration_path(self, m, fs)

    def submit_conversion(self, m: ModelSpec, fs: FlagSet, job: dict, out_path: Path, p: Prepared | None,
                          priority: float = 0.0):
        """A conversion job, a quantizer flag set's steps (pipeline/quantize.py), or for a flag set
        with a budget its search (pipeline/budgeted.py)."""
        if fs.budget and p is not None:
            from harness.pipeline.budgeted import start_search

            return start_search(self, m, fs, p, out_path)
        if fs.quantizer:
            return start_quantize(self, m, fs, p, out_path)
        return self.pool().submit(job, priority=priority)

    def submit(self, job: dict, priority: float = 0.0):
        """A worker job outside the campaign's plan (diagnosis, search steps, fp32), on this host: Future[WorkerAnswer]."""
        return self.host_pool().submit(job, priority=priority)

    def _write_log(self, name: str, text: str) -> str:
        (path := self.out_dir / "logs" / name).parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    # ------------------------------------------------------------------ stage 1: prepare
    def _prepare_job(self, m: ModelSpec, key: str) -> dict:
        s = self.campaign.settings
        return {"op": "prepare", "model": model_payload(reference_model(m)), "eval_samples": s.eval_samples,
                "seed": s.seed,
                "out_dir": str(self.cache.reference_dir(key))}

    def _prepared_from_answer(self, m: ModelSpec, key: str, answer) -> Prepared:
        """Cache a finished preparation and describe it (or its failure, with its log kept)."""
        if answer.lost:  # its machine went away: nothing to say about the model, --resume runs it again
            return Prepared(m, False, f"{LOST_REASON} while computing reference outputs; --resume runs it again",
                            statuses.NODE_LOST)
        if answer.ok:
            meta = {**answer.data, "has_reference": True}
            meta.pop("id", None)
            self.cache.store_reference_meta(key, meta)
            return fit_to_tflite(m, Prepared(m, True, dir=self.cache.reference_dir(key), meta=meta))
        failure = classify(answer.error, answer.log, signal=answer.signal, timed_out=answer.timed_out)
        reason = answer.error if answer.usage else failure.reason
        log = self._write_log(f"{m.name}-prepare.log", answer.log)
        self.events.note(f"{m.name}: {reason} (log: {log})")
        category = (statuses.SAMPLE_DATA if answer.error_type == "SampleError"
                    else "load_error" if answer.usage else failure.category)
        return Prepared(m, False, reason or "loading the model failed", category)

    def cached_prepared(self, m: ModelSpec) -> Prepared | None:
        if m.kind == "tflite" and m.original is None:
            from harness.pipeline.prepare_tflite import prepare_tflite

            return prepare_tflite(self, m)
        key = self._reference_key(m)
        meta = self.cache.reference_meta(key)
        if meta is None:
            return None
        return fit_to_tflite(m, Prepared(m, True, dir=self.cache.reference_dir(key), meta=meta))

    def prepare_all(self) -> dict[str, Prepared]:
        """Every model's preparation, all finished before this returns (see `build` for the pipelined run)."""
        prepared: dict[str, Prepared] = {}
        futures = {}
        by_key: dict[str, object] = {}  # one preparation per reference key (a .tflite and its original share one)
        for m in self.campaign.models:
            p = self.cached_prepared(m)
            if p is not None:
                prepared[m.name] = p
                continue
            key = self._reference_key(m)
            if key not in by_key:
                by_key[key] = self.pool().submit(self._prepare_job(m, key))
            futures[m.name] = (m, key, by_key[key])
        for name, (m, key, fut) in futures.items():
            prepared[name] = self._prepared_from_answer(m, key, fut.result())
        return prepared

    # ------------------------------------------------------------------ stage 2: convert
    def convert_all(self, prepared: dict[str, Prepared], on_done: Callable[[Artifact], None]) -> list[Artifact]:
        artifacts: list[Artifact] = []
        pending = []
        for m in self.campaign.models:
            p = prepared[m.name]
            if m.kind == "tflite":  # itself, and the quantizer's flag sets on it
                artifacts.append(art := self.tflite_artifact(m, p))
                on_done(art)
            for fs in (tflite_flag_sets(self, m) if m.kind == "tflite" else self.campaign.flag_sets):
                if not p.ok:
                    art = self.prepare_failed(m, fs.name, p)
                    artifacts.append(art)
                    on_done(art)
                    continue
                key = self.conversion_key(m, fs)
                art = self.cached_artifact(m, fs, key)
                if art is not None:
                    artifacts.append(art)
                    on_done(art)
                    continue
                job, out_path = self._convert_job(m, fs, p)
                pending.append((m, fs, key, out_path, self.submit_conversion(m, fs, job, out_path, p), p))
        # converter jobs first: a quantizer flag set's steps wait for its model's fp32 conversion
        for m, fs, key, out_path, fut, p in sorted(pending, key=lambda job: not job[1].needs_tensorflow_worker):
            art = self._finish_conversion(m, fs, key, out_path, fut.result(), p)
            artifacts.append(art)
            on_done(art)
        return artifacts

    def _convert_job(self, m: ModelSpec, fs: FlagSet, p: Prepared | None) -> tuple[dict, Path]:
        """The worker job converting M under FS. Without P (its preparation is still running) the
        worker resolves the input shapes itself; flag sets that calibrate always wait for P."""
        assert p is not None or not fs.needs_representative_data
        rep_path = p.dir / "representative.npz" if p is not None and fs.needs_representative_data and p.dir else None
        out_path = self.cache.tmp_path(".tflite")
        # the int8 family calibrates once, in this host's cache: only for conversions that run here
        calibration = self.calibration_path(m, fs) if rep_path and self.shares_calibration else None
        return {
            "op": "convert", "model": model_payload(m), "options": fs.converter_options(),
            "calibration": str(calibration) if calibration else None,
            "rep_path": str(rep_path) if rep_path else None,
            "shapes": p.meta.input_shapes if p is not None else None, "out_path": str(out_path),
        }, out_path

    def adopted(self, key: str) -> threading.Event:
        """Set once conversion KEY's outcome is adopted into the cache: a quantizer flag set waits
        for the campaign's own fp32 conversion instead of converting it a second time."""
        with self._pools_lock:
            return self._adopted.setdefault(key, threading.Event())

    def _finish_conversion(self, m: ModelSpec, fs: FlagSet, key: str, out_path: Path, answer,
                           p: Prepared | None) -> Artifact:
        try:
            return self._adopt_conversion(m, fs, key, out_path, answer, p)
        finally:
            self.adopted(key).set()

    def _adopt_conversion(self, m: ModelSpec, fs: FlagSet, key: str, out_path: Path, answer,
                          p: Prepared | None) -> Artifact:
        """Adopt and cache a worker's conversion, or turn its failure into a reasoned artifact."""
        self.conversions_performed += 1
        if answer.ok and out_path.is_file() and out_path.stat().st_size > 0:
            sha, path = self.cache.adopt_artifact(out_path)
            meta = {
                "artifact": sha, "size_bytes": answer.data["size_bytes"], "convert_s": answer.data["convert_s"],
                "tf_version": answer.data["tf_version"], "ops": self._ops(path),
                **{k: answer.data[k] for k in ("tool_version", "quantized_ops") if k in answer.data},
                "representative": p.meta.representative_source if fs.needs_representative_data else "none",
                **{k: answer.data[k] for k in ("diagnosis", "calibration") if k in answer.data},  # budget, int8 family
                "conversion_path": answer.data.get("conversion_path"), "notes": answer.data.get("notes", []),
            }
            self.cache.store_conversion(key, meta)
            return self._artifact_from_meta(m, fs.name, meta, converted=True)
        out_path.unlink(missing_ok=True)
        if answer.lost:  # not cached: a lost node says nothing about the model
            return Artifact(m, fs.name, False, status=statuses.CONVERSION_FAILED,
                            reason=f"{answer.error or LOST_REASON}; --resume runs it again"[:400],
                            failure_category=statuses.NODE_LOST, converted=True, meta={"error": answer.error})
        failure = classify(answer.error, answer.log, signal=answer.signal, timed_out=answer.timed_out,
                           flag_set=fs.name)
        log = self._write_log(f"{m.name}-{fs.name}-convert.log", answer.log or answer.error or "")
        status = statuses.TIMEOUT if answer.timed_out else statuses.CONVERSION_FAILED
        reason, category = failure.reason, failure.category
        if answer.error_type == "SampleError":  # the sample data, found before the converter was asked
            status, reason, category = statuses.INPUT_ERROR, answer.error or reason, statuses.SAMPLE_DATA
        status, reason, category = quantize_failure(answer) or (status, reason, category)
        art = Artifact(m, fs.name, False, status=status, reason=reason,
                       failure_category=category, log=log, converted=True,
                       meta={"error": answer.error})
        if not answer.timed_out and not answer.usage:
            # The same model, flags and versions fail the same way: do not pay for it again. Not a
            # usage error (bad model or sample data): the key does not cover the data, and fixing it
            # must not meet a cached failure.
            self.cache.store_conversion(key, {
                "artifact": None, "status": status, "reason": reason,
                "failure_category": category, "error": answer.error, "log": log,
            })
        return art

    def tflite_artifact(self, m: ModelSpec, p: Prepared | None) -> Artifact:
        """A .tflite given as the model is its own (only) artifact (P None: its original's
        preparation is still running, and the artifact waits for it)."""
        if p is None or p.ok:
            return Artifact(m, AS_GIVEN, True, hash_path(m.path), m.path, {"size_bytes": m.path.stat().st_size})
        return Artifact(m, AS_GIVEN, False, status=statuses.for_category(p.failure_category, statuses.RUNTIME_FAILED),
                        reason=p.reason, failure_category=p.failure_category)

    def cached_artifact(self, m: ModelSpec, fs: FlagSet, key: str) -> Artifact | None:
        """The conversion's cached outcome (artifact or failure), counted as such; None: convert it."""
        cached = self.cache.conversion(key)
        if cached is None:
            return None
        self.conversions_cached += 1
        return (self._artifact_from_meta(m, fs.name, cached, converted=False) if cached.get("artifact")
                else self._failed_from_meta(m, fs.name, cached))

    @staticmethod
    def prepare_failed(m: ModelSpec, flag_set: str, p: Prepared) -> Artifact:
        """Every flag set of a model whose preparation failed carries that failure."""
        return Artifact(m, flag_set, False, status=statuses.for_category(p.failure_category, statuses.CONVERSION_FAILED),
                        reason=p.reason, failure_category=p.failure_category)

    def conversion_key(self, m: ModelSpec, fs: FlagSet) -> str: return self._conversion_key(m, fs, self._reference_key(m))  # noqa: E704

    @staticmethod
    def _ops(path: Path) -> list[str]:
        try:
            from harness.tflite.file import read_tflite

            return sorted({op.name for op in read_tflite(path).operators})
        except Exception:  # noqa: BLE001 - op listing is informative only
            return []

    @staticmethod
    def _failed_from_meta(m: ModelSpec, flag_set: str, meta: dict) -> Artifact:
        return Artifact(m, flag_set, False, status=meta["status"], reason=meta["reason"],
                        failure_category=meta.get("failure_category"), log=meta.get("log"),
                        meta={"error": meta.get("error")})

    def _artifact_from_meta(self, m: ModelSpec, flag_set: str, meta: dict, converted: bool) -> Artifact:
        return Artifact(m, flag_set, True, meta["artifact"], self.cache.artifact_path(meta["artifact"]), meta,
                        converted=converted)
