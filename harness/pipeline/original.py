"""A .tflite held to its original (`original = PATH`): the original's inputs must fit it.

The references and evaluation inputs come from the original model (prepared by a worker
like any model's); the .tflite is then fed those inputs. Before anything is measured this
checks, from the .tflite's own tensors, that it takes as many inputs as the original, of the
same sizes, and says how they are matched: by name when the .tflite's signature (or tensor)
names are the original's, else by position, which the row notes. A misfit is the model's
`input_error` row, not a runner crash.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.core import statuses
from harness.pipeline.artifacts import Prepared


def tflite_input_names(info) -> list[str]:
    """Input names as the runner sees them: signature names when there is one signature, else tensor names."""
    if len(info.signatures) == 1:
        by_index = {idx: name for name, idx in info.signatures[0].inputs.items()}
        return [by_index.get(t.index, t.name) for t in info.inputs]
    return [t.name for t in info.inputs]


def missing_io(info: Any, path: Path) -> str | None:
    """Why a valid .tflite cannot be run (its main subgraph lists no inputs or no outputs), or None."""
    missing = [side for side, ts in (("inputs", info.inputs), ("outputs", info.outputs)) if not ts]
    if not missing:
        return None
    return f"{path}: its main subgraph lists no {' and no '.join(missing)}, so it cannot be fed or measured; re-export the model"


def fit_to_tflite(m: ModelSpec, p: Prepared) -> Prepared:
    """P (the original's preparation) for the .tflite M, or M's failure saying why it does not fit;
    any other model's preparation (or a failed one) as it is."""
    if m.kind != "tflite" or not p.ok:
        return p
    from harness.tflite.file import TFLiteFormatError, read_tflite

    try:
        info = read_tflite(m.path)
    except (TFLiteFormatError, OSError) as exc:
        return Prepared(m, False, str(exc), "load_error")
    ours = p.meta.inputs
    names = tflite_input_names(info)
    where = f"{m.name}: {m.path.name} and its original {m.original}"
    if len(ours) != len(info.inputs):
        return Prepared(m, False, f"{where} differ: the .tflite takes {len(info.inputs)} input(s) {names}, the "
                                  f"original {len(ours)} {[i.name for i in ours]}; give the original it was made from",
                        statuses.INPUT_MISMATCH)
    want = [i.name for i in ours]
    by_name = all(n in names for n in want)
    tensors = [info.inputs[names.index(n)] for n in want] if by_name else list(info.inputs)
    for spec, t in zip(ours, tensors, strict=True):
        size = math.prod(spec.shape[1:])
        theirs = [d for d in (t.shape_signature or t.shape)][1:]
        if all(d > 0 for d in theirs) and math.prod(theirs) != size:
            return Prepared(m, False, f"{where} differ: input {spec.name!r} is {list(spec.shape)} in the original, "
                                      f"{list(t.shape)} in the .tflite ({t.name!r}); set input_shapes to the .tflite's",
                            statuses.INPUT_MISMATCH)
    notes = list(p.meta.notes)
    notes.append(f"drift against the original {m.original} ({m.original_kind})")
    if not by_name and len(want) > 1:
        notes.append(f"inputs matched by position: the .tflite names them {names}, the original {want}")
    return replace(p, model=m, meta=replace(p.meta, notes=notes))
