"""Why a benchmark_model run failed, and decoding the raw bytes of --output_filepath."""

from __future__ import annotations

import math
import re
import signal
from typing import TYPE_CHECKING

from harness.devices.benchmark_model.errors import BenchmarkOutputError
from harness.devices.benchmark_model.lines import clean as _clean
from harness.devices.benchmark_model.output import parse_output

if TYPE_CHECKING:  # numpy is only needed by decode_output_file
    import numpy


# --------------------------------------------------------------------------- failures

_MISSING_REASON = (
    "benchmark_model not found on the device; set runner.benchmark_model in the device profile"
)
_RE_SHELL_NOT_FOUND = re.compile(
    r"(?:command not found|inaccessible or not found|: not found\b|"
    r"No such file or directory)",
)
_RE_BUILTIN_OP = re.compile(
    r"Didn't find op for builtin opcode '?([A-Za-z0-9_]+)'?(?: version '?(\d+)'?)?"
)
_RE_CUSTOM_OP = re.compile(r"Encountered unresolved custom op:?\s*([^\s.,;]+)")
_RE_FLEX_NODE = re.compile(r"\((Flex[A-Za-z0-9_]+)\)")
_SIGNAL_WORDS = {"Segmentation fault": signal.SIGSEGV, "Aborted": signal.SIGABRT}


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def classify_failure(text: str, returncode: int | None) -> tuple[str, str]:
    """Sort a finished run into (category, one-line reason) a person can act on.

    Categories: ``missing_binary``, ``wrong_abi``, ``not_executable``, ``unsupported``,
    ``out_of_space``, ``crash``, ``error`` and ``ok``. Textual causes are checked before
    the signal because they name the root cause (an unresolved op often ends in abort).
    ``returncode`` may be None: old ``adb shell`` does not pass exit codes through.
    """
    text = text if isinstance(text, str) else ""
    lines = [_clean(r)[0].strip() for r in text.splitlines()]
    lines = [ln for ln in lines if ln]
    joined = "\n".join(lines)

    shell_missing = any(
        _RE_SHELL_NOT_FOUND.search(ln)
        and ("benchmark_model" in ln or ln.startswith(("sh:", "/system/bin/sh:", "bash:")))
        for ln in lines
    )
    if returncode == 127 or shell_missing:
        return "missing_binary", _MISSING_REASON

    if (
        "Exec format error" in joined
        or "cannot execute binary file" in joined
        or ("not executable: " in joined and "ELF" in joined)
    ):
        return (
            "wrong_abi",
            "benchmark_model cannot execute on this device (wrong ABI: Exec format error); "
            "push the build for the device's CPU ABI (e.g. arm64-v8a)",
        )
    if returncode == 126:
        if "Permission denied" in joined:
            return (
                "not_executable",
                "benchmark_model is not executable (Permission denied); chmod +x it on the "
                "device, or use a directory not mounted noexec (e.g. /data/local/tmp)",
            )
        return (
            "wrong_abi",
            "benchmark_model could not be executed (exit 126): likely the wrong ABI for "
            "this device; push the build for the device's CPU ABI",
        )

    m = _RE_CUSTOM_OP.search(joined)
    flex = _RE_FLEX_NODE.search(joined)
    if m or flex or "Select TensorFlow op(s)" in joined:
        op = (m.group(1) if m else None) or (flex.group(1) if flex else None)
        if op and op.startswith("Flex"):
            return (
                "unsupported",
                f"model needs TensorFlow (Flex) op {op}, which this benchmark_model build "
                "lacks; use the benchmark_model_plus_flex build or convert without SELECT_TF_OPS",
            )
        if op:
            return (
                "unsupported",
                f"model uses custom op {op}, which this benchmark_model build does not register",
            )
        return (
            "unsupported",
            "model needs Select TensorFlow (Flex) ops, which this benchmark_model build lacks",
        )
    m = _RE_BUILTIN_OP.search(joined)
    if m:
        version = f" version {m.group(2)}" if m.group(2) else ""
        return (
            "unsupported",
            f"benchmark_model does not support builtin op {m.group(1)}{version}; "
            "the binary is older than the converter: use a newer benchmark_model",
        )

    if "No space left on device" in joined:
        return (
            "out_of_space",
            "the device ran out of storage (No space left on device); free space on the "
            "device or push to another directory",
        )

    sig: int | None = None
    if returncode is not None and returncode < 0:
        sig = -returncode
    elif returncode is not None and 128 < returncode < 128 + 65:
        sig = returncode - 128
    elif returncode in (None, 0):
        for word, s in _SIGNAL_WORDS.items():
            if word in joined:
                sig = int(s)
                break
    if sig is not None:
        return "crash", f"benchmark_model crashed with signal {sig} ({_signal_name(sig)})"

    try:
        parsed = parse_output(text)
    except BenchmarkOutputError as exc:
        if returncode not in (None, 0):
            first = exc.partial.errors[0] if exc.partial and exc.partial.errors else str(exc)
            return "error", f"benchmark_model exited with status {returncode}: {first}"
        return "error", str(exc)
    if returncode not in (None, 0):
        first = parsed.errors[0] if parsed.errors else "no error message"
        return "error", f"benchmark_model exited with status {returncode}: {first}"
    if parsed.errors and parsed.inference is None and parsed.inference_avg_us is None:
        return "error", f"benchmark_model stopped before the timed runs: {parsed.errors[0]}"
    return "ok", "benchmark_model finished"


# --------------------------------------------------------------------------- output file


def decode_output_file(
    data: bytes, outputs: list[tuple[str, tuple[int, ...], str]]
) -> list[numpy.ndarray]:
    """Split the bytes ``--output_filepath`` wrote into one array per output.

    The file has no header (raw tensor bytes back to back, in output order), so names,
    shapes and dtypes must come from the model; a size mismatch means they did not match
    this run, and we refuse rather than return misaligned numbers.
    """
    import numpy as np

    specs = []
    expected = 0
    for name, shape, dtype_name in outputs:
        try:
            dtype = np.dtype(dtype_name)
        except TypeError as exc:
            raise ValueError(f"output {name!r}: unknown dtype {dtype_name!r}") from exc
        if dtype.hasobject or dtype.itemsize == 0:
            raise ValueError(f"output {name!r}: dtype {dtype_name!r} has no fixed byte size")
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise ValueError(f"output {name!r}: shape {dims} has unknown dimensions")
        count = math.prod(dims)
        specs.append((name, dims, dtype, count))
        expected += count * dtype.itemsize
    if len(data) != expected:
        described = ", ".join(f"{n}{list(d)}:{t.name}" for n, d, t, _ in specs) or "no outputs"
        raise BenchmarkOutputError(
            f"output file has {len(data)} bytes but the outputs ({described}) need {expected}"
        )
    arrays = []
    offset = 0
    for _name, dims, dtype, count in specs:
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims).copy()
        arrays.append(arr)
        offset += count * dtype.itemsize
    return arrays
