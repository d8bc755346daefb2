"""`inspect`: a .tflite's signatures, tensors, ops and metadata, without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.core.errors import UsageError
from harness.tflite.inspect import inspect_tflite

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
_CLI = ("import sys; from harness.cli.main import app, main; from harness.cli.analyse import register\n"
        "'inspect' in app.commands or register(app)\nmain(sys.argv[1:])")


def cli(*args):
    """The real CLI, with check/inspect registered even before cli.py does it."""
    return subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**__import__("os").environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def with_metadata(tmp_path_factory):
    from harness.tflite.metadata import write_metadata
    from tests.tflite_helpers import tiny_classifier_tflite

    d = tmp_path_factory.mktemp("inspect")
    plain = tiny_classifier_tflite(d / "plain.tflite")
    (d / "labels.txt").write_text("\n".join(f"class{i}" for i in range(10)))
    out = d / "meta.tflite"
    out.write_bytes(write_metadata(plain.read_bytes(), {"name": "tiny", "author": "me", "labels": str(d / "labels.txt"),
                                                        "mean": [0.0], "std": [1.0]}))
    return out


@pytest.mark.slow
def test_inspect_dict(with_metadata):
    info = inspect_tflite(with_metadata)
    assert all(sig["key"] for sig in info["signatures"])
    assert info["inputs"][0]["shape"] == [1, 64] and info["inputs"][0]["dtype"] == "float32"
    assert {o["name"] for o in info["ops"]} >= {"FULLY_CONNECTED", "SOFTMAX"}
    assert all(o["version"] >= 1 for o in info["ops"])
    assert info["tflite_metadata"]["name"] == "tiny"
    assert info["tflite_metadata"]["labels"][0] == "class0"
    assert "min_runtime_version" in info["metadata_entries"]
    size = info["size"]
    assert size["weights"] > 0 and size["associated_files"] > 0
    assert size["weights"] + size["graph"] + size["metadata"] + size["associated_files"] == size["total"]


@pytest.mark.slow
def test_inspect_cli(with_metadata):
    proc = cli("inspect", str(with_metadata), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tflite_metadata"]["author"] == "me"
    proc = cli("inspect", str(with_metadata))
    assert proc.returncode == 0, proc.stderr
    assert "FULLY_CONNECTED" in proc.stdout and "labels (10)" in proc.stdout and "class0" in proc.stdout


def test_inspect_never_imports_tensorflow(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all, just text")
    with pytest.raises(UsageError, match="not a TFLite flatbuffer"):
        inspect_tflite(bad)
    code = ("import sys; from harness.tflite.inspect import inspect_tflite\n"
            f"try:\n    inspect_tflite({str(bad)!r})\nexcept Exception:\n    pass\n"
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    proc = cli("inspect", str(bad))
    assert proc.returncode == 2 and "not a TFLite flatbuffer" in proc.stderr
