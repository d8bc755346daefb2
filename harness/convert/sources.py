"""Model sources: load an original model, describe its inputs, run it for reference outputs.

This module imports TensorFlow and so runs only inside converter worker processes.
Each source yields the same things: input specs, a callable for reference outputs
(one sample at a time, batch 1, like the measured artifact) and a TFLiteConverter.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf


class SourceError(Exception):
    """The model cannot be loaded or fed as configured; message is one line with the fix."""


@dataclass
class InputSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class LoadedModel:
    inputs: list[InputSpec]
    output_names: list[str]
    call: Callable[[list[np.ndarray]], list[np.ndarray]]
    make_converter: Callable[[list[tuple[int, ...]]], Any]
    feeds_dict: bool = False  # representative data as {name: array} (SavedModel signatures)


def _spec_of(name: str, spec: tf.TensorSpec) -> InputSpec:
    dims = tuple(None if d is None else int(d) for d in spec.shape.as_list())
    return InputSpec(name=name, shape=dims, dtype=spec.dtype.name)


def _output_names(out: Any) -> list[str]:
    """Names as TFLite's signature will call them: dict keys, else output_0, output_1, ..."""
    if isinstance(out, dict):
        return sorted(out)
    if isinstance(out, (list, tuple)):
        return [f"output_{i}" for i in range(len(out))]
    return ["output_0"]


def _outputs_list(out: Any) -> tuple[list[str], list[np.ndarray]]:
    names = _output_names(out)
    if isinstance(out, dict):
        return names, [np.asarray(out[k]) for k in names]
    if isinstance(out, (list, tuple)):
        return names, [np.asarray(o) for o in out]
    return names, [np.asarray(out)]


def load_keras(path: Path) -> LoadedModel:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        msg = " ".join(str(exc).split())[:300]
        raise SourceError(f"{path.name}: not a loadable Keras model ({msg}); re-save it with model.save()") from None
    inputs = []
    for i, t in enumerate(model.inputs):
        name = getattr(t, "name", None) or f"input_{i}"
        name = name.split(":")[0]
        dims = tuple(None if d is None else int(d) for d in t.shape)
        inputs.append(InputSpec(name=name, shape=dims, dtype=str(t.dtype).replace("tf.", "")))

    def call(arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = model(arrays if len(arrays) > 1 else arrays[0], training=False)
        return _outputs_list(out)[1]

    def make_converter(shapes: list[tuple[int, ...]]):
        if all(None not in s.shape for s in inputs):
            return tf.lite.TFLiteConverter.from_keras_model(model)
        # Unknown dimensions: trace with the fixed shapes (Keras 3 RNNs need a fixed batch).
        specs = [
            tf.TensorSpec(shape, tf.as_dtype(s.dtype), name=s.name)
            for s, shape in zip(inputs, shapes, strict=True)
        ]
        fn = tf.function(lambda *args: model(list(args) if len(args) > 1 else args[0], training=False))
        cf = fn.get_concrete_function(*specs)
        return tf.lite.TFLiteConverter.from_concrete_functions([cf], model)

    probe = model.outputs
    names = [f"output_{i}" for i in range(len(probe))]
    return LoadedModel(inputs, names, call, make_converter)


def load_saved_model(path: Path, signature: str) -> LoadedModel:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(str(exc).split())[:300]
        raise SourceError(f"{path}: cannot load the SavedModel ({msg})") from None
    sigs = list(loaded.signatures.keys())
    if signature not in loaded.signatures:
        have = ", ".join(sigs) or "none"
        raise SourceError(
            f"{path}: SavedModel has no signature {signature!r} (it has: {have}); set signature = \"...\""
        )
    fn = loaded.signatures[signature]
    _, kw = fn.structured_input_signature
    inputs = [_spec_of(name, spec) for name, spec in sorted(kw.items())]
    out_names = sorted(fn.structured_outputs)

    def call(arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {s.name: tf.constant(a, dtype=s.dtype) for s, a in zip(inputs, arrays, strict=True)}
        out = fn(**feed)
        return [np.asarray(out[k]) for k in out_names]

    def make_converter(shapes: list[tuple[int, ...]]):
        return tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[signature])

    model = LoadedModel(inputs, out_names, call, make_converter, feeds_dict=True)
    model._keep = loaded  # type: ignore[attr-defined]  # keep variables alive
    return model


def _import_entry(path: Path, entry: str):
    module_name = f"_harness_entry_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SourceError(f"{path}: cannot import this file as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        raise SourceError(f"{path}: importing it failed ({type(exc).__name__}: {exc})") from None
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, entry):
        raise SourceError(f"{path}: has no function {entry!r}; give path/to/file.py:function")
    return getattr(module, entry)


def load_concrete_function(path: Path, entry: str) -> LoadedModel:
    """`entry()` returns a tf.function with an input signature, or a ConcreteFunction."""
    obj = _import_entry(path, entry)()
    if isinstance(obj, tf.types.experimental.ConcreteFunction):
        cf = obj
    elif hasattr(obj, "get_concrete_function"):
        try:
            cf = obj.get_concrete_function()
        except (TypeError, ValueError) as exc:
            raise SourceError(
                f"{path}:{entry}: the tf.function needs an input_signature ({exc})"
            ) from None
    else:
        raise SourceError(
            f"{path}:{entry}: must return a tf.function with input_signature or a ConcreteFunction, got {type(obj).__name__}"
        )
    args, kwargs = cf.structured_input_signature
    specs = [(s.name or f"input_{i}", s) for i, s in enumerate(args)] + sorted(kwargs.items())
    inputs = [_spec_of(name, spec) for name, spec in specs]

    def call(arrays: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [tf.constant(a, dtype=s.dtype) for s, a in zip(inputs, arrays, strict=True)]
        return _outputs_list(cf(*tensors[: len(args)], **{s.name: t for s, t in zip(inputs[len(args):], tensors[len(args):], strict=True)}))[1]

    probe_names = _output_names(cf.structured_outputs)

    def make_converter(shapes: list[tuple[int, ...]]):
        return tf.lite.TFLiteConverter.from_concrete_functions([cf], obj)

    return LoadedModel(inputs, probe_names, call, make_converter)


def load_model(kind: str, path: Path, entry: str | None, signature: str) -> LoadedModel:
    if kind == "keras":
        return load_keras(path)
    if kind == "saved_model":
        return load_saved_model(path, signature)
    if kind == "concrete_function":
        assert entry is not None
        return load_concrete_function(path, entry)
    raise SourceError(f"model kind {kind!r} is not converted by this worker")
