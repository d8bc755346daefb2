"""A campaign's [settings] table -> `Settings`: how each artifact is measured.

Plain data and its validation, like `core/flag_sets.py` for [flag_sets]. The campaign
loader (`harness/config.py`) reads a campaign's [settings] with `parse_settings` and
re-exports these names. Every bad value gets a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.core import runtimes as rt
from harness.core.errors import UsageError
from harness.core.flag_sets import DEFAULT_FLAG_SETS


@dataclass(frozen=True)
class Settings:
    """How each artifact is measured; names follow benchmark_model's flags where they exist."""

    threads: tuple[int, ...] = (1,)
    xnnpack: bool = True
    warmup_runs: int = 5
    runs: int = 50
    min_seconds: float = 0.5
    max_seconds: float = 150.0
    eval_samples: int = 32
    cooldown_s: float = 0.0
    timeout_s: float = 600.0
    seed: int = 0
    repeat: int = 1  # fresh measuring processes per job, samples combined (the pyperf approach)
    pin_cpu: int | None = None  # pin the measuring process to this CPU (local and Linux edge runner)
    max_cv: float = 0.15  # validity: coefficient of variation bound
    max_tail_ratio: float = 3.0  # validity: p99/p50 bound
    runtimes: tuple[str, ...] = rt.DEFAULT_RUNTIMES  # interpreter | compiled_model (harness/core/runtimes.py)
    accelerators: tuple[str, ...] = rt.DEFAULT_ACCELERATORS  # cpu | gpu | npu | fallback chains such as gpu+cpu


_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "threads": (list, int),
    "xnnpack": (bool,),
    "warmup_runs": (int,),
    "runs": (int,),
    "min_seconds": (int, float),
    "max_seconds": (int, float),
    "eval_samples": (int,),
    "cooldown_s": (int, float),
    "timeout_s": (int, float),
    "seed": (int,),
    "repeat": (int,),
    "pin_cpu": (int,),
    "max_cv": (int, float),
    "max_tail_ratio": (int, float),
    "runtimes": (list, str), "accelerators": (list, str),
    "devices": (list,),
    "flag_sets": (list,),
}


def unique_names(items: list[str], where: str) -> list[str]:
    """ITEMS, refused when a name comes twice (a device named twice waited forever for itself)."""
    twice = sorted({x for x in items if items.count(x) > 1})
    if twice:
        raise UsageError(f"{where} names {', '.join(twice)} more than once; give each once")
    return items


def parse_threads(value: Any, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in items):
        raise UsageError(f"{where}: threads must be a positive integer or a list of them, e.g. [1, 2]")
    return tuple(items)


def parse_settings(raw: dict[str, Any], where: str) -> tuple[Settings, list[str], list[str]]:
    for key, value in raw.items():
        if key not in _SETTING_TYPES:
            raise UsageError(f"{where}: unknown setting {key!r}; known: {', '.join(_SETTING_TYPES)}")
        types = _SETTING_TYPES[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise UsageError(f"{where}: {key} must be {names}, got {value!r}")
    settings = Settings()
    values: dict[str, Any] = {}
    if "threads" in raw:
        values["threads"] = parse_threads(raw["threads"], f"{where}.threads")
    for key in ("warmup_runs", "runs", "eval_samples", "seed", "repeat", "pin_cpu"):
        if key in raw:
            least = 1 if key in ("runs", "eval_samples", "repeat") else 0
            if raw[key] < least:
                raise UsageError(f"{where}: {key} must be at least {least}")
            values[key] = raw[key]
    for key in ("min_seconds", "max_seconds", "cooldown_s", "timeout_s", "max_cv", "max_tail_ratio"):
        if key in raw:
            if raw[key] < 0:
                raise UsageError(f"{where}: {key} must not be negative")
            values[key] = float(raw[key])
    if "xnnpack" in raw:
        values["xnnpack"] = raw["xnnpack"]
    values.update({k: parse(raw[k], where) for k, parse in (("runtimes", rt.parse_runtimes),
                                                             ("accelerators", rt.parse_accelerators)) if k in raw})
    devices = raw.get("devices", ["local"])
    flag_sets = raw.get("flag_sets", list(DEFAULT_FLAG_SETS))
    for label, items in (("devices", devices), ("flag_sets", flag_sets)):
        if not items or not all(isinstance(x, str) and x for x in items):
            raise UsageError(f"{where}: {label} must be a non-empty list of names")
        unique_names(items, f"{where}: {label}")
    return replace(settings, **values), devices, flag_sets
