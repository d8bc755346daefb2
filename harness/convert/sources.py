"""Model sources: load an original model, describe its inputs, run it for reference outputs.

This module imports TensorFlow and so runs only inside converter worker processes.
Each source yields the same things: input specs, a callable for reference outputs
(one sample at a time, batch 1, like the measured artifact) and a TFLiteConverter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from harness.convert.keras_export import ExportedConverters
from harness.convert.loaded import InputSpec, LoadedModel, SourceError

__all__ = ["InputSpec", "LoadedModel", "SourceError", "load_model"]


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


SAFE_MODE_HINT = ("it holds Python code (a Lambda layer) that Keras' safe_mode does not run; if you trust the "
                  "file, set trusted = true for this model in the campaign ([[models]] ... trusted = true)")


def load_keras(path: Path, trusted: bool = False) -> LoadedModel:
    """Load with Keras' safe_mode on, so a downloaded file cannot run code, unless the campaign
    marks this one model `trusted = true`."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not trusted)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        msg = " ".join(str(exc).split())[:300]
        if "safe_mode" in msg and not trusted:
            raise SourceError(f"{path.name}: {SAFE_MODE_HINT}") from None
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

    try:
        st = path.stat()
        identity = repr((str(path.resolve()), st.st_mtime_ns, st.st_size))
    except OSError:
        identity = repr((str(path), id(model)))
    exports = ExportedConverters(identity)
    wrappers: dict[tuple, Any] = {}  # input shapes -> fixed-shape wrapper model, built once

    def make_converter(shapes: list[tuple[int, ...]]):
        if all(None not in s.shape for s in inputs) or any(len(shape) == 0 for shape in shapes):
            return exports.converter(model, None)
        # Unknown dimensions (usually the batch): convert a wrapper whose inputs have the fixed
        # shapes (Keras 3 RNNs need a fixed batch). Converting a traced concrete function
        # instead left the weights as unfrozen resource variables: READ_VARIABLE in the graph,
        # outputs that ignore the input in fp32, and a crash in int8 calibration.
        key = tuple(map(tuple, shapes))
        if key not in wrappers:
            fixed_inputs = [
                keras.Input(shape=shape[1:], batch_size=shape[0], dtype=s.dtype, name=s.name)
                for s, shape in zip(inputs, shapes, strict=True)
            ]
            outputs = model(fixed_inputs if len(fixed_inputs) > 1 else fixed_inputs[0], training=False)
            wrappers[key] = keras.Model(fixed_inputs, outputs)
        return exports.converter(wrappers[key], key)

    def trace(shapes: list[tuple[int, ...]]):
        specs = [
            tf.TensorSpec(shape, tf.as_dtype(s.dtype), name=s.name)
            for s, shape in zip(inputs, shapes, strict=True)
        ]
        fn = tf.function(lambda *args: model(list(args) if len(args) > 1 else args[0], training=False))
        return fn.get_concrete_function(*specs)

    # Named as the exported signature names them: a dict's keys (sorted, as `call` orders them),
    # else output_0, output_1, ... (dict outputs were matched by position, in another order)
    structure = getattr(model, "output", None)
    names = _output_names(structure) if isinstance(structure, dict) else [f"output_{i}" for i in range(len(model.outputs))]
    return LoadedModel(inputs, names, call, make_converter, trace=trace, source=model)


def load_saved_model(path: Path, signature: str) -> LoadedModel:
    """TF2's object loader; TF1-style SavedModels, and those it cannot revive, go through the
    tf.compat.v1 graph path (`graph_saved_model.py`), and their rows say so."""
    from harness.convert.graph_saved_model import is_tf1_style, load_graph_saved_model

    if is_tf1_style(path):
        return load_graph_saved_model(path, signature, "a TF1-style SavedModel (no object graph)")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(str(exc).split())[:300]
        if not (path / "variables").is_dir() and "variables" in msg:
            raise SourceError(f"{path}: the SavedModel has no variables/ folder; copy the whole "
                              "directory or re-export it with tf.saved_model.save") from None
        # e.g. a Keras 2 model saved with its optimizer: "'_UserObject' object has no attribute 'add_slot'"
        return load_graph_saved_model(path, signature, f"TF2's object loader failed ({type(exc).__name__}: {msg})")
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

    model = LoadedModel(inputs, out_names, call, make_converter, feeds_dict=True,
                        trace=lambda shapes: fn, source=loaded)
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

    return LoadedModel(inputs, probe_names, call, make_converter, trace=lambda shapes: cf, source=cf)


# --------------------------------------------------------------------------- JAX models
# `entry()` returns (fn, params, input_specs): fn(params, *inputs) -> array (or tuple/dict of
# arrays); input_specs is a list of (shape, dtype), (name, shape, dtype) or
# jax.ShapeDtypeStruct, or a dict {name: spec}. Reference outputs come from JAX itself; the
# converter is TFLiteConverter.experimental_from_jax, falling back to jax2tf + a concrete
# function when that API is missing or fails.

def _jax_specs(raw: Any, where: str) -> list[InputSpec]:
    items = list(raw.items()) if isinstance(raw, dict) else list(enumerate(raw or []))
    if not items:
        raise SourceError(f"{where}: input_specs is empty; give a list of (shape, dtype)")
    specs = []
    for key, spec in items:
        name = key if isinstance(key, str) else ("x" if len(items) == 1 else f"x{key}")
        if hasattr(spec, "shape") and hasattr(spec, "dtype"):
            shape, dtype = spec.shape, spec.dtype
        elif isinstance(spec, (tuple, list)) and len(spec) == 3 and isinstance(spec[0], str):
            name, shape, dtype = spec
        elif isinstance(spec, (tuple, list)) and len(spec) == 2:
            shape, dtype = spec
        else:
            raise SourceError(f"{where}: input spec {spec!r} is not (shape, dtype) or jax.ShapeDtypeStruct")
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise SourceError(f"{where}: input {name!r} needs a fixed shape, got {shape!r}") from None
        specs.append(InputSpec(name=str(name), shape=dims, dtype=np.dtype(dtype).name))
    return specs


def load_jax(path: Path, entry: str) -> LoadedModel:
    where = f"{path}:{entry}"
    try:
        import jax
    except ImportError:
        raise SourceError(f"{where}: JAX models need jax; pip install jax jaxlib") from None
    got = _import_entry(path, entry)()
    if not (isinstance(got, (tuple, list)) and len(got) == 3 and callable(got[0])):
        raise SourceError(f"{where}: must return (fn, params, input_specs), got {type(got).__name__}")
    fn, params, raw_specs = got
    inputs = _jax_specs(raw_specs, where)
    bound = jax.jit(lambda *xs: fn(params, *xs))

    def call(arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = bound(*[np.asarray(a, dtype=s.dtype) for s, a in zip(inputs, arrays, strict=True)])
        return _outputs_list(out)[1]

    probe = jax.eval_shape(bound, *[jax.ShapeDtypeStruct(s.shape, s.dtype) for s in inputs])
    names = _output_names(probe)

    def make_converter(shapes: list[tuple[int, ...]]):
        return _JaxConverter(fn, params, inputs, shapes)

    return LoadedModel(inputs, names, call, make_converter, source=(fn, params))


class _JaxConverter:
    """Looks like a TFLiteConverter: options are set on it, `convert()` picks the route.

    First `TFLiteConverter.experimental_from_jax`; if it is missing or raises, `jax2tf`
    (jax.experimental.jax2tf) with a concrete function. `route` says which one worked.
    """

    def __init__(self, fn, params, inputs: list[InputSpec], shapes: list[tuple[int, ...]]):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_inputs", inputs)
        object.__setattr__(self, "_shapes", [tuple(s) for s in shapes] or [s.shape for s in inputs])
        object.__setattr__(self, "_attrs", {})
        object.__setattr__(self, "route", None)
        object.__setattr__(self, "target_spec", _TargetSpec())

    def __setattr__(self, key, value):
        self._attrs[key] = value

    def __getattr__(self, key):
        try:
            return self.__dict__["_attrs"][key]
        except KeyError:
            raise AttributeError(key) from None

    def _apply(self, converter) -> None:
        for key, value in self._attrs.items():
            setattr(converter, key, value)
        converter.target_spec.supported_ops = self.target_spec.supported_ops
        if self.target_spec.supported_types:
            converter.target_spec.supported_types = self.target_spec.supported_types

    def _from_jax(self):
        fn, params = self._fn, self._params
        bound = lambda *xs: fn(params, *xs)  # noqa: E731
        example = [
            (s.name, np.zeros(shape, dtype=s.dtype)) for s, shape in zip(self._inputs, self._shapes, strict=True)
        ]
        return tf.lite.TFLiteConverter.experimental_from_jax([bound], [example])

    def _from_jax2tf(self):
        try:
            from jax.experimental import jax2tf
        except ImportError as exc:
            raise SourceError(f"jax2tf is not available in this JAX ({exc})") from None
        fn, params = self._fn, self._params
        specs = [tf.TensorSpec(shape, tf.as_dtype(s.dtype), name=s.name)
                 for s, shape in zip(self._inputs, self._shapes, strict=True)]
        tf_fn = tf.function(jax2tf.convert(lambda *xs: fn(params, *xs)),
                            input_signature=specs, autograph=False)
        cf = tf_fn.get_concrete_function()
        return tf.lite.TFLiteConverter.from_concrete_functions([cf], tf_fn)

    def convert(self):
        errors = []
        for route, make in (("experimental_from_jax", self._from_jax), ("jax2tf", self._from_jax2tf)):
            if route == "experimental_from_jax" and not hasattr(tf.lite.TFLiteConverter, "experimental_from_jax"):
                errors.append("experimental_from_jax: absent from this TensorFlow")
                continue
            try:
                converter = make()
                self._apply(converter)
                blob = converter.convert()
            except SourceError as exc:
                errors.append(f"{route}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - try the other route, then report both
                errors.append(f"{route}: {type(exc).__name__}: {' '.join(str(exc).split())[:1500]}")
                continue
            object.__setattr__(self, "route", route)
            return blob
        raise RuntimeError("JAX conversion failed by every route; " + " | ".join(errors))


class _TargetSpec:
    def __init__(self):
        self.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS}
        self.supported_types = []


def load_model(kind: str, path: Path, entry: str | None, signature: str, trusted: bool = False) -> LoadedModel:
    """The model, loaded; a `file.py:function` (concrete_function, jax) runs the user's code by design."""
    if kind == "keras":
        return load_keras(path, trusted)
    if kind == "saved_model":
        return load_saved_model(path, signature)
    if kind == "concrete_function":
        assert entry is not None
        return load_concrete_function(path, entry)
    if kind == "jax":
        assert entry is not None
        return load_jax(path, entry)
    raise SourceError(f"model kind {kind!r} is not converted by this worker")
