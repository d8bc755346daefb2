"""Preparing a `.tflite` given as the model: its inputs come from the file itself.

There is no original to compare to (unless the campaign holds it to one, which the
converter workers prepare), so no worker and no TensorFlow: the flatbuffer's input
tensors give names, shapes and types, and evaluation inputs come from the sample file or
the seed. Cached under the model's reference key like any preparation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.convert.cache import savez_atomic
from harness.core import statuses
from harness.pipeline.artifacts import Prepared
from harness.pipeline.original import missing_io
from harness.pipeline.quantize import float_reference, tflite_flag_sets

if TYPE_CHECKING:
    from harness.config import ModelSpec
    from harness.pipeline.build import Builder


def prepare_tflite(b: Builder, m: ModelSpec) -> Prepared:
    """An existing .tflite: inputs come from the file itself; there is no original to compare to."""
    from harness.core.samples import (
        SampleError,
        check_fit,
        drop_batch_axis,
        load_arrays,
        random_inputs,
        resolve_shapes,
    )
    from harness.tflite.file import TFLiteFormatError, read_tflite

    try:  # verified before anything hashes it: a damaged or 4 GiB file is refused at once
        info = read_tflite(m.path)
    except (TFLiteFormatError, OSError) as exc:
        return Prepared(m, False, str(exc), "load_error")
    key = b.reference_key(m)
    folder = b.cache.reference_dir(key)
    meta = b.cache.reference_meta(key)
    if meta is not None:
        return Prepared(m, True, dir=folder, meta=meta)
    if (empty := missing_io(info, m.path)) is not None:
        return Prepared(m, False, empty, "load_error")
    names = [t.name for t in info.inputs]
    sig_names = None
    if len(info.signatures) == 1:
        by_index = {idx: name for name, idx in info.signatures[0].inputs.items()}
        sig_names = [by_index.get(t.index, t.name) for t in info.inputs]
    names = sig_names or names
    s = b.campaign.settings
    try:
        samples = labels = None
        notes: list[str] = []
        sig = [tuple(d if d != -1 else None for d in (t.shape_signature or t.shape)) for t in info.inputs]
        if m.samples:
            samples, labels = load_arrays(m.samples, names)
            samples, notes = drop_batch_axis(names, sig, samples)
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
        return Prepared(m, False, str(exc), statuses.SAMPLE_DATA)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {str(i): a for i, a in enumerate(arrays)}
    if labels is not None:
        payload["labels"] = labels
    savez_atomic(folder / "eval.npz", **payload)
    has_reference = bool(tflite_flag_sets(b, m)) and float_reference(m, folder, arrays)  # the quantizer's
    meta = {
        "inputs": [{"name": n, "shape": list(sh), "dtype": d} for n, sh, d in zip(names, shapes, float_types, strict=True)],
        "output_names": [t.name for t in info.outputs], "eval_source": source, "representative_source": None,
        "eval_count": len(arrays[0]), "has_labels": labels is not None, "has_reference": has_reference,
        "notes": notes,
    }
    b.cache.store_reference_meta(key, meta)
    return Prepared(m, True, dir=folder, meta=meta)
