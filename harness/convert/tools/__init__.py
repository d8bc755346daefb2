"""Tools that make an artifact from a flag set, behind one small protocol.

A tool is a module with `NAME`, `version()` and `make(job, loaded) -> dict`: it writes the
`.tflite` to `job["out_path"]` and answers what `pipeline/` caches (size_bytes, convert_s,
conversion_path, notes, tool_version). LOADED is the worker's (model, input shapes) for a tool
that starts from the original model (`tflite_convert.py`), None for one that starts from a
float `.tflite` (`quantizer.py`, which needs no TensorFlow and runs in a light worker). The
converter's Python API stays the worker's own `convert` job (it shares the worker's model
cache, the int8 family's calibration and the budget search).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

TOOLS = {"quantizer": "harness.convert.tools.quantizer", "tflite_convert": "harness.convert.tools.tflite_convert"}


class Tool(Protocol):
    NAME: str

    def version(self) -> str: ...

    def make(self, job: dict[str, Any], loaded: tuple[Any, list[tuple[int, ...]]] | None = None) -> dict[str, Any]: ...


def tool(name: str) -> Tool:
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")
    return importlib.import_module(TOOLS[name])  # type: ignore[return-value]


def run(job: dict[str, Any], loaded: tuple[Any, list[tuple[int, ...]]] | None = None) -> dict[str, Any]:
    """A worker's `tool` job: job['action'] is `make` (default) or a tool's own step (`calibrate`)."""
    module = tool(job["tool"])
    action = job.get("action", "make")
    return module.make(job, loaded) if action == "make" else getattr(module, action)(job)
