"""Tools that make an artifact from a flag set, behind one small protocol.

A tool is a module with `NAME`, `version()` and `make(job) -> dict`: it writes the `.tflite`
to `job["out_path"]` and answers what `pipeline/` caches (size_bytes, convert_s,
conversion_path, notes, tool_version). `run(job)` picks the module by `job["tool"]`. The
converter's Python API stays the worker's own `convert` job (it shares the worker's model
cache); the quantizer (`quantizer.py`) needs no TensorFlow and runs in a light worker.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

TOOLS = {"quantizer": "harness.convert.tools.quantizer"}


class Tool(Protocol):
    NAME: str

    def version(self) -> str: ...

    def make(self, job: dict[str, Any]) -> dict[str, Any]: ...


def tool(name: str) -> Tool:
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")
    return importlib.import_module(TOOLS[name])  # type: ignore[return-value]


def run(job: dict[str, Any]) -> dict[str, Any]:
    """A worker's `tool` job: job['action'] is `make` (default) or a tool's own step (`calibrate`)."""
    module = tool(job["tool"])
    return getattr(module, job.get("action", "make"))(job)
