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


def resolve_shapes(
    names: Sequence[str],
    shapes: Sequence[Sequence[int | None]],
    configured: dict[str, tuple[int, ...]],
    samples: list[np.ndarray] | None,
    model_label: str,
) -> list[tuple[int, ...]]:
    """Fixed (batch 1) input shapes: config first, then the model, then the sample data."""
    out = []
    for i, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        if name in configured:
            out.append(tuple(configured[name]))
            continue
        dims = list(shape)
        if dims and dims[0] is None:
            dims[0] = 1
        if None in dims and samples is not None:
            per_sample = samples[i].shape[1:]
            if len(per_sample) == len(dims) - 1:
                dims = [1, *per_sample]
        if None in dims:
            pretty = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
            example = "[" + ", ".join("1" if d is None else str(d) for d in [1, *list(shape)[1:]]) + "]"
            raise SampleError(
                f"{model_label}: input {name!r} has unknown dimensions {pretty}; "
                f"set input_shapes = {{ {name} = {example} }} (with real sizes) in the campaign"
            )
        out.append(tuple(int(d) for d in dims))
    return out


def check_fit(
    path_label: str, arrays: list[np.ndarray], names: Sequence[str], shapes: Sequence[tuple[int, ...]], dtypes: Sequence[str]
) -> list[np.ndarray]:
    """Each array must be (N, *shape[1:]) and castable to the input dtype; returns cast arrays."""
    out = []
    for arr, name, shape, dtype in zip(arrays, names, shapes, dtypes, strict=True):
        want = tuple(shape[1:])
        if tuple(arr.shape[1:]) != want:
            raise SampleError(
                f"{path_label}: input {name!r} samples have shape {tuple(arr.shape[1:])} per sample, the model wants {want}"
            )
        target = np.dtype(dtype)
        if np.issubdtype(target, np.integer) and not np.issubdtype(arr.dtype, np.integer):
            raise SampleError(f"{path_label}: input {name!r} needs integer samples ({dtype}), got {arr.dtype}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise SampleError(f"{path_label}: input {name!r} samples are {arr.dtype}, not numbers")
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
