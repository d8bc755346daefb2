"""Check that every bundled model converts under the six default flag sets and still classifies.

Not used by the harness: this script documents what was found when the models were built
(see models/README.md). Each (model, setting) conversion runs in its own child process, so
a converter that dies with a signal (SIGSEGV is a known failure of full-int8 quantization
of a non-unrolled Keras 3 LSTM) becomes a "crashed" cell instead of killing this script.

    .venv/bin/python models/verify_models.py                 # all bundled models
    .venv/bin/python models/verify_models.py path/to/m.keras # any .keras (samples/calib next to it, optional)
    .venv/bin/python models/verify_models.py --jobs 2        # run two children at a time

A child prints one JSON line: status (ok / failed / crashed), reason, held-out accuracy of the
converted model on the samples file, the Keras accuracy on the same samples, whether outputs
contained NaN/Inf or were all zero, the input/output tensor names and dtypes, and the
signature list.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ["digits_cnn", "digits_mobilenet", "digits_lstm", "digits_transformer"]
SETTINGS = ["fp32", "dynamic_range", "float16", "int8", "int8_float_io", "int16x8"]
TIMEOUT_S = 600


# --------------------------------------------------------------------------- child side


def _configure(converter, setting: str, calib):
    import tensorflow as tf

    def representative():
        for i in range(calib.shape[0]):
            yield [calib[i : i + 1]]

    if setting == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if setting == "dynamic_range":
        return
    if setting == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    converter.representative_dataset = representative
    if setting in ("int8", "int8_float_io"):
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if setting == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return
    if setting == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        return
    raise ValueError(setting)


def child(model_path: str, setting: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import keras
    from ai_edge_litert.interpreter import Interpreter

    path = Path(model_path)
    stem = path.name[: -len(".keras")]
    samples_p = path.with_name(stem + ".samples.npz")
    calib_p = path.with_name(stem + ".calib.npz")
    model = keras.models.load_model(path, compile=False)
    in_shape = tuple(model.inputs[0].shape[1:])
    if samples_p.exists():
        s = np.load(samples_p)
        x, labels = s["x"].astype(np.float32), s["labels"] if "labels" in s else None
    else:
        rng = np.random.default_rng(0)
        x, labels = rng.random((16, *in_shape), dtype=np.float32), None
    calib = np.load(calib_p)["x"].astype(np.float32) if calib_p.exists() else x
    out = {
        "keras_inputs": [t.name for t in model.inputs],
        "keras_input_shapes": [list(t.shape) for t in model.inputs],
        "keras_outputs": list(getattr(model, "output_names", [t.name for t in model.outputs])),
    }
    keras_pred = np.concatenate([np.asarray(model(x[i : i + 1], training=False)) for i in range(len(x))])
    if labels is not None:
        out["keras_acc"] = float((keras_pred.argmax(-1) == labels).mean())

    t0 = time.time()
    try:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        _configure(converter, setting, calib)
        blob = converter.convert()
    except Exception as e:  # the converter refused: one line of reason
        msg = " ".join(str(e).split())
        return {**out, "status": "failed", "stage": "convert", "reason": f"{type(e).__name__}: {msg[:400]}"}
    out["convert_s"] = round(time.time() - t0, 2)
    out["tflite_bytes"] = len(blob)
    try:
        interp = Interpreter(model_content=blob)
        interp.allocate_tensors()
        ind, outd = interp.get_input_details()[0], interp.get_output_details()[0]
        out["signatures"] = interp.get_signature_list()
        out["tflite_inputs"] = [(d["name"], str(np.dtype(d["dtype"])), d["shape"].tolist(), d["quantization"]) for d in interp.get_input_details()]
        out["tflite_outputs"] = [(d["name"], str(np.dtype(d["dtype"])), d["shape"].tolist(), d["quantization"]) for d in interp.get_output_details()]
        preds = []
        for i in range(len(x)):
            xi = x[i : i + 1]
            if np.dtype(ind["dtype"]) != np.float32:
                scale, zp = ind["quantization"]
                info = np.iinfo(ind["dtype"])
                xi = np.clip(np.round(xi / scale + zp), info.min, info.max).astype(ind["dtype"])
            interp.set_tensor(ind["index"], xi)
            interp.invoke()
            y = interp.get_tensor(outd["index"])
            if np.dtype(outd["dtype"]) != np.float32:
                scale, zp = outd["quantization"]
                y = (y.astype(np.float32) - zp) * scale
            preds.append(y)
        pred = np.concatenate(preds)
    except Exception as e:
        msg = " ".join(str(e).split())
        return {**out, "status": "failed", "stage": "run", "reason": f"{type(e).__name__}: {msg[:400]}"}
    out["nan_or_inf"] = bool(not np.isfinite(pred).all())
    out["all_zero"] = bool((pred == 0).all())
    out["max_abs_diff_vs_keras"] = float(np.nanmax(np.abs(pred - keras_pred)))
    out["argmax_agreement"] = float((pred.argmax(-1) == keras_pred.argmax(-1)).mean())
    if labels is not None:
        out["acc"] = float((pred.argmax(-1) == labels).mean())
    out["status"] = "ok"
    return out


# --------------------------------------------------------------------------- parent side


def run_cell(model_path: Path, setting: str) -> dict:
    cmd = [sys.executable, __file__, "--child", str(model_path), setting]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"no answer in {TIMEOUT_S}s"}
    if p.returncode < 0:
        try:
            name = signal.Signals(-p.returncode).name
        except ValueError:
            name = str(-p.returncode)
        return {"status": "crashed", "reason": f"converter process killed by signal {-p.returncode} ({name})"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = " ".join(p.stderr.strip().splitlines()[-2:])
        return {"status": "crashed", "reason": f"exit code {p.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def cell_text(r: dict) -> str:
    if r["status"] == "ok":
        s = f"ok {r['acc']:.3f}" if "acc" in r else "ok"
        if r.get("nan_or_inf"):
            s += " NaN!"
        if r.get("all_zero"):
            s += " zeros!"
        return s
    return r["status"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=".keras files (default: the bundled models)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", help="also write all results to this JSON file")
    args = ap.parse_args(argv)
    paths = [Path(m) for m in args.models] or [HERE / f"{m}.keras" for m in MODELS]
    settings = args.settings.split(",")
    cells = [(p, s) for p in paths for s in settings]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda c: run_cell(*c), cells))
    table = {}
    for (p, s), r in zip(cells, results):
        table.setdefault(p.name, {})[s] = r
    width = max(len(p.name) for p in paths)
    print()
    print("model".ljust(width), *(s.rjust(14) for s in settings))
    for p in paths:
        row = table[p.name]
        print(p.name.ljust(width), *(cell_text(row[s]).rjust(14) for s in settings))
    print()
    for p in paths:
        for s in settings:
            r = table[p.name][s]
            if r["status"] != "ok":
                print(f"{p.name} / {s}: {r['status']}: {r.get('reason', '')}")
    first_ok = {}
    for p in paths:
        for s in settings:
            r = table[p.name][s]
            if r["status"] == "ok":
                first_ok.setdefault(p.name, {})[s] = r
    print()
    for name, rows in first_ok.items():
        any_r = next(iter(rows.values()))
        print(f"{name}: keras inputs {any_r['keras_inputs']} {any_r['keras_input_shapes']}, "
              f"keras outputs {any_r['keras_outputs']}, keras acc on samples {any_r.get('keras_acc')}")
        for s, r in rows.items():
            print(f"  {s:14s} signatures={r['signatures']} inputs={r['tflite_inputs']} "
                  f"outputs={r['tflite_outputs']} max|diff|={r['max_abs_diff_vs_keras']:.4f} "
                  f"argmax-agree={r['argmax_agreement']:.3f} bytes={r['tflite_bytes']}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in table.items()}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3]), default=str))
        sys.exit(0)
    sys.exit(main())
