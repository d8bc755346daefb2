"""Config -> plan -> execution.

Conversions (and reference outputs) run first, in TensorFlow worker processes in
parallel; then, with the workers gone, each artifact is measured on each device in a
fresh process, one at a time, so no measurement shares the CPU with a conversion.
Every job ends as a result row committed to the store the moment it exists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import statuses
from harness.config import Campaign, ModelSpec
from harness.convert.cache import CACHE_FORMAT, Cache, hash_json, hash_path
from harness.convert.failures import classify
from harness.convert.flag_sets import FlagSet
from harness.devices.base import MeasureJob
from harness.devices.registry import open_device
from harness.measure import FAR_COSINE, align_outputs, compute_drift, health_problems, latency_stats
from harness.result import Result
from harness.store import Store, new_run_id

AS_GIVEN = "as_given"  # the flag-set column of a .tflite measured without conversion


@dataclass
class RunOptions:
    out_root: Path = Path("results")
    out_dir: Path | None = None
    store_path: Path | None = None
    cache_dir: Path | None = None
    workers: int = max(1, os.cpu_count() or 1)
    debug: bool = False
    run_id: str | None = None


@dataclass
class Prepared:
    """A model ready to measure: its evaluation inputs, reference outputs and input specs."""

    model: ModelSpec
    ok: bool
    reason: str = ""
    failure_category: str | None = None
    dir: Path | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Artifact:
    model: ModelSpec
    flag_set: str
    ok: bool
    sha: str | None = None
    path: Path | None = None
    meta: dict = field(default_factory=dict)
    converted: bool = False
    status: str = statuses.OK
    reason: str = ""
    failure_category: str | None = None
    log: str | None = None


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    results: list[Result]
    conversions_performed: int
    conversions_cached: int
    store_path: Path
    interrupted: bool = False


class Events:
    """What the runner reports while it works; the CLI draws a progress bar from it."""

    def planned(self, conversions: int, measurements: int) -> None: ...
    def converted(self, artifact: Artifact) -> None: ...
    def measuring(self, label: str) -> None: ...
    def measured(self, result: Result) -> None: ...
    def note(self, text: str) -> None: ...


def _model_payload(m: ModelSpec) -> dict:
    return {
        "name": m.name, "kind": m.kind, "path": str(m.path), "entry": m.entry, "signature": m.signature,
        "samples": str(m.samples) if m.samples else None,
        "representative": str(m.representative) if m.representative else None,
        "input_shapes": {k: list(v) for k, v in m.input_shapes.items()},
    }


def tool_versions() -> dict[str, str]:
    """Versions that decide conversion output, read without importing TensorFlow."""
    from importlib.metadata import PackageNotFoundError, version

    import harness

    out = {"tflite-harness": harness.__version__}
    for dist in ("tensorflow", "tensorflow-cpu", "ai-edge-litert", "keras", "numpy"):
        try:
            out[dist.replace("-cpu", "")] = version(dist)
        except PackageNotFoundError:
            continue
    return out


class CampaignRun:
    def __init__(self, campaign: Campaign, options: RunOptions, events: Events | None = None):
        self.campaign = campaign
        self.options = options
        self.events = events or Events()
        self.run_id = options.run_id or new_run_id()
        self.out_dir = options.out_dir or options.out_root / self.run_id
        self.store_path = options.store_path or options.out_root / "harness.sqlite"
        self.cache = Cache(options.cache_dir or options.out_root / "cache")
        self.versions = tool_versions()
        self.conversions_performed = 0
        self.conversions_cached = 0
        self._pool = None
        self._model_hashes: dict[str, str] = {}

    # ------------------------------------------------------------------ helpers
    def _pool_get(self):
        if self._pool is None:
            from harness.convert.pool import WorkerPool

            self._pool = WorkerPool(self.options.workers, self.out_dir / "logs", self.campaign.settings.timeout_s)
        return self._pool

    def _model_hash(self, m: ModelSpec) -> str:
        if m.name not in self._model_hashes:
            self._model_hashes[m.name] = hash_path(m.path)
        return self._model_hashes[m.name]

    def _reference_key(self, m: ModelSpec) -> str:
        s = self.campaign.settings
        return hash_json({
            "format": CACHE_FORMAT, "model": self._model_hash(m), "entry": m.entry, "signature": m.signature,
            "samples": hash_path(m.samples) if m.samples else None,
            "representative": hash_path(m.representative) if m.representative else None,
            "eval_samples": s.eval_samples, "seed": s.seed,
            "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
            "tf": self.versions.get("tensorflow"), "keras": self.versions.get("keras"),
        })

    def _conversion_key(self, m: ModelSpec, fs: FlagSet, ref_key: str) -> str:
        return hash_json({
            "format": CACHE_FORMAT, "model": self._model_hash(m), "entry": m.entry, "signature": m.signature,
            "flag_set": fs.converter_options(),
            "representative": ref_key if fs.needs_representative_data else None,
            "shapes": {k: list(v) for k, v in sorted(m.input_shapes.items())},
            "tf": self.versions.get("tensorflow"), "keras": self.versions.get("keras"),
        })

    def _write_log(self, name: str, text: str) -> str:
        path = self.out_dir / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    # ------------------------------------------------------------------ stage 1: prepare
    def _prepare_tflite(self, m: ModelSpec) -> Prepared:
        """An existing .tflite: inputs come from the file itself; there is no original to compare to."""
        from harness.samples import (
            SampleError,
            check_fit,
            load_arrays,
            random_inputs,
            resolve_shapes,
        )
        from harness.tflite_file import TFLiteFormatError, read_tflite

        key = self._reference_key(m)
        folder = self.cache.reference_dir(key)
        meta = self.cache.reference_meta(key)
        if meta is not None:
            return Prepared(m, True, dir=folder, meta=meta)
        try:
            info = read_tflite(m.path)
        except (TFLiteFormatError, OSError) as exc:
            return Prepared(m, False, str(exc), "load_error")
        names = [t.name for t in info.inputs]
        sig_names = None
        if len(info.signatures) == 1:
            by_index = {idx: name for name, idx in info.signatures[0].inputs.items()}
            sig_names = [by_index.get(t.index, t.name) for t in info.inputs]
        names = sig_names or names
        s = self.campaign.settings
        try:
            samples = labels = None
            if m.samples:
                samples, labels = load_arrays(m.samples, names)
            sig = [tuple(d if d != -1 else None for d in (t.shape_signature or t.shape)) for t in info.inputs]
            shapes = resolve_shapes(names, sig, m.input_shapes, samples, m.name)
            # Quantized inputs take float samples (the runner quantizes them).
            float_types = ["float32" if t.quantization else t.dtype for t in info.inputs]
            if samples is not None:
                arrays = [a[: s.eval_samples] for a in check_fit(str(m.samples), samples, names, shapes, float_types)]
                labels = labels[: s.eval_samples] if labels is not None else None
                source = "samples"
            else:
                arrays = random_inputs(names, shapes, float_types, s.eval_samples, s.seed, m.name)
                source = "random"
        except SampleError as exc:
            return Prepared(m, False, str(exc), "sample_data")
        folder.mkdir(parents=True, exist_ok=True)
        payload = {str(i): a for i, a in enumerate(arrays)}
        if labels is not None:
            payload["labels"] = labels
        np.savez(folder / "eval.npz", **payload)
        meta = {
            "inputs": [{"name": n, "shape": list(sh), "dtype": d} for n, sh, d in zip(names, shapes, float_types, strict=True)],
            "output_names": [t.name for t in info.outputs], "eval_source": source, "representative_source": None,
            "eval_count": len(arrays[0]), "has_labels": labels is not None, "has_reference": False,
        }
        self.cache.store_reference_meta(key, meta)
        return Prepared(m, True, dir=folder, meta=meta)

    def _prepare_all(self) -> dict[str, Prepared]:
        prepared: dict[str, Prepared] = {}
        futures = {}
        for m in self.campaign.models:
            if m.kind == "tflite":
                prepared[m.name] = self._prepare_tflite(m)
                continue
            key = self._reference_key(m)
            meta = self.cache.reference_meta(key)
            if meta is not None:
                prepared[m.name] = Prepared(m, True, dir=self.cache.reference_dir(key), meta=meta)
                continue
            s = self.campaign.settings
            futures[m.name] = (key, self._pool_get().submit({
                "op": "prepare", "model": _model_payload(m), "eval_samples": s.eval_samples, "seed": s.seed,
                "out_dir": str(self.cache.reference_dir(key)),
            }))
        for name, (key, fut) in futures.items():
            m = next(x for x in self.campaign.models if x.name == name)
            answer = fut.result()
            if answer.ok:
                meta = {**answer.data, "has_reference": True}
                meta.pop("id", None)
                self.cache.store_reference_meta(key, meta)
                prepared[name] = Prepared(m, True, dir=self.cache.reference_dir(key), meta=meta)
            else:
                failure = classify(answer.error, answer.log, signal=answer.signal, timed_out=answer.timed_out)
                reason = answer.error if answer.usage else failure.reason
                log = self._write_log(f"{name}-prepare.log", answer.log)
                prepared[name] = Prepared(m, False, reason or "loading the model failed",
                                          "load_error" if answer.usage else failure.category)
                self.events.note(f"{name}: {reason} (log: {log})")
        return prepared

    # ------------------------------------------------------------------ stage 2: convert
    def _convert_all(self, prepared: dict[str, Prepared], on_done: Callable[[Artifact], None]) -> list[Artifact]:
        artifacts: list[Artifact] = []
        pending = []
        for m in self.campaign.models:
            p = prepared[m.name]
            if m.kind == "tflite":
                if p.ok:
                    sha = hash_path(m.path)
                    art = Artifact(m, AS_GIVEN, True, sha, m.path, {"size_bytes": m.path.stat().st_size})
                else:
                    art = Artifact(m, AS_GIVEN, False, status=statuses.RUNTIME_FAILED, reason=p.reason,
                                   failure_category=p.failure_category)
                artifacts.append(art)
                on_done(art)
                continue
            for fs in self.campaign.flag_sets:
                if not p.ok:
                    art = Artifact(m, fs.name, False, status=statuses.CONVERSION_FAILED, reason=p.reason,
                                   failure_category=p.failure_category)
                    artifacts.append(art)
                    on_done(art)
                    continue
                ref_key = self._reference_key(m)
                key = self._conversion_key(m, fs, ref_key)
                cached = self.cache.conversion(key)
                if cached is not None:
                    self.conversions_cached += 1
                    art = (self._artifact_from_meta(m, fs.name, cached, converted=False) if cached.get("artifact")
                           else self._failed_from_meta(m, fs.name, cached))
                    artifacts.append(art)
                    on_done(art)
                    continue
                rep_path = p.dir / "representative.npz" if fs.needs_representative_data and p.dir else None
                out_path = self.cache.tmp_path(".tflite")
                fut = self._pool_get().submit({
                    "op": "convert", "model": _model_payload(m), "options": fs.converter_options(),
                    "rep_path": str(rep_path) if rep_path else None,
                    "shapes": [i["shape"] for i in p.meta["inputs"]], "out_path": str(out_path),
                })
                pending.append((m, fs, key, out_path, fut, p))
        for m, fs, key, out_path, fut, p in pending:
            answer = fut.result()
            self.conversions_performed += 1
            if answer.ok and out_path.is_file() and out_path.stat().st_size > 0:
                sha, path = self.cache.adopt_artifact(out_path)
                meta = {
                    "artifact": sha, "size_bytes": answer.data["size_bytes"], "convert_s": answer.data["convert_s"],
                    "tf_version": answer.data["tf_version"], "ops": self._ops(path),
                    "representative": p.meta.get("representative_source") if fs.needs_representative_data else "none",
                }
                self.cache.store_conversion(key, meta)
                art = self._artifact_from_meta(m, fs.name, meta, converted=True)
            else:
                out_path.unlink(missing_ok=True)
                failure = classify(answer.error, answer.log, signal=answer.signal, timed_out=answer.timed_out,
                                   flag_set=fs.name)
                log = self._write_log(f"{m.name}-{fs.name}-convert.log", answer.log or answer.error or "")
                status = statuses.TIMEOUT if answer.timed_out else statuses.CONVERSION_FAILED
                art = Artifact(m, fs.name, False, status=status, reason=failure.reason,
                               failure_category=failure.category, log=log, converted=True,
                               meta={"error": answer.error})
                if not answer.timed_out:
                    # The same model, flags and versions fail the same way: do not pay for it again.
                    self.cache.store_conversion(key, {
                        "artifact": None, "status": status, "reason": failure.reason,
                        "failure_category": failure.category, "error": answer.error, "log": log,
                    })
            artifacts.append(art)
            on_done(art)
        return artifacts

    @staticmethod
    def _ops(path: Path) -> list[str]:
        try:
            from harness.tflite_file import read_tflite

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

    # ------------------------------------------------------------------ stage 3: measure
    def _plan_index(self, art: Artifact, device: str, threads: int) -> int:
        models = [m.name for m in self.campaign.models]
        flag_sets = [fs.name for fs in self.campaign.flag_sets] + [AS_GIVEN]
        devices = list(self.campaign.devices)
        s = self.campaign.settings
        idx = models.index(art.model.name)
        idx = idx * len(flag_sets) + flag_sets.index(art.flag_set)
        idx = idx * max(1, len(devices)) + (devices.index(device) if device in devices else 0)
        return idx * len(s.threads) + (s.threads.index(threads) if threads in s.threads else 0)

    def _base_result(self, art: Artifact, device: str, threads: int, runner: str = "python") -> Result:
        return Result(
            plan_index=self._plan_index(art, device, threads),
            model=art.model.name, flag_set=art.flag_set, device=device, threads=threads,
            xnnpack=self.campaign.settings.xnnpack, runner=runner, status=art.status, reason=art.reason,
            artifact=art.sha, artifact_path=str(art.path) if art.path else None,
            size_bytes=art.meta.get("size_bytes"), convert_s=art.meta.get("convert_s"), converted=art.converted,
            failure_category=art.failure_category, ops=art.meta.get("ops", []),
            representative=art.meta.get("representative"), tool_versions=self.versions, log=art.log,
        )

    def _measure(self, art: Artifact, prepared: Prepared, device, threads: int) -> Result:
        s = self.campaign.settings
        result = self._base_result(art, device.name, threads, device.runner)
        result.eval_source = prepared.meta.get("eval_source")
        result.device_info = device.info()
        result.started_at = time.time()
        job = MeasureJob(
            artifact=art.path, artifact_sha=art.sha, inputs_npz=prepared.dir / "eval.npz",
            input_names=[i["name"] for i in prepared.meta["inputs"]], threads=threads, xnnpack=s.xnnpack,
            warmup_runs=s.warmup_runs, runs=s.runs, min_seconds=s.min_seconds, max_seconds=s.max_seconds,
            timeout_s=s.timeout_s,
        )
        m = device.measure(job)
        result.finished_at = time.time()
        raw = m.raw
        result.runtime = raw.get("runtime")
        result.runtime_version = raw.get("runtime_version")
        if m.status != statuses.OK:
            result.status, result.reason = m.status, m.reason
            if m.status == statuses.UNSUPPORTED:
                flex = [o for o in result.ops if o.startswith("Flex")]
                custom = [o for o in result.ops if o not in flex and not o.isupper()]
                if flex:
                    result.reason = (f"Flex ops {', '.join(flex)} need the Flex delegate, which this runtime lacks; "
                                     "run it with a Flex-enabled benchmark_model build")
                elif custom:
                    result.reason = f"custom ops {', '.join(custom)} have no registered kernel here"
            return result
        result.init_us = raw.get("init_us")
        result.first_us = raw.get("first_us")
        warm = raw.get("warmup_us") or []
        result.warmup_us = float(np.mean(warm)) if warm else None
        result.samples_us = [round(x, 3) for x in raw.get("samples_us", [])]
        stats = latency_stats(result.samples_us)
        result.latency_us = stats.to_dict() if stats else None
        if raw.get("peak_rss_delta_kb") is not None:
            result.peak_rss_mb = raw["peak_rss_delta_kb"] / 1024.0
        self._judge_outputs(result, m.outputs, m.output_names, prepared)
        return result

    def _judge_outputs(self, result: Result, outputs: list, names: list[str], prepared: Prepared) -> None:
        """Health first, then drift against the original model's outputs."""
        reference = labels = None
        if prepared.meta.get("has_reference"):
            with np.load(prepared.dir / "reference.npz", allow_pickle=False) as data:
                reference = [data[str(k)] for k in range(len(data.files))]
        with np.load(prepared.dir / "eval.npz", allow_pickle=False) as data:
            labels = data["labels"] if "labels" in data.files else None
        ref_names = prepared.meta.get("output_names", [])
        if reference is not None:
            outputs = align_outputs(ref_names, names, outputs)
        problems = health_problems(outputs, names, reference)
        drift = None
        if reference is not None:
            try:
                drift = compute_drift(reference, outputs, labels)
            except ValueError as exc:
                problems.append(str(exc))
        elif labels is not None and outputs:
            from harness.measure import is_classifier_like, unique_argmax

            if is_classifier_like(outputs[0]):
                acc = float((unique_argmax(outputs[0].reshape(len(outputs[0]), -1)) == labels).mean())
                result.drift = {"accuracy": acc, "samples": int(len(labels))}
        if drift is not None:
            result.drift = drift.to_dict()
            if drift.cosine < FAR_COSINE and not problems:
                problems.append(f"outputs are far from the original (cosine {drift.cosine:.2f})")
        if problems:
            result.status = statuses.UNHEALTHY
            result.reason = "; ".join(problems)
        else:
            result.status = statuses.OK
            result.reason = "" if reference is not None else "no original model: drift not measured"

    # ------------------------------------------------------------------ run
    def execute(self, resume_keys: set | None = None) -> RunSummary:
        s = self.campaign.settings
        self.out_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.store_path)
        if resume_keys is None:
            store.start_run(
                self.run_id, campaign=self.campaign.name,
                campaign_path=str(self.campaign.path) if self.campaign.path else None,
                tool_versions=self.versions, config=campaign_config(self.campaign), out_dir=str(self.out_dir),
            )
        devices = [open_device(name) for name in self.campaign.devices]
        n_conv = sum(len(self.campaign.flag_sets) if m.kind != "tflite" else 1 for m in self.campaign.models)
        self.events.planned(n_conv, n_conv * len(devices) * len(s.threads))
        results: list[Result] = []
        done_keys = resume_keys or set()
        interrupted = False
        jsonl = (self.out_dir / "results.jsonl").open("a", encoding="utf-8")

        def record(result: Result) -> None:
            store.add_result(self.run_id, result)
            jsonl.write(json.dumps(result.to_dict()) + "\n")
            jsonl.flush()
            results.append(result)
            self.events.measured(result)

        try:
            prepared = self._prepare_all()
            failed_now: list[Artifact] = []

            def converted(art: Artifact) -> None:
                self.events.converted(art)
                if not art.ok:
                    failed_now.append(art)

            artifacts = self._convert_all(prepared, converted)
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            for art in failed_now:
                for device in devices:
                    for t in s.threads:
                        r = self._base_result(art, device.name, t, device.runner)
                        if r.key not in done_keys:
                            record(r)
            for art in artifacts:
                if not art.ok:
                    continue
                for device in devices:
                    for t in s.threads:
                        key = (art.model.name, art.flag_set, device.name, t, s.xnnpack)
                        if key in done_keys:
                            continue
                        self.events.measuring(f"{art.model.name}/{art.flag_set} on {device.name}, {t} thread(s)")
                        record(self._measure(art, prepared[art.model.name], device, t))
                        if s.cooldown_s:
                            time.sleep(s.cooldown_s)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if self._pool is not None:
                self._pool.close(kill=True)
            jsonl.close()
            for d in devices:
                d.close()
            store.finish_run(self.run_id, "interrupted" if interrupted else "done")
            all_results = store.results(self.run_id)
            store.close()
        from harness.report.export import write_exports

        write_exports(self.out_dir, all_results, baseline="fp32")
        return RunSummary(self.run_id, self.out_dir, all_results, self.conversions_performed,
                          self.conversions_cached, self.store_path, interrupted)


def campaign_config(c: Campaign) -> dict:
    from dataclasses import asdict

    return {
        "name": c.name,
        "models": [_model_payload(m) for m in c.models],
        "flag_sets": {fs.name: fs.options for fs in c.flag_sets},
        "devices": list(c.devices),
        "settings": asdict(c.settings),
    }
