"""`tflite-harness check`: assess a model before (or after) conversion.

For Keras, SavedModel, concrete-function and JAX models, work happens in converter workers
(TensorFlow is never imported here): a `prepare` job (shapes, representative data,
reference outputs), a `check` job (the graph's TF ops, dynamic shapes, tensor lists,
parameters; harness/convert/assess.py) and one ordinary `convert` job per flag set. The op
verdicts come from those real conversions: an op named in the builtins-only error is not a
builtin; with Select TF ops it either shows up as a Flex op in the artifact ("flex") or
still fails ("unsupported"). Flag sets are "verified" when converted here (and run on the
local runtime when it can), else "expected".

For a `.tflite` nothing needs TensorFlow: ops, tensors, quantization, float ops left in a
quantized model, Flex/custom ops, the LiteRT analyzer's GPU verdict, size by part.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.convert.failures import classify
from harness.core.flag_sets import BUILTIN_FLAG_SETS, FlagSet
from harness.core.native_log import native_stderr_to
from harness.tflite.check import check_tflite, gpu_compatibility, size_parts  # noqa: F401 - re-exported

PROBE_FLAG_SETS = ("fp32", "select_tf_ops")  # always converted: they decide the op verdicts
VERIFY_MAX_PARAMS = 5_000_000  # bigger models get "expected" verdicts unless asked


# ------------------------------------------------------------------ original models

def _saved_model_findings(spec: ModelSpec) -> list[str]:
    out = []
    if spec.kind == "saved_model":
        var_dir = spec.path / "variables"
        if not var_dir.is_dir() or not any(var_dir.glob("variables.index")):
            out.append(f"{spec.path} has no variables/ folder (or no variables.index): if the model has weights "
                       "they were not saved, and loading fails or outputs are garbage; re-export with "
                       "tf.saved_model.save(model, dir)")
    return out


def _op_verdicts(graph_ops: dict[str, int], convs: dict[str, dict]) -> dict[str, str]:
    """builtin / flex / unsupported per TF op type, from the probe conversions."""
    fp32, flex = convs.get("fp32", {}), convs.get("select_tf_ops", {})
    named_fp32 = set(_op_names(fp32.get("error", "")))
    flex_ops = {o[len("Flex"):] for o in flex.get("flex_ops", [])}
    named_flex = set(_op_names(flex.get("error", ""))) if not flex.get("ok") else set()
    verdicts = {}
    for op in graph_ops:
        if op in flex_ops:
            verdicts[op] = "flex"
        elif op in named_flex:
            verdicts[op] = "unsupported"
        elif op in named_fp32:
            verdicts[op] = "flex" if flex.get("ok") else "unsupported"
        elif fp32.get("ok") or named_fp32:
            verdicts[op] = "builtin"  # converted, or the converter named only other ops
        else:
            verdicts[op] = "unknown"
    for op in named_fp32 | named_flex | flex_ops:  # ops only in nested functions, named by the converter
        verdicts.setdefault(op, "flex" if op in flex_ops else "unsupported" if op in named_flex else
                            "flex" if flex.get("ok") else "unsupported")
    return dict(sorted(verdicts.items()))


def _op_names(text: str) -> list[str]:
    found = set(re.findall(r"\btf\.([A-Z][A-Za-z0-9]+)\b", text or ""))
    found |= set(re.findall(r"\bFlex([A-Z][A-Za-z0-9]+)\b", text or ""))
    return sorted(found)


def _run_artifact(path: Path, prepared_dir: Path, meta: dict) -> dict:
    """Run an artifact on the local runtime over the prepared inputs; health and drift."""
    import numpy as np

    from harness.core.stats import compute_drift, health_problems

    try:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - Flex/custom ops or a broken artifact
        return {"ran": False, "reason": " ".join(str(exc).split())[:200]}
    names = [i["name"] for i in meta["inputs"]]
    with np.load(prepared_dir / "eval.npz") as ev, np.load(prepared_dir / "reference.npz") as rf:
        inputs = [ev[str(i)] for i in range(len(names))]
        labels = ev["labels"] if "labels" in ev.files else None
        reference = [rf[k] for k in sorted(rf.files, key=int)]
    in_details, out_details = _io_order(it, names, len(reference))
    outs: list[list] = [[] for _ in out_details]
    for k in range(len(inputs[0])):
        for d, arr in zip(in_details, inputs, strict=True):
            x = arr[k : k + 1]
            scale, zero = d.get("quantization", (0.0, 0))
            if np.issubdtype(d["dtype"], np.integer) and scale:
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max)
            it.set_tensor(d["index"], x.astype(d["dtype"]).reshape(d["shape"]))
        it.invoke()
        for j, d in enumerate(out_details):
            outs[j].append(it.get_tensor(d["index"])[0].copy())
    arrays = []
    for j, d in enumerate(out_details):
        a = np.stack(outs[j])
        scale, zero = d.get("quantization", (0.0, 0))
        if np.issubdtype(a.dtype, np.integer) and scale:
            a = (a.astype(np.float32) - zero) * scale
        arrays.append(a)
    out_names = meta.get("output_names", [])
    problems = health_problems(arrays, out_names, reference)
    result: dict[str, Any] = {"ran": True, "problems": problems}
    try:
        d = compute_drift(reference, arrays, labels)
        result["max_abs"], result["cosine"] = d.max_abs, d.cosine
        if d.cosine < 0.9 and not problems:
            problems.append(f"outputs far from the original (cosine {d.cosine:.3f})")
    except ValueError as exc:
        result["drift_error"] = str(exc)
    return result


def _io_order(it: Any, names: list[str], n_out: int) -> tuple[list[dict], list[dict]]:
    """Input and output details in the reference's order: by signature names when present."""
    ins, outs = it.get_input_details(), it.get_output_details()
    sigs = it.get_signature_list()
    if sigs:
        key = next(iter(sigs))
        runner = it.get_signature_runner(key)
        sin, sout = runner.get_input_details(), runner.get_output_details()
        by_index = {d["index"]: d for d in ins + outs}
        if all(n in sin for n in names):
            ins = [by_index.get(sin[n]["index"], sin[n]) for n in names]
        outs = [by_index.get(sout[n]["index"], sout[n]) for n in sorted(sout)]
    return ins, outs[:n_out] if len(outs) >= n_out else outs


def check_model(spec: ModelSpec, *, flag_sets: list[FlagSet] | None = None, verify: bool | None = None,
                work_dir: Path | None = None, timeout_s: float = 300.0, workers: int = 2) -> dict[str, Any]:
    """Assess an original model in converter workers; see the module docstring."""
    from harness.convert.pool import WorkerPool

    if spec.kind == "tflite":
        return check_tflite(spec.path)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tflite-harness-check-")
        work_dir = Path(tmp.name)
    work_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"kind": spec.kind, "path": spec.source, "name": spec.name,
                              "findings": _saved_model_findings(spec)}
    pool = WorkerPool(workers, work_dir / "logs", timeout_s)
    try:
        from harness.config import model_payload  # the same job description the campaign sends

        payload = model_payload(spec)
        prep_dir = work_dir / "prepared"
        prep = pool.submit({"op": "prepare", "model": payload, "eval_samples": 8, "seed": 0,
                            "out_dir": str(prep_dir)}).result()
        if not prep.ok:
            failure = classify(prep.error, prep.log, signal=prep.signal, timed_out=prep.timed_out)
            report["error"] = prep.error if prep.usage else failure.reason
            report["error_category"] = "load_error" if prep.usage else failure.category
            if report["error_category"] == "load_error" and "unknown dimensions" in (prep.error or ""):
                report["findings"].append("inputs have unknown dimensions beyond the batch: set input_shapes")
            return report
        meta = prep.data
        shapes = [i["shape"] for i in meta["inputs"]]
        graph = pool.submit({"op": "check", "model": payload, "shapes": shapes}).result()
        if graph.ok:
            report.update({k: v for k, v in graph.data.items() if k != "id"})
        else:
            report["graph_error"] = graph.error or (f"worker crashed (signal {graph.signal})" if graph.signal else "?")
        params = report.get("params") or 0
        do_verify = verify if verify is not None else params <= VERIFY_MAX_PARAMS
        chosen = list(flag_sets or BUILTIN_FLAG_SETS.values())
        names = [fs.name for fs in chosen]
        probes = [BUILTIN_FLAG_SETS[n] for n in PROBE_FLAG_SETS if n not in names]
        to_convert = (chosen if do_verify else [fs for fs in chosen if fs.name in PROBE_FLAG_SETS]) + probes
        futures = {}
        for fs in to_convert:
            out_path = work_dir / f"{spec.name}-{fs.name}.tflite"
            rep = prep_dir / "representative.npz" if fs.needs_representative_data else None
            futures[fs.name] = (fs, out_path, pool.submit({
                "op": "convert", "model": payload, "options": fs.converter_options(),
                "rep_path": str(rep) if rep else None, "shapes": shapes, "out_path": str(out_path)}))
        convs: dict[str, dict] = {}
        for name, (fs, out_path, fut) in futures.items():
            ans = fut.result()
            convs[name] = _conversion_entry(fs, out_path, ans, prep_dir, meta)
        report["conversions"] = {n: c for n, c in convs.items() if n in names or n in PROBE_FLAG_SETS}
        report["op_verdicts"] = _op_verdicts(report.get("graph_ops", {}), convs)
        report["flag_sets"] = _flag_set_verdicts(chosen, convs, report)
        report["reference_problems"] = _reference_problems(prep_dir, meta)
        _findings(report)
        report["recommended"] = _recommend(report)
        report["work_dir"] = str(work_dir) if tmp is None else None
    finally:
        pool.close()
        if tmp is not None:
            tmp.cleanup()
    return report


def _run_isolated(path: Path, prepared_dir: Path, meta: dict) -> dict:
    """`_run_artifact` in a child process: LiteRT crashing on an artifact costs its entry, not `check`."""
    from harness.tflite.native import NativeCrash, call_in_child

    try:
        return call_in_child(_run_artifact, path, prepared_dir, meta, what="LiteRT")
    except NativeCrash as exc:
        return {"ran": False, "reason": f"{exc} while running the artifact"}
    except RuntimeError as exc:
        return {"ran": False, "reason": str(exc)[:200]}


def _conversion_entry(fs: FlagSet, out_path: Path, ans: Any, prep_dir: Path, meta: dict) -> dict:
    from harness.tflite.file import read_tflite

    if ans.ok and out_path.is_file():
        m = read_tflite(out_path)
        entry = {"ok": True, "size_bytes": out_path.stat().st_size, "flex_ops": m.flex_ops,
                 "custom_ops": m.custom_ops, "ops": m.op_names}
        if ans.data.get("jax_route"):
            entry["jax_route"] = ans.data["jax_route"]
        if m.flex_ops or m.custom_ops:
            entry["run"] = {"ran": False, "reason": "needs " + ", ".join(m.flex_ops + m.custom_ops)
                            + " (the local runtime has no Flex delegate or custom kernels)"}
        else:
            with native_stderr_to(out_path.parent / "logs" / "runtime.log"):  # LiteRT's INFO lines: the log's
                entry["run"] = _run_isolated(out_path, prep_dir, meta)
        return entry
    failure = classify(ans.error, ans.log, signal=ans.signal, timed_out=ans.timed_out, flag_set=fs.name)
    return {"ok": False, "category": failure.category, "reason": failure.reason,
            "error": " ".join((ans.error or "").split())[:3000]}


def _flag_set_verdicts(chosen: list[FlagSet], convs: dict[str, dict], report: dict) -> dict[str, dict]:
    verdicts = report.get("op_verdicts", {})
    has_unsupported = any(v == "unsupported" for v in verdicts.values())
    has_flex = any(v == "flex" for v in verdicts.values())
    blocked = bool(report.get("tensor_list_ops")) or bool(report.get("dynamic_tensors"))
    out = {}
    for fs in chosen:
        c = convs.get(fs.name)
        if c is not None:
            if c["ok"]:
                run = c.get("run", {})
                if run.get("ran") and run.get("problems"):
                    status, why = "unhealthy", "; ".join(run["problems"])
                elif run.get("ran"):
                    status, why = "works", f"converted and ran (cosine {run.get('cosine', float('nan')):.4f})"
                else:
                    status, why = "converts", run.get("reason", "converted; not run here")
            else:
                status, why = "fails", f"{c['category']}: {c['reason']}"
            out[fs.name] = {"verdict": status, "how": "verified", "why": why}
            continue
        opts = fs.options
        ops_sets = set(opts.get("supported_ops", []))
        if has_unsupported and not opts.get("allow_custom_ops"):
            status, why = "fails", "unsupported ops"
        elif has_flex and "SELECT_TF_OPS" not in ops_sets and not opts.get("allow_custom_ops"):
            status, why = "fails", "needs Select TF ops"
        elif blocked and fs.needs_representative_data:
            status, why = "risky", "tensor lists / dynamic shapes often fail full-integer quantization"
        else:
            status, why = "works", "all ops are builtins"
        out[fs.name] = {"verdict": status, "how": "expected", "why": why}
    return out


def _reference_problems(prep_dir: Path, meta: dict) -> list[str]:
    import numpy as np

    from harness.core.stats import health_problems

    try:
        with np.load(prep_dir / "reference.npz") as rf:
            ref = [rf[k] for k in sorted(rf.files, key=int)]
    except OSError:
        return []
    return health_problems(ref, meta.get("output_names", []))


def _findings(report: dict) -> None:
    f = report["findings"]
    v = report.get("op_verdicts", {})
    flex = [op for op, s in v.items() if s == "flex"]
    unsupported = [op for op, s in v.items() if s == "unsupported"]
    if flex:
        f.append(f"ops without a TFLite builtin, available as Select TF ops (Flex): {', '.join(flex)}")
    if unsupported:
        f.append(f"ops with neither a builtin nor a Flex kernel: {', '.join(unsupported)}; refactor the model or "
                 "implement them as custom ops")
    if report.get("tensor_list_ops"):
        f.append(f"tensor-list ops ({', '.join(report['tensor_list_ops'])}) from an RNN or a loop: fix the batch "
                 "size or unroll the RNN (unroll=True) so they become plain ops")
    if report.get("dynamic_tensors") or report.get("dynamic_inputs"):
        dyn = report.get("dynamic_inputs") or report.get("dynamic_tensors")
        f.append(f"dynamic shapes beyond the batch axis ({'; '.join(dyn[:4])}): give input_shapes to fix them")
    if report.get("reference_problems"):
        cause = " (likely the SavedModel was saved without its variables)" if any(
            "variables/" in x for x in f) else ""
        f.append(f"the ORIGINAL model's outputs are unhealthy ({'; '.join(report['reference_problems'])}){cause}: "
                 "conversion is not the cause")


def _recommend(report: dict) -> str | None:
    verdicts = report.get("flag_sets", {})
    order = ["int8_float_io", "int8", "dynamic_range", "float16", "fp32", "select_tf_ops", "custom_ops"]
    if any(s == "flex" for s in report.get("op_verdicts", {}).values()):
        order = ["select_tf_ops"] + order
    for name in order:
        if verdicts.get(name, {}).get("verdict") in ("works", "converts"):
            return name
    return next((n for n, x in verdicts.items() if x["verdict"] in ("works", "converts")), None)
