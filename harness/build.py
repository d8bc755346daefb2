"""Stage one of a campaign: prepare models and convert them into artifacts.

Preparing a model computes its evaluation inputs, representative data and reference
outputs; converting applies each flag set. Both run in TensorFlow worker processes
(`convert/pool.py`) and are cached by content (`convert/cache.py`), so a warm run
starts no worker at all. Nothing here knows about devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import statuses
from harness.config import Campaign, ModelSpec
from harness.convert.cache import CACHE_FORMAT, Cache, hash_json, hash_path
from harness.convert.failures import classify
from harness.convert.flag_sets import FlagSet

AS_GIVEN = "as_given"  # the flag-set column of a .tflite measured without conversion


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
    """A converted .tflite (or the reasoned failure to make one) for one model and flag set."""

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


def model_payload(m: ModelSpec) -> dict:
    """A ModelSpec as plain JSON for the worker processes."""
    return {
        "name": m.name, "kind": m.kind, "path": str(m.path), "entry": m.entry, "signature": m.signature,
        "samples": str(m.samples) if m.samples else None,
        "representative": str(m.representative) if m.representative else None,
        "input_shapes": {k: list(v) for k, v in m.input_shapes.items()},
    }


class _NoEvents:
    def note(self, text: str) -> None: ...


class Builder:
    """Prepares and converts the campaign's models; owns the converter worker pool."""

    def __init__(self, campaign: Campaign, cache: Cache, versions: dict[str, str], out_dir: Path,
                 workers: int, events=None):
        self.campaign = campaign
        self.cache = cache
        self.versions = versions
        self.out_dir = out_dir
        self.workers = workers
        self.events = events or _NoEvents()
        self.conversions_performed = 0
        self.conversions_cached = 0
        self._pool = None
        self._model_hashes: dict[str, str] = {}

    @property
    def busy(self) -> bool:
        """True while converter workers exist (and may be using the CPU)."""
        return self._pool is not None

    def close(self, kill: bool = False) -> None:
        """Stop the worker processes (they hold ~600 MB each and must not share the CPU with measurements)."""
        if self._pool is not None:
            self._pool.close(kill=kill)
            self._pool = None

    # ------------------------------------------------------------------ helpers
    def _pool_get(self):
        if self._pool is None:
            from harness.convert.pool import WorkerPool

            self._pool = WorkerPool(self.workers, self.out_dir / "logs", self.campaign.settings.timeout_s)
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

    def prepare_all(self) -> dict[str, Prepared]:
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
                "op": "prepare", "model": model_payload(m), "eval_samples": s.eval_samples, "seed": s.seed,
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
    def convert_all(self, prepared: dict[str, Prepared], on_done: Callable[[Artifact], None]) -> list[Artifact]:
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
                    "op": "convert", "model": model_payload(m), "options": fs.converter_options(),
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
