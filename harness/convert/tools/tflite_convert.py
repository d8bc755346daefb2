"""The converter's command-line tool, `tflite_convert`, as a tool (worker side, TensorFlow).

Runs the real console script installed with TensorFlow, with the flag set's `args`, inside a
converter worker (so the pool's crash isolation, time limit, cache and failure classes apply,
and the worker's TensorFlow import serves it too). It is given the SavedModel the harness
already exports for a Keras model (`keras_export.py`): `tflite_convert --keras_model_file` fails under Keras 3 ("'NoneType'
object is not callable" in its keras_deps loader). The flags it owns here (the output file
and the model path) are refused when the campaign is read (core/flag_sets.py).
"""

from __future__ import annotations

import contextlib
import io
import runpy
import shutil
import sys
import time
from pathlib import Path
from typing import Any

NAME = "tflite_convert"
OWNED_FLAGS = ("--output_file", "--saved_model_dir", "--keras_model_file", "--graph_def_file")


class ToolMissing(RuntimeError):
    """The console script is not installed."""


class ToolFailed(RuntimeError):
    """The console script exited non-zero (its last error line is the reason)."""


def script() -> Path:
    """The console script next to this interpreter (a venv's bin/), else the one on PATH."""
    here = Path(sys.executable).parent / "tflite_convert"
    found = here if here.is_file() else (Path(p) if (p := shutil.which("tflite_convert")) else None)
    if found is None:
        raise ToolMissing("tflite_convert is not installed (it comes with TensorFlow: pip install tensorflow)")
    return found


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return dist_version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


def saved_model_dir(model: Any, shapes: list[tuple[int, ...]], kind: str, path: str) -> str:
    """The SavedModel to give the tool: the model itself, or the harness's export of a Keras model."""
    if kind == "saved_model":
        return path
    converter = model.make_converter(shapes)
    folder = getattr(converter, "saved_model_dir", None)
    if not folder:
        raise ValueError(f"tflite_convert needs a SavedModel; a {kind} model of this shape converts "
                         "only through the Python API (use a converter flag set)")
    return str(folder)


def run_script(args: list[str]) -> tuple[int, str]:
    """Run the installed console script with ARGS in this process: (exit status, what it wrote).

    In the worker, not as a child: the worker has imported TensorFlow already, and a child
    would import it again (~7 s a row). The script's own code runs (`runpy` on the file), so
    its argument parser, checks and exit statuses are the tool's; an exception it raises is
    status 1 with the exception as its last line, as its traceback would end. A crash or a
    hang is the pool's, as for any conversion in a worker."""
    path = script()
    said = io.StringIO()
    argv = sys.argv
    sys.argv = [str(path), *args]
    code = 0
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
                if isinstance(done.code, str):
                    print(done.code, file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - the tool's failure, reported as its exit
                code = 1
                print(f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__, file=sys.stderr)
    finally:
        sys.argv = argv
    return code, said.getvalue()


def make(job: dict, loaded: tuple[Any, list[tuple[int, ...]]] | None = None) -> dict:
    """Convert JOB's model (LOADED: the worker's model and input shapes) with `tflite_convert ARGS`."""
    if loaded is None:
        raise ValueError("tflite_convert starts from the original model; the worker passes it")
    model, shapes = loaded
    options = job["options"]
    t0 = time.perf_counter()
    folder = saved_model_dir(model, shapes, job["model"]["kind"], job["model"]["path"])
    out = Path(job["out_path"])
    code, said = run_script([f"--saved_model_dir={folder}", f"--output_file={out}", *options.get("args", [])])
    print(said[-20000:], file=sys.stderr)  # the worker's log keeps what the tool said
    if code != 0 or not out.is_file() or out.stat().st_size == 0:
        lines = [ln for ln in said.splitlines() if ln.strip() and not ln.startswith(("W0000", "I0000"))]
        raise ToolFailed(f"tflite_convert exited with {code}: {lines[-1] if lines else 'no output'}")
    return {"convert_s": time.perf_counter() - t0, "size_bytes": out.stat().st_size, "tf_version": version(),
            "tool_version": f"tflite_convert (TensorFlow {version()})",
            "conversion_path": "tflite_convert:saved_model", "notes": [f"tflite_convert {' '.join(options.get('args', []))}".strip()]}
