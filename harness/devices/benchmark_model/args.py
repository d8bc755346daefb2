"""benchmark_model's argv from our settings; shell-quoted for `adb shell`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

DELEGATES = ("xnnpack", "gpu", "nnapi", "none")


# --------------------------------------------------------------------------- arguments


@dataclass
class BenchmarkSettings:
    """What we ask ``benchmark_model`` to do; defaults mirror the tool's own defaults
    except that peak memory reporting is on (we always want it)."""

    num_threads: int = 1
    num_runs: int = 50
    warmup_runs: int = 1
    min_secs: float = 1.0
    warmup_min_secs: float | None = None
    delegate: str = "xnnpack"  # "xnnpack" | "gpu" | "nnapi" | "none"
    report_peak_memory: bool = True
    op_profiling: bool = False
    max_secs: float | None = None


_FLAG_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _fmt_float(value: float) -> str:
    """Render a float the tool's flag parser accepts, without losing precision."""
    return repr(float(value))


def _escape_colons(text: str) -> str:
    """``--input_layer_value_files`` splits name from path at the single ':'; literal
    colons must be doubled (the tool un-doubles both halves)."""
    return text.replace(":", "::")


def build_args(
    binary: str,
    graph: str,
    settings: BenchmarkSettings,
    *,
    input_layers: list[tuple[str, tuple[int, ...], str]] | None = None,
    output_filepath: str | None = None,
    signature: str | None = None,
    extra: dict[str, str] | None = None,
) -> list[str]:
    """Return the argv (no shell involved) for one ``benchmark_model`` run.

    ``input_layers`` is ``[(tensor_name, shape, value_file), ...]`` in the model's input
    order; an empty ``value_file`` means "let the tool fill random data". The tool needs
    ``--input_layer`` and ``--input_layer_shape`` next to ``--input_layer_value_files``
    (else "Cannot find the corresponding input_layer name"), so all three are emitted.

    Flags that only newer binaries know (peak memory, op profiling) are emitted only when
    turned on, so an older binary is not broken by a flag it never asked for. For
    ``gpu``/``nnapi`` we do not pass ``--use_xnnpack``: nodes the delegate rejects fall
    back to the tool's default CPU path, which is what an app would get.

    ``extra`` adds or overrides flags: ``{"use_caching": "true"}`` -> ``--use_caching=true``.
    """
    if settings.delegate not in DELEGATES:
        raise ValueError(
            f"unknown delegate {settings.delegate!r}; expected one of {', '.join(DELEGATES)}"
        )
    flags: dict[str, str] = {
        "graph": graph,
        "num_threads": str(int(settings.num_threads)),
        "num_runs": str(int(settings.num_runs)),
        "warmup_runs": str(int(settings.warmup_runs)),
        "min_secs": _fmt_float(settings.min_secs),
    }
    if settings.warmup_min_secs is not None:
        flags["warmup_min_secs"] = _fmt_float(settings.warmup_min_secs)
    if settings.max_secs is not None:
        flags["max_secs"] = _fmt_float(settings.max_secs)
    if settings.delegate == "xnnpack":
        flags["use_xnnpack"] = "true"
    elif settings.delegate == "none":
        flags["use_xnnpack"] = "false"
    elif settings.delegate == "gpu":
        flags["use_gpu"] = "true"
    elif settings.delegate == "nnapi":
        flags["use_nnapi"] = "true"
    if settings.report_peak_memory:
        flags["report_peak_memory_footprint"] = "true"
    if settings.op_profiling:
        flags["enable_op_profiling"] = "true"

    if input_layers:
        names, shapes, files = [], [], []
        for name, shape, value_file in input_layers:
            if not name or "," in name:
                raise ValueError(
                    f"input tensor name {name!r} cannot be passed to benchmark_model "
                    "(empty, or contains ',' which separates layers)"
                )
            dims = [int(d) for d in shape]
            if any(d < 0 for d in dims):
                raise ValueError(
                    f"input {name!r} has unknown dimensions {tuple(shape)}; "
                    "benchmark_model needs concrete sizes"
                )
            names.append(name)
            shapes.append(",".join(str(d) for d in dims))
            if value_file:
                if "," in value_file:
                    raise ValueError(
                        f"value file path {value_file!r} contains ',', which benchmark_model "
                        "reads as a separator"
                    )
                files.append(f"{_escape_colons(name)}:{_escape_colons(value_file)}")
        flags["input_layer"] = ",".join(names)
        flags["input_layer_shape"] = ":".join(shapes)
        if files:
            flags["input_layer_value_files"] = ",".join(files)
    if output_filepath:
        flags["output_filepath"] = output_filepath
    if signature:
        flags["signature_to_run_for"] = signature
    for key, value in (extra or {}).items():
        name = key[2:] if key.startswith("--") else key
        if not _FLAG_NAME.match(name):
            raise ValueError(f"bad benchmark_model flag name {key!r}")
        flags[name] = str(value)
    return [binary, *(f"--{k}={v}" for k, v in flags.items())]


def shell_command(argv: list[str]) -> str:
    """Join argv for a POSIX shell (``adb shell`` runs one): every word single-quoted as
    needed, so names with spaces, ``;`` or ``$(...)`` stay literal data."""
    return " ".join(shlex.quote(str(a)) for a in argv)
