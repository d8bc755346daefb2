"""Converter worker: a child process that imports TensorFlow and takes jobs over a pipe.

Jobs arrive as JSON lines on stdin; answers leave as JSON lines on a private copy of
the original stdout, while fd 1 is pointed at stderr so that TensorFlow's chatter
cannot corrupt the protocol. The parent owns crash handling: if this process dies
(the converter can segfault), the job it was doing becomes a failed result and a
fresh worker takes the next one.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_LAST_MODEL: list = []  # [(key, LoadedModel)]: the model of this worker's previous job


def _model(job: dict):
    """The job's model, reused from the previous job when it was the same file.

    The scheduler runs one model's jobs back to back (largest model first), and loading
    took 1-2.5 s of a ~15 s MobileNet conversion; converting a reused model gives the same
    bytes as a fresh load (checked for fp32 and int8). Only the last model is kept, so a
    worker's memory does not grow with the campaign."""
    from harness.convert.sources import load_model

    m = job["model"]
    path = Path(m["path"])
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    key = (m["kind"], str(path), m.get("entry"), m.get("signature", "serving_default"), stamp)
    if _LAST_MODEL and _LAST_MODEL[0][0] == key and stamp is not None:
        return _LAST_MODEL[0][1]
    _LAST_MODEL.clear()  # let the previous model go before loading the next
    model = load_model(m["kind"], path, m.get("entry"), m.get("signature", "serving_default"), m.get("trusted", False))
    _LAST_MODEL.append((key, model))
    return model


def _input_specs(m: dict, model, notes: list[str] | None = None) -> tuple[list[str], list[str], list[tuple], list | None, object]:
    """(names, dtypes, resolved shapes, samples, labels) of a loaded model.

    Shared by `prepare` and by a `convert` job submitted before its model's preparation
    finished (shapes None), so both arrive at the same shapes. What was read differently
    from the file (samples that kept their batch-1 axis) is appended to NOTES."""
    from harness.core.samples import drop_batch_axis, load_arrays, resolve_shapes

    names = [s.name for s in model.inputs]
    dtypes = [s.dtype for s in model.inputs]
    samples = labels = None
    if m.get("samples"):
        samples, labels = load_arrays(Path(m["samples"]), names)
        samples, read_as = drop_batch_axis(names, [s.shape for s in model.inputs], samples)
        if notes is not None:
            notes.extend(read_as)
    shapes = resolve_shapes(
        names, [s.shape for s in model.inputs], {k: tuple(v) for k, v in m.get("input_shapes", {}).items()},
        samples, m["name"],
    )
    return names, dtypes, shapes, samples, labels


def job_inputs(job: dict, model) -> tuple[list[tuple], list | None, list[str] | None]:
    """(input shapes, representative arrays or None, feed names or None) of a conversion job."""
    import numpy as np

    shapes = [tuple(s) for s in (job.get("shapes") or _input_specs(job["model"], model)[2])]
    rep = None
    if job.get("rep_path"):
        with np.load(job["rep_path"], allow_pickle=False) as data:
            rep = [data[str(i)].astype(s.dtype) for i, s in enumerate(model.inputs)]
    return shapes, rep, [s.name for s in model.inputs]  # apply_options decides whether to feed by name


def prepare(job: dict) -> dict:
    """Input specs, evaluation inputs, representative data and reference outputs of one model."""
    import numpy as np

    from harness.core.samples import (
        check_fit,
        check_sample_shapes,
        drop_batch_axis,
        load_arrays,
        random_inputs,
    )

    t_job = time.perf_counter()
    m = job["model"]
    label = m["name"]
    model = _model(job)
    notes: list[str] = list(getattr(model, "notes", []))
    names, dtypes, shapes, samples, labels = _input_specs(m, model, notes)
    n_eval = int(job["eval_samples"])
    if samples is not None:
        samples = check_fit(f"{label}: {m['samples']}", samples, names, shapes, dtypes)
        eval_inputs = [a[:n_eval] for a in samples]
        labels = labels[:n_eval] if labels is not None else None
        eval_source = "samples"
    else:
        eval_inputs = random_inputs(names, shapes, dtypes, n_eval, job["seed"], label)
        eval_source = "random"
    if m.get("representative"):
        rep, _ = load_arrays(Path(m["representative"]), names)
        rep, read_as = drop_batch_axis(names, [s.shape for s in model.inputs], rep, "representative samples")
        notes.extend(read_as)
        # calibration data must fit as the samples do: the converter would fail on it with a
        # message naming neither the file nor the input
        check_sample_shapes(names, [s.shape for s in model.inputs], shapes, rep, label,
                            what=f"representative samples ({Path(m['representative']).name})")
        rep = check_fit(f"{label}: {m['representative']}", rep, names, shapes, dtypes)
        rep_source = "samples"
    elif samples is not None:
        rep, rep_source = samples, "samples"
    else:
        rep = random_inputs(names, shapes, dtypes, 100, job["seed"] + 1, label)
        rep_source = "random"

    count = len(eval_inputs[0])
    outputs: list[list] = []
    t0 = time.perf_counter()
    for i in range(count):
        outs = model.call([a[i : i + 1] for a in eval_inputs])
        if not outputs:
            outputs = [[] for _ in outs]
        for k, o in enumerate(outs):
            outputs[k].append(np.asarray(o)[0] if np.ndim(o) else np.asarray(o))
    reference_s = time.perf_counter() - t0
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_arrays = {str(i): a for i, a in enumerate(eval_inputs)}
    if labels is not None:
        eval_arrays["labels"] = labels
    from harness.convert.cache import savez_atomic

    savez_atomic(out_dir / "eval.npz", **eval_arrays)
    savez_atomic(out_dir / "reference.npz", **{str(k): np.stack(v) for k, v in enumerate(outputs)})
    savez_atomic(out_dir / "representative.npz", **{str(i): a for i, a in enumerate(rep)})
    return {
        "inputs": [
            {"name": n, "shape": list(s), "dtype": d, "model_shape": [x for x in spec.shape]}
            for n, s, d, spec in zip(names, shapes, dtypes, model.inputs, strict=True)
        ],
        "output_names": model.output_names[: len(outputs)] if len(model.output_names) >= len(outputs)
        else [f"output_{k}" for k in range(len(outputs))],
        "eval_source": eval_source,
        "representative_source": rep_source,
        "eval_count": count,
        "has_labels": labels is not None,
        "reference_s": reference_s,
        "prepare_s": time.perf_counter() - t_job,  # the whole job: loading, data, references, files
        "notes": notes,
        "conversion_path": model.conversion_path,
    }


_OPS_SETS = {
    "TFLITE_BUILTINS": "TFLITE_BUILTINS",
    "TFLITE_BUILTINS_INT8": "TFLITE_BUILTINS_INT8",
    "SELECT_TF_OPS": "SELECT_TF_OPS",
    "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8": (
        "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
    ),
}


def apply_options(converter: Any, options: dict, rep_arrays: list | None, feed_names: list[str] | None) -> None:
    """Turn a flag set's plain options into TFLiteConverter attributes. FEED_NAMES (the model's
    input names, in REP_ARRAYS' order) are used when the converter calibrates by name."""
    import tensorflow as tf

    if options.get("optimizations"):
        converter.optimizations = [getattr(tf.lite.Optimize, o) for o in options["optimizations"]]
    if options.get("supported_ops"):
        converter.target_spec.supported_ops = {getattr(tf.lite.OpsSet, _OPS_SETS[o]) for o in options["supported_ops"]}
    if options.get("supported_types"):
        converter.target_spec.supported_types = [tf.as_dtype(t) for t in options["supported_types"]]
    for key in ("inference_input_type", "inference_output_type"):
        if key in options:
            setattr(converter, key, tf.as_dtype(options[key]))
    if "allow_custom_ops" in options:
        converter.allow_custom_ops = bool(options["allow_custom_ops"])
    for key, value in options.items():
        if key.startswith(("experimental_", "_experimental_")):
            setattr(converter, key, value)
    if rep_arrays is not None:
        count = min(len(rep_arrays[0]), int(options.get("representative_count", 100)))
        names = feed_names if feed_names and feeds_by_name(converter) else None

        def gen():
            for i in range(count):
                batch = [a[i : i + 1] for a in rep_arrays]
                yield dict(zip(names, batch, strict=True)) if names else batch

        converter.representative_dataset = gen


def feeds_by_name(converter: Any) -> bool:
    """Whether representative data goes to the converter as {input name: array}.

    A converter made from a SavedModel calibrates through that SavedModel's signature, whose
    inputs need not be in the order the model lists them: a Keras model with inputs
    (image, vector) is converted from its exported SavedModel, whose signature gave the
    vector first, and a positional dataset fed the vector to the convolution. Named data
    cannot be misplaced."""
    return type(converter).__name__ == "TFLiteSavedModelConverterV2"


def convert(job: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    if job["options"].get("tool") == "tflite_convert":  # the command-line tool (convert/tools/)
        from harness.convert.tools import run

        model = _model(job)
        shapes = job.get("shapes") or _input_specs(job["model"], model)[2]
        return run({**job, "tool": "tflite_convert"}, (model, [tuple(s) for s in shapes]))
    if job.get("calibration"):  # the int8 family: quantize the shared calibration (convert/calibration.py)
        from harness.convert.diagnose import convert_calibrated

        done = convert_calibrated(job, _tools())
        model = _model(job)  # the one calibration used (reused, not loaded again)
        return {**done, "conversion_path": model.conversion_path or job["model"]["kind"], "notes": list(model.notes)}
    model = _model(job)
    if job.get("shapes") is None:  # submitted before the model's preparation finished
        shapes = [tuple(s) for s in _input_specs(job["model"], model)[2]]
    else:
        shapes = [tuple(s) for s in job["shapes"]]
    t0 = time.perf_counter()  # making the converter counts: a Keras model's export happens there
    converter = model.make_converter(shapes)
    rep = None
    if job.get("rep_path"):
        with np.load(job["rep_path"], allow_pickle=False) as data:
            rep = [data[str(i)].astype(s.dtype) for i, s in enumerate(model.inputs)]
    apply_options(converter, job["options"], rep, [s.name for s in model.inputs])
    blob = converter.convert()
    convert_s = time.perf_counter() - t0
    extra: dict = {"conversion_path": model.conversion_path or job["model"]["kind"], "notes": list(model.notes)}
    route = getattr(converter, "route", None)  # JAX models: which conversion route worked
    if isinstance(route, str):
        extra["jax_route"] = route
        extra["conversion_path"] = f"jax:{route}"
    if job["options"].get("metadata"):
        from harness.tflite.metadata import write_metadata

        blob = write_metadata(blob, job["options"]["metadata"])
        extra["metadata"] = sorted(job["options"]["metadata"])
    out = Path(job["out_path"])
    out.write_bytes(blob)
    return {"convert_s": convert_s, "size_bytes": len(blob), "tf_version": tf.__version__, **extra}


def versions(job: dict) -> dict:
    import tensorflow as tf

    return {"tensorflow": tf.__version__}


def check(job: dict) -> dict:
    """Compatibility assessment before conversion (see harness/convert/assess.py)."""
    from harness.convert.assess import assess

    return assess(job)


def _tools():
    """What convert/diagnose.py borrows from this module (passed in: no import cycle)."""
    from harness.convert.diagnose import WorkerTools

    return WorkerTools(model=_model, inputs=job_inputs, apply_options=apply_options)


def _diagnose(job: dict) -> dict:
    from harness.convert.diagnose import diagnose

    return diagnose(job, _tools())


def _quantize(job: dict) -> dict:
    from harness.convert.diagnose import quantize_step

    return quantize_step(job, _tools())


def _tool(job: dict) -> dict:
    from harness.convert.tools import run

    return run(job)


HANDLERS = {"prepare": prepare, "convert": convert, "versions": versions, "check": check,
            "diagnose": _diagnose, "quantize": _quantize,  # these two: convert/diagnose.py
            "tool": _tool}  # convert/tools/: the AI Edge Quantizer

LIGHT_ENV = "TFLITE_HARNESS_LIGHT_WORKER"  # set: a worker for the tools that need no TensorFlow


def _exit_with_parent(parent: int | None = None, poll_s: float = 1.0) -> None:
    """Exit when the parent (PARENT, else this process's parent now) is gone (kill -9): workers
    run in their own session, so no signal reaches them, and a closed stdin is only noticed
    between jobs."""
    import threading

    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    """A spawned worker: answers on a private copy of stdout, TensorFlow imported here."""
    _exit_with_parent()
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # TensorFlow's import chatter goes to the log, not the protocol
    if not os.environ.get(LIGHT_ENV):
        import tensorflow  # noqa: F401  - paid once per worker, before the first job
    return serve(proto)


def serve(proto, parent: int | None = None) -> int:
    """Answer jobs from stdin on PROTO until stdin closes: a spawned worker's loop (`main`)
    and a forked one's (`forkserver`, where TensorFlow was imported before the fork; it
    exits with PARENT, the server)."""
    if parent is not None:
        _exit_with_parent(parent)
    os.dup2(2, 1)  # TensorFlow's prints go to the log, not the protocol
    sys.stdout = sys.stderr
    proto.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        print(f"=== job {job.get('id')} {job.get('op')}", file=sys.stderr, flush=True)
        try:
            answer = {"id": job.get("id"), "ok": True, **HANDLERS[job["op"]](job)}
        except Exception as exc:  # noqa: BLE001 - the parent classifies every failure
            trace = traceback.format_exc()
            print(trace, file=sys.stderr, flush=True)
            answer = {
                "id": job.get("id"),
                "ok": False,
                "error_type": type(exc).__name__,
                "error": _one_line(str(exc) or type(exc).__name__, 4000),
                "usage": type(exc).__name__ in ("SourceError", "SampleError", "QuantizerInputError"),
            }
        sys.stderr.flush()
        proto.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
