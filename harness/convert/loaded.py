"""What every model source hands the converter worker: input specs, a reference callable,
a converter factory. Kept apart from `sources.py` so that other loaders (the tf.compat.v1
graph path in `graph_saved_model.py`) build the same objects without importing it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    # For `check`: trace(shapes) -> ConcreteFunction whose graph lists the model's TF ops
    # (None for JAX, whose graph is one XlaCallModule); `source` is the loaded object.
    trace: Callable[[list[tuple[int, ...]]], Any] | None = None
    source: Any = field(default=None, repr=False)
    # How the model was loaded and converted when it is not the usual way (e.g. "tf_compat_v1_graph"),
    # and why: both reach every row of the model.
    conversion_path: str | None = None
    notes: list[str] = field(default_factory=list)
