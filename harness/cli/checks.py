"""What `run` checks before any work starts, beyond `api.make_campaign`/`open_run`: the run a
--resume folder names, input_shapes against a .tflite's inputs. Each failure is a UsageError
naming the thing and the fix."""

from __future__ import annotations

from pathlib import Path


def run_in_folder(db, run: str) -> str:
    """RUN as a run id: the id itself, or the run whose --out folder RUN names (what a user has at hand)."""
    folder = Path(run)
    if run == "latest" or not folder.is_dir():
        return run
    from harness.core.errors import UsageError

    want = folder.resolve()
    for info in db.runs(limit=1_000_000):
        if info.out_dir and Path(info.out_dir).resolve() == want:
            return info.id
    raise UsageError(f"--resume {run}: no run in {db.path} wrote to this folder; give its run id, "
                     "or the --store it was run with")


def check_input_shapes(c) -> None:
    """`input_shapes` naming an input the model lacks is a usage error, found before any work where
    the inputs can be read without TensorFlow (a .tflite); other models' rows say the same."""
    from harness.core.errors import UsageError
    from harness.pipeline.original import tflite_input_names
    from harness.tflite.file import TFLiteFormatError, read_tflite

    for m in c.models:
        if m.kind != "tflite" or not m.input_shapes or m.original is not None:
            continue
        try:
            names = tflite_input_names(read_tflite(m.path))
        except (TFLiteFormatError, OSError):
            continue  # the model's row says what is wrong with the file
        unknown = sorted(set(m.input_shapes) - set(names))
        if unknown:
            raise UsageError(f"{m.name}: input_shapes names {unknown} but the model's inputs are {names}; "
                             "use the input names")
