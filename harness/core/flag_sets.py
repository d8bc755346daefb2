"""Flag sets: named converter options, in the three groups of the TFLite conversion guide.

Only plain data lives here (strings, lists, booleans) so the CLI and the planner can
validate and hash flag sets without importing TensorFlow; `worker.py` turns them into
`TFLiteConverter` attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import UsageError

OPTIMIZATIONS = ("DEFAULT", "OPTIMIZE_FOR_SIZE", "OPTIMIZE_FOR_LATENCY", "EXPERIMENTAL_SPARSITY")
OPS_SETS = (
    "TFLITE_BUILTINS",
    "TFLITE_BUILTINS_INT8",
    "SELECT_TF_OPS",
    "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
)
SUPPORTED_TYPES = ("float32", "float16", "int8", "int16")
IO_TYPES = ("float32", "int8", "uint8", "int16")
REPRESENTATIVE_SOURCES = ("auto", "samples", "random", "none")

# Keys a flag set may carry besides experimental_* converter attributes.
KNOWN_KEYS = {
    "description": str,
    "optimizations": list,
    "supported_ops": list,
    "supported_types": list,
    "inference_input_type": str,
    "inference_output_type": str,
    "allow_custom_ops": bool,
    "representative_data": str,
    "representative_count": int,
    "metadata": dict,  # name, description, version, author, license, labels, mean, std (see tflite/metadata.py)
    "base": str,  # another flag set whose options this one starts from (resolve_bases)
    "budget": str,  # e.g. "top1>=0.99": search for the cheapest mixed precision (core/budget.py)
    "tool": str,  # "tflite_convert": the command-line tool with `args` (convert/tools/tflite_convert.py)
    "args": list,
    "quantizer": object,  # an AI Edge Quantizer recipe: name, .json file or rules (core/quantizer_recipes.py)
}


@dataclass(frozen=True)
class FlagSet:
    """A named set of converter options; `options` holds only validated plain values."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    builtin: bool = False

    @property
    def description(self) -> str:
        return str(self.options.get("description", ""))

    @property
    def budget(self) -> str | None:
        """The budget a search must meet (pipeline/search.py), or None for a plain conversion."""
        return self.options.get("budget")

    @property
    def quantizer(self) -> dict[str, Any] | None:
        """The quantizer recipe this flag set applies to the fp32 artifact, or None (the converter)."""
        return self.options.get("quantizer")

    @property
    def tool(self) -> str:
        """What makes this flag set's artifact (convert/tools/): the converter's Python API by default."""
        return "quantizer" if self.quantizer else self.options.get("tool", "tf_converter")

    @property
    def needs_tensorflow_worker(self) -> bool:
        """Whether its artifact is made in a converter worker (TensorFlow, ~6 s to import); the
        quantizer's run in light workers on the fp32 artifact (`pipeline/quantize.py`)."""
        return self.tool != "quantizer"

    @property
    def needs_representative_data(self) -> bool:
        """Full-integer quantization calibrates activations, so it needs sample inputs."""
        if self.quantizer:
            from harness.core.quantizer_recipes import needs_calibration

            return needs_calibration(self.quantizer)
        source = self.options.get("representative_data", "auto")
        if source == "none":
            return False
        if source != "auto":
            return True
        if not self.options.get("optimizations"):
            return False
        ops = set(self.options.get("supported_ops", []))
        io = {self.options.get("inference_input_type"), self.options.get("inference_output_type")}
        integer_ops = ops & {
            "TFLITE_BUILTINS_INT8",
            "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
        }
        return bool(integer_ops) or bool(io & {"int8", "uint8", "int16"}) or (
            "int8" in self.options.get("supported_types", [])
        )

    def converter_options(self) -> dict[str, Any]:
        """The options that change the artifact (description excluded), for hashing and the worker."""
        return {k: v for k, v in sorted(self.options.items()) if k != "description"}

    def fingerprint(self) -> str:
        return json.dumps(self.converter_options(), sort_keys=True)


BUILTIN_FLAG_SETS: dict[str, FlagSet] = {
    fs.name: fs
    for fs in (
        FlagSet("fp32", {"description": "no optimization: float32 weights and activations"}, True),
        FlagSet(
            "dynamic_range",
            {
                "description": "int8 weights, float activations (dynamic-range quantization)",
                "optimizations": ["DEFAULT"],
            },
            True,
        ),
        FlagSet(
            "float16",
            {
                "description": "float16 weights, float32 compute",
                "optimizations": ["DEFAULT"],
                "supported_types": ["float16"],
            },
            True,
        ),
        FlagSet(
            "int8",
            {
                "description": "full integer: int8 weights and activations, int8 input and output",
                "optimizations": ["DEFAULT"],
                "supported_ops": ["TFLITE_BUILTINS_INT8"],
                "inference_input_type": "int8",
                "inference_output_type": "int8",
            },
            True,
        ),
        FlagSet(
            "int8_float_io",
            {
                "description": "full integer inside, float32 input and output",
                "optimizations": ["DEFAULT"],
                "supported_ops": ["TFLITE_BUILTINS_INT8"],
            },
            True,
        ),
        FlagSet(
            "int16x8",
            {
                "description": "int16 activations, int8 weights",
                "optimizations": ["DEFAULT"],
                "supported_ops": ["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"],
            },
            True,
        ),
        FlagSet(
            "select_tf_ops",
            {
                "description": "TFLite builtins plus Select TF ops (Flex) for what has no builtin",
                "supported_ops": ["TFLITE_BUILTINS", "SELECT_TF_OPS"],
            },
            True,
        ),
        FlagSet(
            "custom_ops",
            {
                "description": "allow custom ops: unknown ops are kept as custom ops",
                "allow_custom_ops": True,
            },
            True,
        ),
    )
}


def _aeq(name: str, description: str, recipe: str) -> FlagSet:
    spec = {"recipe": recipe, "recipe_json": None, "recipe_file": None, "rules": []}
    return FlagSet(name, {"description": description, "quantizer": spec}, True)


# The AI Edge Quantizer's common recipes, applied to the fp32 artifact (convert/tools/quantizer.py).
# Kept apart from BUILTIN_FLAG_SETS: those are converter options, which `check` probes.
QUANTIZER_FLAG_SETS: dict[str, FlagSet] = {
    fs.name: fs
    for fs in (
        _aeq("aeq_dynamic_int8", "AI Edge Quantizer dynamic_wi8_afp32: int8 weights, float activations "
             "quantized at run time", "dynamic_wi8_afp32"),
        _aeq("aeq_weight_only_int8", "AI Edge Quantizer weight_only_wi8_afp32: int8 weights dequantized "
             "to float before each op", "weight_only_wi8_afp32"),
        _aeq("aeq_weight_only_int4", "AI Edge Quantizer weight_only_wi4_afp32: int4 weights, float compute",
             "weight_only_wi4_afp32"),
        _aeq("aeq_int4_block32", "AI Edge Quantizer dynamic_wi4b32_afp32: int4 weights in blocks of 32 "
             "(BLOCKWISE_32), float activations quantized at run time", "dynamic_wi4b32_afp32"),
        _aeq("aeq_static_int8", "AI Edge Quantizer static_wi8_ai8: int8 weights and activations "
             "(calibrated), int8 input and output", "static_wi8_ai8"),
        _aeq("aeq_static_int16x8", "AI Edge Quantizer static_wi8_ai16: int8 weights, int16 activations "
             "(calibrated), int16 input and output", "static_wi8_ai16"),
    )
}

# Converter options that a quantizer flag set cannot take: it starts from the fp32 artifact.
CONVERTER_ONLY = ("optimizations", "supported_ops", "supported_types", "inference_input_type",
                  "inference_output_type", "allow_custom_ops", "representative_data")

DEFAULT_FLAG_SETS = ("fp32", "dynamic_range", "float16", "int8", "int8_float_io", "int16x8")


def _check_choices(where: str, key: str, values: list, choices: tuple[str, ...]) -> None:
    for v in values:
        if v not in choices:
            raise UsageError(f"{where}: {key} has {v!r}; choose from {', '.join(choices)}")


def _check_tool(where: str, options: dict[str, Any]) -> None:
    """`tool = "tflite_convert"` with `args = [...]`: the flags it owns here are refused."""
    if options.get("tool") != "tflite_convert":
        raise UsageError(f"{where}: tool must be \"tflite_convert\" (the converter's Python API needs no tool "
                         "key; the quantizer takes quantizer = ...)")
    args = options.get("args", [])
    if not all(isinstance(a, str) for a in args):
        raise UsageError(f"{where}: args must be a list of strings, e.g. [\"--enable_v1_converter\"]")
    for a in args:
        if a.split("=")[0] in ("--output_file", "--saved_model_dir", "--keras_model_file", "--graph_def_file"):
            raise UsageError(f"{where}: args: {a.split('=')[0]} is set by the harness (the model's SavedModel "
                             "and the artifact's path); drop it")
    clash = [k for k in options if k not in ("tool", "args", "description", "base", "metadata")]
    if clash:
        raise UsageError(f"{where}: {clash[0]} is a Python API option; give tflite_convert its own flag in args")


def parse_flag_set(name: str, raw: dict[str, Any], where: str, base: Path | None = None) -> FlagSet:
    """Validate a user-defined flag set from TOML; one-line errors name the key and the fix."""
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a flag set is a table of converter options, got {type(raw).__name__}")
    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(("experimental_", "_experimental_")):
            if not isinstance(value, (bool, int, float, str)):
                raise UsageError(f"{where}: {key} must be a boolean, number or string")
            options[key] = value
            continue
        if key not in KNOWN_KEYS:
            known = ", ".join(sorted(KNOWN_KEYS))
            raise UsageError(
                f"{where}: unknown converter option {key!r}; use one of {known} or an experimental_* flag"
            )
        if key == "quantizer":
            from harness.core.quantizer_recipes import parse_quantizer

            options[key] = parse_quantizer(value, f"{where}: quantizer", base)
            continue
        expected = KNOWN_KEYS[key]
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise UsageError(f"{where}: {key} must be a {expected.__name__}, got {value!r}")
        options[key] = value
    if "metadata" in options:
        from harness.core.metadata_options import parse_metadata

        options["metadata"] = parse_metadata(options["metadata"], where, base)
        labels = options["metadata"].get("labels")
        if labels:  # the artifact changes when the labels file does: key the cache on its content
            from harness.core.hashing import hash_path

            options["metadata"]["labels_sha256"] = hash_path(Path(labels))
    if "quantizer" in options:
        clash = [k for k in options if k in CONVERTER_ONLY or k.startswith(("experimental_", "_experimental_"))]
        if clash:
            raise UsageError(f"{where}: {clash[0]} is a converter option; a quantizer flag set starts from the "
                             "fp32 artifact, so drop it or make a converter flag set")
    if "tool" in options or "args" in options:
        _check_tool(where, options)
    _check_choices(where, "optimizations", options.get("optimizations", []), OPTIMIZATIONS)
    _check_choices(where, "supported_ops", options.get("supported_ops", []), OPS_SETS)
    _check_choices(where, "supported_types", options.get("supported_types", []), SUPPORTED_TYPES)
    for key in ("inference_input_type", "inference_output_type"):
        if key in options:
            _check_choices(where, key, [options[key]], IO_TYPES)
    if "representative_data" in options:
        _check_choices(
            where, "representative_data", [options["representative_data"]], REPRESENTATIVE_SOURCES
        )
    if options.get("representative_count", 1) < 1:
        raise UsageError(f"{where}: representative_count must be at least 1")
    if "budget" in options:
        from harness.core.budget import parse_budget

        options["budget"] = parse_budget(options["budget"], f"{where}: budget").text
    return FlagSet(name, options)


def resolve_bases(user: dict[str, FlagSet], where: str) -> dict[str, FlagSet]:
    """Flag sets with `base = "int8"` start from that flag set's options (their own win).

    A budget needs a base (or its own options) in the int8 family; that is checked where
    the search starts, since it depends on the representative data too."""
    known = {**BUILTIN_FLAG_SETS, **QUANTIZER_FLAG_SETS, **user}
    out: dict[str, FlagSet] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> FlagSet:
        if name in out:
            return out[name]
        fs = known[name]
        base = fs.options.get("base")
        if base is None or fs.builtin:
            return fs
        if base not in known:
            raise UsageError(f"{where}: flag_sets.{name}: base {base!r} is not a flag set; "
                             f"choose from {', '.join(known)}")
        if base in chain:
            raise UsageError(f"{where}: flag_sets.{name}: base chain {' -> '.join((*chain, base))} is a loop")
        parent = resolve(base, (*chain, name))
        merged = {k: v for k, v in parent.options.items() if k not in ("description", "budget")}
        merged.update(fs.options)
        if "description" not in fs.options:
            merged["description"] = f"{base}" + (f" within budget {fs.budget}" if fs.budget else " with changes")
        out[name] = FlagSet(name, merged)
        return out[name]

    for name in user:
        out[name] = resolve(name, ())
    return out


def resolve_flag_sets(names: list[str], user: dict[str, FlagSet]) -> list[FlagSet]:
    """Look up flag sets by name: the user's own first, then the built-ins."""
    known = {**BUILTIN_FLAG_SETS, **QUANTIZER_FLAG_SETS, **user}
    out = []
    for name in names:
        if name not in known:
            raise UsageError(
                f"unknown flag set {name!r}; choose from {', '.join(known)} or define it under [flag_sets.{name}]"
            )
        out.append(known[name])
    return out
