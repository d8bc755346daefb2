"""docs/architecture.md's rules, checked on the package's source: who may import whom,
and where TensorFlow may be imported. Parses imports with `ast` (no module is executed),
plus one subprocess that imports the modules the CLI and measurements load."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "harness"
HEAVY = ("tensorflow", "keras", "tf_keras", "jax", "jaxlib")
# docs/architecture.md, "may import": layer -> the harness layers it may import
ALLOWED = {
    "core": set(),
    "config": {"core"},
    "store": {"core"},
    "tflite": {"core"},
    "convert": {"core", "config", "tflite"},
    "devices": {"core", "config", "tflite"},
    "report": {"core", "store"},
    "pipeline": {"core", "config", "store", "tflite", "convert", "devices", "report", "executors"},
    "executors": {"core", "config", "store", "convert", "devices", "pipeline"},
    "api": {"core", "config", "store", "tflite", "convert", "devices", "report", "pipeline", "executors"},
}
WORKER_SIDE = {"convert/worker.py", "convert/sources.py", "convert/keras_export.py", "convert/assess.py",
               "convert/graph_saved_model.py"}
DEVICE_RUNNER = "devices/runner.py"  # self-contained; may fall back to tf.lite inside a function on a board


def modules() -> dict[str, ast.Module]:
    return {f.relative_to(PACKAGE).as_posix(): ast.parse(f.read_text(encoding="utf-8"))
            for f in sorted(PACKAGE.rglob("*.py"))}


def layer(rel: str) -> str:
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".py") else first


def type_only(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip |= {id(x) for b in n.body for x in ast.walk(b)}
    return skip


def imported(tree: ast.Module, module_level_only: bool = False) -> list[str]:
    """Dotted names this module imports (`from a import b` gives a.b too), type-only ones aside."""
    skip = type_only(tree)
    nodes = tree.body if module_level_only else ast.walk(tree)
    out = []
    for n in nodes:
        if id(n) in skip:
            continue
        if isinstance(n, ast.Import):
            out += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out += [n.module] + [f"{n.module}.{a.name}" for a in n.names]
    return out


def harness_layers(names: list[str]) -> set[str]:
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "harness" and len(parts) > 1 and (
                (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
            found.add(parts[1])
    return found


SOURCES = modules()


@pytest.mark.parametrize("rel", [r for r in SOURCES if layer(r) in ALLOWED])
def test_each_layer_imports_only_the_layers_below_it(rel):
    mine = layer(rel)
    used = harness_layers(imported(SOURCES[rel])) - {mine}
    assert used <= ALLOWED[mine], f"harness/{rel} ({mine}) imports {sorted(used - ALLOWED[mine])}"


def test_core_imports_nothing_else_of_harness():
    for rel, tree in SOURCES.items():
        if layer(rel) == "core":
            assert harness_layers(imported(tree)) <= {"core"}, rel


def test_report_reads_only_the_store():
    for rel, tree in SOURCES.items():
        if layer(rel) == "report":
            used = harness_layers(imported(tree))
            assert not used & {"pipeline", "convert", "devices", "executors", "cli", "api"}, (rel, used)


def test_tensorflow_is_imported_at_module_level_only_by_worker_side_convert_modules():
    for rel, tree in SOURCES.items():
        heavy = [n for n in imported(tree, module_level_only=True) if n.split(".")[0] in HEAVY]
        if heavy:
            assert rel in WORKER_SIDE, f"harness/{rel} imports {heavy} at module level"


def test_nothing_outside_convert_imports_tensorflow_even_lazily():
    for rel, tree in SOURCES.items():
        if layer(rel) == "convert" or rel == DEVICE_RUNNER:
            continue
        heavy = [n for n in imported(tree) if n.split(".")[0] in HEAVY]
        assert not heavy, f"harness/{rel} imports {heavy}; only convert/ may import TensorFlow or JAX"


def test_the_device_runner_uses_tensorflow_only_as_a_last_resort_inside_a_function():
    tree = SOURCES[DEVICE_RUNNER]
    assert not [n for n in imported(tree, module_level_only=True) if n.split(".")[0] in HEAVY]
    assert not harness_layers(imported(tree)), "the device-side runner is self-contained"


def test_the_cli_the_api_and_measuring_code_start_without_tensorflow():
    mods = ["harness", "harness.cli.main", "harness.api", "harness.pipeline.campaign", "harness.executors.local",
            "harness.devices.registry", "harness.devices.runner", "harness.report.html", "harness.pytest_plugin"]
    code = (f"import importlib, sys\nfor m in {mods!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
