"""SavedModels that TensorFlow 2's object loader cannot restore: the tf.compat.v1 graph path.

Two kinds of SavedModel reach here:
- TF1-style ones (written by `tf.compat.v1.saved_model.Builder`, or by TF1 itself): they
  carry graphs and signatures but no object graph, so there are no Python objects to
  revive and the graph is the model;
- SavedModels whose object graph TF 2.21 cannot revive, most often a Keras 2 model saved
  with its optimizer: the loader re-creates slot variables through `Optimizer.add_slot`,
  on an optimizer it could only revive as a plain `_UserObject`
  (`'_UserObject' object has no attribute 'add_slot'`), and `TFLiteConverter.from_saved_model`
  fails the same way.

Both load with `tf.compat.v1.saved_model.loader.load` into a session (variables restored by
name from the checkpoint, the object graph ignored) and convert with the v1
`TFLiteConverter.from_saved_model`, which freezes the same graph. Reference outputs come from
that session, so drift compares the artifact with exactly the graph it was made from.

The v1 converter orders a signature's inputs and outputs by tensor name and writes no
signature into the .tflite; the inputs and outputs here are ordered the same way, so
positional matching on the device lines up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from harness.convert.loaded import InputSpec, LoadedModel, SourceError

GRAPH_PATH = "tf_compat_v1_graph"  # the conversion_path of models converted this way


def _meta_graphs(path: Path) -> list[Any]:
    from tensorflow.python.saved_model import loader_impl

    try:
        return list(loader_impl.parse_saved_model(str(path)).meta_graphs)
    except Exception as exc:  # noqa: BLE001 - a damaged saved_model.pb is the file's fault
        raise SourceError(f"{path}: saved_model.pb cannot be read ({' '.join(str(exc).split())[:200]})") from None


def is_tf1_style(path: Path) -> bool:
    """True when no meta graph has an object graph: nothing for TF2's loader to revive."""
    graphs = _meta_graphs(path)
    return bool(graphs) and all(len(g.object_graph_def.nodes) == 0 for g in graphs)


def _pick_meta_graph(path: Path, signature: str):
    graphs = _meta_graphs(path)
    with_sig = [g for g in graphs if signature in g.signature_def]
    if not with_sig:
        have = sorted({k for g in graphs for k in g.signature_def if not k.startswith("__")}) or ["none"]
        raise SourceError(f"{path}: SavedModel has no signature {signature!r} (it has: {', '.join(have)}); "
                          "set signature = \"...\"")
    serving = [g for g in with_sig if "serve" in g.meta_info_def.tags]
    return (serving or with_sig)[0]


@dataclass
class GraphView:
    """What `check` reads from a traced function, for a v1 graph: its ops and its tensors."""

    graph: Any
    inputs: list[Any]
    outputs: list[Any]


@dataclass
class SignatureGraph:
    """The part of a v1 graph the signature computes (no checkpoint save/restore ops), as
    `check` reads a concrete function's graph: `as_graph_def()`."""

    graph: Any
    outputs: list[Any]

    def as_graph_def(self):
        names = sorted({t.op.name for t in self.outputs})
        graph_def = tf.compat.v1.graph_util.extract_sub_graph(self.graph.as_graph_def(), names)
        # a TF2-saved graph calls its functions from the library, which also holds the
        # checkpoint's save/restore functions: keep only those the signature reaches
        library = {f.signature.name: f for f in graph_def.library.function}
        seen: set[str] = set()
        stack = list(_called(graph_def.node, library))
        while stack:
            name = stack.pop()
            if name not in seen and name in library:
                seen.add(name)
                stack.extend(_called(library[name].node_def, library))
        kept = [library[n] for n in sorted(seen)]
        del graph_def.library.function[:]
        graph_def.library.function.extend(kept)
        return graph_def


def _called(nodes, library: dict) -> list[str]:
    """Names of the library functions NODES call (as an op, or through a function attribute)."""
    out = []
    for n in nodes:
        if n.op in library:
            out.append(n.op)
        for attr in n.attr.values():
            if attr.HasField("func"):
                out.append(attr.func.name)
            if attr.HasField("list"):
                out.extend(f.name for f in attr.list.func)
    return out


@dataclass
class GraphSource:
    """The loaded session; `variables` for the parameter count of `check`."""

    session: Any
    variables: list[Any]


@dataclass
class CheckpointVariable:
    """A variable as its checkpoint lists it (a TF2-saved graph has no v1 variable collection)."""

    name: str
    shape: tuple[int, ...]
    dtype: Any


def _checkpoint_variables(path: Path) -> list[CheckpointVariable]:
    """The model's variables from variables/ (for `check`'s parameter count), without the
    object graph and optimizer slots."""
    try:
        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    except Exception:  # noqa: BLE001 - a count is a nicety
        return []
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return [CheckpointVariable(k, tuple(shapes[k]), dtypes[k]) for k in sorted(shapes)
            if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") and "OPTIMIZER_SLOT" not in k
            and not k.startswith("optimizer/")]


def load_graph_saved_model(path: Path, signature: str, why: str) -> LoadedModel:
    """Load PATH's SIGNATURE with the tf.compat.v1 loader; WHY says what sent it here (for the rows)."""
    v1 = tf.compat.v1
    meta = _pick_meta_graph(path, signature)
    tags = list(meta.meta_info_def.tags)
    sig = meta.signature_def[signature]
    graph = tf.Graph()
    session = v1.Session(graph=graph)
    try:
        with graph.as_default():
            v1.saved_model.loader.load(session, tags, str(path))
    except Exception as exc:  # noqa: BLE001
        session.close()
        msg = " ".join(str(exc).split())[:300]
        raise SourceError(f"{path}: neither TF2's loader ({why}) nor the tf.compat.v1 loader ({msg}) can load it") from None
    ins = sorted(sig.inputs.items(), key=lambda kv: kv[1].name)  # the v1 converter's order
    outs = sorted(sig.outputs.items(), key=lambda kv: kv[1].name)
    in_tensors = [graph.get_tensor_by_name(info.name) for _, info in ins]
    out_tensors = [graph.get_tensor_by_name(info.name) for _, info in outs]
    inputs = []
    for (key, _info), t in zip(ins, in_tensors, strict=True):
        dims = tuple(None if d is None else int(d) for d in t.shape.as_list()) if t.shape.rank is not None else ()
        inputs.append(InputSpec(name=key, shape=dims, dtype=t.dtype.name))

    def call(arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {t: np.asarray(a, dtype=t.dtype.as_numpy_dtype) for t, a in zip(in_tensors, arrays, strict=True)}
        return [np.asarray(o) for o in session.run(out_tensors, feed)]

    def make_converter(shapes: list[tuple[int, ...]]):
        arrays = {t.name.split(":")[0]: list(shape) for t, shape in zip(in_tensors, shapes, strict=True)}
        return v1.lite.TFLiteConverter.from_saved_model(
            str(path), input_shapes=arrays, tag_set=set(tags), signature_key=signature)

    with graph.as_default():
        variables = list(v1.global_variables()) or _checkpoint_variables(path)
    note = f"loaded and converted through the tf.compat.v1 graph path: {why}"
    return LoadedModel(
        inputs, [k for k, _ in outs], call, make_converter,
        trace=lambda shapes: GraphView(SignatureGraph(graph, out_tensors), in_tensors, out_tensors),
        source=GraphSource(session, variables), conversion_path=GRAPH_PATH, notes=[note],
    )
