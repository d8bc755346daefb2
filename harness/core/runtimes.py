"""The runtime axis: which LiteRT API measures an artifact, on which accelerator.

A row is measured through the `Interpreter` (`invoke()`, the harness's historical path)
or through `CompiledModel` (LiteRT 2.x's deployment API, which picks hardware through
accelerators). Accelerators are `cpu`, `gpu` and `npu`; a fallback chain is spelled out
(`gpu+cpu`: GPU, CPU for what the GPU cannot take) so that no row ever falls back silently.

The Interpreter runs on the CPU (XNNPACK or builtin kernels), so it takes only the `cpu`
accelerator; any other accelerator is a CompiledModel row (`variants`).
"""

from __future__ import annotations

from typing import Any

from harness.core.errors import UsageError

INTERPRETER = "interpreter"
COMPILED_MODEL = "compiled_model"
RUNTIME_APIS = (INTERPRETER, COMPILED_MODEL)
ACCELERATORS = ("cpu", "gpu", "npu")
DEFAULT_RUNTIMES = (INTERPRETER,)
DEFAULT_ACCELERATORS = ("cpu",)
SHORT = {INTERPRETER: "interp", COMPILED_MODEL: "cm"}  # the compact marker in narrow tables


def _items(value: Any, where: str, what: str) -> list[str]:
    items = [x.strip() for x in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(x, str) and x for x in items):
        raise UsageError(f"{where}: {what} must be a non-empty list of names, e.g. {what} = [...]")
    twice = sorted({x for x in items if items.count(x) > 1})
    if twice:
        raise UsageError(f"{where}: {what} names {', '.join(twice)} more than once; give each once")
    return list(items)


def parse_runtimes(value: Any, where: str) -> tuple[str, ...]:
    """`["interpreter", "compiled_model"]` (or "interpreter,compiled_model"), checked."""
    items = _items(value, where, "runtimes")
    for x in items:
        if x not in RUNTIME_APIS:
            raise UsageError(f"{where}: runtime {x!r} is unknown; choose from {', '.join(RUNTIME_APIS)}")
    return tuple(items)


def parse_accelerators(value: Any, where: str) -> tuple[str, ...]:
    """`["cpu", "gpu", "gpu+cpu"]`, checked: each name known, a chain names each once."""
    items = _items(value, where, "accelerators")
    for x in items:
        chain = x.split("+")
        unknown = [c for c in chain if c not in ACCELERATORS]
        if unknown or len(set(chain)) != len(chain):
            raise UsageError(f"{where}: accelerator {x!r} is not one of {', '.join(ACCELERATORS)} nor a fallback "
                             "chain of them such as gpu+cpu (each named once)")
    return tuple(items)


def variants(runtimes: tuple[str, ...], accelerators: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (runtime API, accelerator) rows of one artifact, in plan order: every runtime on the
    CPU, then CompiledModel on every other accelerator (the Interpreter runs only on the CPU)."""
    out = [(api, "cpu") for api in runtimes if "cpu" in accelerators]
    out += [(COMPILED_MODEL, a) for a in accelerators if a != "cpu"]
    return out


def label(runtime_api: str | None, accelerator: str | None) -> str:
    """'interpreter/cpu', 'compiled_model/gpu+cpu': how reports name a row's runtime."""
    return f"{runtime_api or INTERPRETER}/{accelerator or 'cpu'}"


CPU_INTERPRETER = (INTERPRETER, "cpu")  # every row before the runtime axis existed
