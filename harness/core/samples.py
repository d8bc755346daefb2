"""Sample data: evaluation inputs, labels and representative (calibration) data.

Files are .npz (one array per model input, keyed by input name, or any single array
for a one-input model; optional integer `labels`) or .npy (one input). The first
axis is the sample; each sample is fed with batch 1. `numpy.load` never allows
pickles: a data file must not be able to run code.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LABEL_KEYS = ("labels", "label", "y")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class SampleError(ValueError):
    """Sample data does not fit the model; the message says which file and how."""


def load_arrays(path: Path, input_names: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Arrays for each input (in `input_names` order) and labels when present."""
    from harness.core.sample_limits import check_sample_size

    too_big = check_sample_size(Path(path))
    if too_big:
        raise SampleError(too_big)
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise SampleError(f"{path}: holds pickled objects, which are never loaded; save plain arrays") from None
        raise SampleError(f"{path}: not a NumPy .npy/.npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SampleError(f"{path}: cannot read it as .npy/.npz ({exc})") from None
    if isinstance(data, np.ndarray):
        if len(input_names) != 1:
            raise SampleError(f"{path}: a .npy holds one array but the model has {len(input_names)} inputs; use .npz keyed by input name")
        return [data], None
    try:
        arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise SampleError(f"{path}: holds pickled objects, which are never loaded; save plain arrays ({exc})") from None
        raise SampleError(f"{path}: a member is not a valid .npy array ({_one_line(exc)}); save it again") from None
    # NotImplementedError: zipfile raises it for a damaged .npz whose compression method it does not know
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error, NotImplementedError) as exc:
        # a damaged zip: members that do not match the directory, bad CRCs, truncated data
        raise SampleError(f"{path}: cannot read it as .npz ({_one_line(exc)}); save it again") from None
    finally:
        data.close()
    bad = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if bad:
        raise SampleError(f"{path}: member(s) {bad} are not .npy arrays; save the file with numpy.savez")
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays), None)
    if all(n in arrays for n in input_names):
        picked = [arrays[n] for n in input_names]
    elif len(input_names) == 1 and len(arrays) == 1:
        picked = list(arrays.values())
    elif len(input_names) == 1 and "x" in arrays:
        picked = [arrays["x"]]
    else:
        raise SampleError(
            f"{path}: has arrays {sorted(arrays)} but the model's inputs are {list(input_names)}; key the arrays by input name"
        )
    counts = {len(a) if a.ndim else 0 for a in picked}
    if len(counts) != 1 or 0 in counts:
        raise SampleError(f"{path}: every input array needs the same number of samples on its first axis")
    if labels is not None:
        if labels.ndim != 1 or len(labels) != len(picked[0]) or not np.issubdtype(labels.dtype, np.integer):
            raise SampleError(
                f"{path}: labels must be integers, one per sample ({len(picked[0])}), got shape {labels.shape} {labels.dtype}"
            )
    return picked, labels


def drop_batch_axis(
    names: Sequence[str], model_shapes: Sequence[Sequence[int | None]], arrays: list[np.ndarray], what: str = "samples",
) -> tuple[list[np.ndarray], list[str]]:
    """Arrays of stacked batch-1 inputs, (N, 1, *rest) for a model taking (1, *rest), read as (N, *rest).

    `np.stack` of N model inputs gives exactly that shape; it is unambiguous when the array
    has one axis more than the input, that axis is 1 and the model's batch is 1 or unknown
    (and every known dimension after it matches). Returns the arrays and one note per input
    so treated, for the rows to say so."""
    out, notes = [], []
    for name, shape, arr in zip(names, model_shapes, arrays, strict=True):
        shape = list(shape)
        if (shape and arr.ndim == len(shape) + 1 and arr.shape[1] == 1 and shape[0] in (None, 1)
                and all(d is None or d == a for d, a in zip(shape[1:], arr.shape[2:], strict=True))):
            arr = arr[:, 0]
            notes.append(f"{what} for input {name!r} have shape {(len(arr), 1, *arr.shape[1:])}: read as "
                         f"{len(arr)} samples of shape {_pretty([1, *arr.shape[1:]])} (each sample kept its batch axis)")
        out.append(arr)
    return out, notes


def _pretty(shape: Sequence[int | None]) -> str:
    """A shape as Python prints a tuple, with None for unknown dimensions: (None, 28, 28, 1)."""
    dims = [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _per_sample(shape: Sequence[int | None]) -> str:
    """The sample array shape a model input asks for: (N, 28, 28, 1)."""
    return _pretty(["N", *list(shape)[1:]])  # type: ignore[list-item]


def check_configured(
    names: Sequence[str], shapes: Sequence[Sequence[int | None]], configured: dict[str, tuple[int, ...]], model_label: str
) -> None:
    """`input_shapes` may only fill the model's unknown (None) dimensions.

    A configured size that contradicts a fixed one used to reach Keras (a "layer is
    incompatible" error with a truncated shape) or, for a .tflite, the interpreter, which
    resizes the input and may run a model on sizes it was never built for."""
    unknown = sorted(set(configured) - set(names))
    if unknown:
        raise SampleError(
            f"{model_label}: input_shapes names {unknown} but the model's inputs are {list(names)}; use the input names"
        )
    for name, shape in zip(names, shapes, strict=True):
        if name not in configured:
            continue
        given = tuple(configured[name])
        model = list(shape)
        if len(given) != len(model) or any(m is not None and m != g for m, g in list(zip(model, given, strict=True))[1:]):
            fixed = [1, *(1 if d is None else d for d in model[1:])]
            raise SampleError(
                f"{model_label}: input_shapes gives input {name!r} shape {list(given)}; the model takes {_pretty(model)}: "
                f"set only its unknown (None) dimensions, e.g. {fixed} with real sizes"
            )


def check_sample_shapes(
    names: Sequence[str],
    model_shapes: Sequence[Sequence[int | None]],
    resolved: Sequence[Sequence[int]],
    arrays: Sequence[np.ndarray],
    model_label: str,
    what: str = "samples",
) -> None:
    """Every sample array must be (N, *resolved[1:]): the batch axis is free, nothing else is.

    The measured artifact is fed one sample at a time and the interpreter resizes its input
    to whatever it gets, so a wrong size must be caught here, before references are computed
    or calibration runs, or it surfaces later as a converter or Keras error that does not
    name the file (or, for a fully convolutional .tflite, as plausible numbers)."""
    for i, (name, model, want) in enumerate(zip(names, model_shapes, resolved, strict=True)):
        arr = arrays[i]
        if arr.ndim == len(want) and tuple(arr.shape[1:]) == tuple(want[1:]):
            continue
        model = list(model)
        from_config = len(model) == len(want) and list(want[1:]) != [d for d in model[1:]]
        takes = _pretty(model) + (f" with input_shapes {list(want)}" if from_config else "")
        if arr.ndim != len(want):
            fix = f"give arrays of shape {_per_sample(want)}"
        elif all(m is None for m, a, w in zip(model[1:], arr.shape[1:], want[1:], strict=False) if a != w):
            fix = "resize the samples or change input_shapes"
        else:
            fix = f"resize the samples to {_per_sample(want)}"
        raise SampleError(f"{model_label}: {what} for input {name!r} have shape {arr.shape}; the model takes {takes}: {fix}")


def resolve_shapes(
    names: Sequence[str],
    shapes: Sequence[Sequence[int | None]],
    configured: dict[str, tuple[int, ...]],
    samples: list[np.ndarray] | None,
    model_label: str,
) -> list[tuple[int, ...]]:
    """Fixed (batch 1) input shapes: config first, then the model, then the sample data.

    Also checks that config and samples agree with the model's known dimensions (all but
    the batch axis), so a misfit fails as the model's own one-line reason before any work."""
    check_configured(names, shapes, configured, model_label)
    out = []
    for i, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        if name in configured:
            out.append(tuple(configured[name]))
            continue
        dims = list(shape)
        if dims and dims[0] is None:
            dims[0] = 1
        if samples is not None and samples[i].ndim != len(dims):
            check_sample_shapes([name], [shape], [dims], [samples[i]], model_label)
        if None in dims and samples is not None:
            per_sample = samples[i].shape[1:]
            dims = [1, *(s if d is None else d for d, s in zip(dims[1:], per_sample, strict=True))]
        if None in dims:
            pretty = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
            example = "[" + ", ".join("1" if d is None else str(d) for d in [1, *list(shape)[1:]]) + "]"
            raise SampleError(
                f"{model_label}: input {name!r} has unknown dimensions {pretty}; "
                f"set input_shapes = {{ {name} = {example} }} (with real sizes) in the campaign"
            )
        out.append(tuple(int(d) for d in dims))
    if samples is not None:
        check_sample_shapes(names, shapes, out, samples, model_label)
    return out


def _cast_problem(arr: np.ndarray, target: np.dtype) -> str | None:
    """Why ARR cannot become TARGET without changing its values, or None when it can.

    `astype` never complains: complex drops its imaginary part, 300 wraps to 44 in uint8,
    1e39 becomes inf in float32. Those inputs would be measured and compared as if valid."""
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        return f"are {arr.dtype}, not numbers"
    if np.issubdtype(arr.dtype, np.complexfloating) and not np.issubdtype(target, np.complexfloating):
        return f"are complex ({arr.dtype}); the model takes {target} (the imaginary part would be dropped)"
    if target == np.bool_:
        if arr.dtype != np.bool_ and not (np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()):
            return f"are {arr.dtype}; the model takes bool (give booleans or 0/1 integers)"
        return None
    if np.issubdtype(target, np.integer):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            return f"needs integer samples ({target}), got {arr.dtype}"
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            return f"hold values {arr.min()}..{arr.max()}, outside {target}'s {info.min}..{info.max}"
        return None
    narrowing = np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > target.itemsize
    if np.issubdtype(target, np.floating) and narrowing and arr.size:
        with np.errstate(over="ignore"):
            if not np.isfinite(arr[np.isfinite(arr)].astype(target)).all():
                return f"hold values too large for {target} (they would become inf)"
    return None


def check_fit(
    path_label: str, arrays: list[np.ndarray], names: Sequence[str], shapes: Sequence[tuple[int, ...]], dtypes: Sequence[str]
) -> list[np.ndarray]:
    """Each array must be (N, *shape[1:]) and safely castable to the input dtype; returns cast arrays."""
    out = []
    for arr, name, shape, dtype in zip(arrays, names, shapes, dtypes, strict=True):
        want = tuple(shape[1:])
        if arr.ndim != len(shape) or tuple(arr.shape[1:]) != want:
            raise SampleError(
                f"{path_label}: samples for input {name!r} have shape {arr.shape}; the model takes "
                f"{_pretty(shape)}: resize the samples to {_per_sample(shape)}"
            )
        target = np.dtype(dtype)
        problem = _cast_problem(arr, target)
        if problem is not None:
            if problem.startswith("needs"):
                raise SampleError(f"{path_label}: input {name!r} {problem}")
            raise SampleError(f"{path_label}: samples for input {name!r} {problem}")
        out.append(arr.astype(target, copy=False))
    return out


def random_inputs(
    names: Sequence[str], shapes: Sequence[tuple[int, ...]], dtypes: Sequence[str], count: int, seed: int, model_label: str
) -> list[np.ndarray]:
    """Seeded random data within the valid range: floats in [0, 1), booleans; no integers.

    Integer inputs are usually token ids or indices whose valid range only the user knows,
    so they need sample data rather than a guess that may index out of bounds.
    """
    rng = np.random.default_rng(seed)
    out = []
    for name, shape, dtype in zip(names, shapes, dtypes, strict=True):
        target = np.dtype(dtype)
        if np.issubdtype(target, np.floating):
            out.append(rng.random((count, *shape[1:]), dtype=np.float32).astype(target))
        elif target == np.bool_:
            out.append(rng.random((count, *shape[1:])) < 0.5)
        else:
            raise SampleError(
                f"{model_label}: input {name!r} is {dtype}, whose valid values only you know; give samples = \"file.npz\""
            )
    return out
