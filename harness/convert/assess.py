"""Worker side of `tflite-harness check`: what a model's graph is made of, before converting.

Runs inside a converter worker (imports TensorFlow; JAX for JAX models). It traces the
model to a concrete function with fixed shapes and lists the TensorFlow op types its graph
(and the functions the graph calls) uses, the dynamic-shape and tensor-list constructs
that block conversion, and the parameter count. Which ops map to TFLite builtins, Flex or
nothing is decided on the parent side (`harness/pipeline/check.py`) from real conversions that
run as ordinary, crash-safe `convert` jobs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

# Plumbing, not computation: these never decide whether a model converts.
SKIP_OPS = frozenset({
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "ReadVariableOp", "VarHandleOp",
    "AssignVariableOp", "PartitionedCall", "StatefulPartitionedCall", "StopGradient",
    "_Arg", "_Retval", "VarIsInitializedOp", "DestroyResourceOp", "Assert", "PreventGradient",
    "PlaceholderWithDefault", "EnsureShape",
})
TENSOR_LIST_PREFIX = "TensorList"
CONTROL_FLOW_OPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf"})


def _graph_ops(cf: Any) -> Counter:
    """Op types of a concrete function's graph and of every function in its library."""
    graph_def = cf.graph.as_graph_def()
    counts: Counter = Counter(n.op for n in graph_def.node)
    for fdef in graph_def.library.function:
        counts.update(n.op for n in fdef.node_def)
    return counts


def _dynamic_dims(cf: Any) -> list[str]:
    """Inputs and outputs with unknown dimensions beyond the batch axis."""
    found = []
    for t in list(cf.inputs) + list(cf.outputs):
        if t.dtype.name == "resource":
            continue
        dims = t.shape.as_list() if t.shape.rank is not None else None
        if dims is None:
            found.append(f"{t.name}: unknown rank")
        elif any(d is None for d in dims[1:]):
            pretty = "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
            found.append(f"{t.name}: {pretty}")
    return found


def _param_count(model: Any, kind: str) -> tuple[int | None, int | None]:
    """(parameters, bytes) of the model's variables or JAX params; None when unknown."""
    src = model.source
    try:
        if kind == "jax":
            import jax

            leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(src[1])]
            return sum(int(a.size) for a in leaves), sum(int(a.nbytes) for a in leaves)
        if kind == "keras":
            weights = src.weights
        elif kind == "saved_model":
            weights = list(getattr(src, "variables", []) or [])
        else:
            weights = list(getattr(src, "variables", []) or [])
        n = sum(int(np.prod(tuple(w.shape))) for w in weights)
        size = sum(int(np.prod(tuple(w.shape))) * _itemsize(w.dtype) for w in weights)
        return n, size
    except Exception:  # noqa: BLE001 - a count is a nicety, never a failure
        return None, None


def _itemsize(dtype: Any) -> int:
    name = getattr(dtype, "name", None) or str(dtype)
    try:
        return np.dtype(name).itemsize
    except TypeError:
        return 4


def _const_bytes(cf: Any) -> int:
    """Bytes held in Const ops (weights baked into a concrete function as constants)."""
    total = 0
    graph_def = cf.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    for n in nodes:
        if n.op == "Const" and "value" in n.attr:
            total += len(n.attr["value"].tensor.tensor_content)
    return total


def _jax_primitives(model: Any, shapes: list[tuple[int, ...]]) -> Counter:
    import jax

    fn, params = model.source
    specs = [jax.ShapeDtypeStruct(s, i.dtype) for s, i in zip(shapes, model.inputs, strict=True)]
    jaxpr = jax.make_jaxpr(lambda *xs: fn(params, *xs))(*specs)
    counts: Counter = Counter()

    def walk(jp: Any) -> None:
        for eqn in jp.eqns:
            counts[eqn.primitive.name] += 1
            for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
                walk(sub)

    walk(jaxpr.jaxpr)
    return counts


def assess(job: dict) -> dict:
    """Graph-level facts about one model; `job` has the model payload and fixed shapes."""
    import tensorflow as tf

    from harness.convert.sources import load_model

    m = job["model"]
    kind = m["kind"]
    model = load_model(kind, Path(m["path"]), m.get("entry"), m.get("signature", "serving_default"), m.get("trusted", False))
    shapes = [tuple(s) for s in job.get("shapes") or []]
    if not shapes:
        shapes = [tuple(1 if d is None else d for d in s.shape) for s in model.inputs]
    out: dict[str, Any] = {
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "fixed_shape": list(shape)}
                   for s, shape in zip(model.inputs, shapes, strict=True)],
        "output_names": list(model.output_names),
        "tf_version": tf.__version__,
        "notes": [],
    }
    params, param_bytes = _param_count(model, kind)
    out["params"], out["param_bytes"] = params, param_bytes
    out["dynamic_inputs"] = [
        f"{s.name}: [{', '.join('?' if d is None else str(d) for d in s.shape)}]"
        for s in model.inputs if any(d is None for d in s.shape[1:])
    ]
    if kind == "jax":
        import jax

        out["jax_version"] = jax.__version__
        out["jax_primitives"] = dict(sorted(_jax_primitives(model, shapes).items()))
        out["graph_ops"] = {}
        out["notes"].append("JAX models trace to one XlaCallModule op in TensorFlow; listed are JAX primitives")
        out["tensor_list_ops"], out["control_flow_ops"], out["dynamic_tensors"] = [], [], []
        return out
    assert model.trace is not None
    cf = model.trace(shapes)
    counts = _graph_ops(cf)
    out["graph_ops"] = {op: n for op, n in sorted(counts.items()) if op not in SKIP_OPS}
    out["tensor_list_ops"] = sorted(op for op in counts if op.startswith(TENSOR_LIST_PREFIX))
    out["control_flow_ops"] = sorted(op for op in counts if op in CONTROL_FLOW_OPS)
    out["dynamic_tensors"] = _dynamic_dims(cf)
    if params in (None, 0):
        const = _const_bytes(cf)
        if const:
            out["notes"].append(f"weights are baked in as constants ({const} bytes)")
            out["const_bytes"] = const
    return out
