"""`check`: the assessment before conversion, on real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import ModelSpec, model_from_path
from harness.core.flag_sets import resolve_flag_sets
from harness.pipeline.check import _saved_model_findings, check_model, check_tflite
from tests.test_inspect import cli

ROOT = Path(__file__).resolve().parent.parent
INV = ROOT / "tests" / "models" / "inv_model.py"


@pytest.mark.slow
def test_check_names_matrix_inverse_and_recommends_select_tf_ops():
    spec = model_from_path(f"{INV}:inv_model")
    report = check_model(spec, flag_sets=resolve_flag_sets(["fp32", "int8", "select_tf_ops"], {}),
                         workers=1)  # one TensorFlow: parallel conversion is not tested here
    assert report["op_verdicts"]["MatrixInverse"] == "flex"
    assert report["op_verdicts"]["AddV2"] == "builtin"
    assert report["recommended"] == "select_tf_ops"
    fs = report["flag_sets"]
    assert fs["fp32"]["verdict"] == "fails" and fs["fp32"]["how"] == "verified"
    assert "needs_flex_ops" in fs["fp32"]["why"]
    sel = report["conversions"]["select_tf_ops"]
    assert sel["ok"] and sel["flex_ops"] == ["FlexMatrixInverse"]
    assert fs["select_tf_ops"]["verdict"] == "converts"  # converted, but no Flex delegate here
    assert any("MatrixInverse" in f for f in report["findings"])


@pytest.mark.slow
def test_check_cli_keras_json_and_human(tmp_path):
    proc = cli("check", "models/digits_cnn.keras", "--json", "--flag-sets", "fp32,int8", "--workers", "1",
               "--keep", str(tmp_path / "keep"))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "keep" / "logs").glob("worker-*.log")] == ["worker-0.log"]  # --workers 1
    report = json.loads(proc.stdout)
    assert report["params"] > 1000
    assert set(report["graph_ops"]) >= {"Conv2D", "MatMul", "Softmax"}
    assert all(v == "builtin" for v in report["op_verdicts"].values())
    assert report["flag_sets"]["int8"]["verdict"] == "works"
    proc = cli("check", "models/digits_cnn.keras", "--no-verify", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "expected" in proc.stdout and "Conv2D" in proc.stdout and "recommended flag set" in proc.stdout


@pytest.mark.slow
def test_check_tflite_float_ops_and_gpu():
    path = ROOT / "tests" / "data" / "tiny_dr.tflite"  # make_fixtures.py --dr: no TensorFlow in this process
    report = check_tflite(path)
    assert report["quantized"]
    # dynamic-range quantization leaves float activations around int8 weights
    assert any(f["op"] == "FULLY_CONNECTED" for f in report["float_ops_in_quantized"])
    assert any("stay float" in f for f in report["findings"])
    assert report["gpu"]["available"] and report["gpu"]["compatible"] in (True, False)
    assert report["size"]["weights"] > 0 and report["size"]["graph"] > 0
    assert report["flex_ops"] == [] and report["custom_ops"] == []


def test_saved_model_without_variables_is_flagged(tmp_path):
    d = tmp_path / "sm"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"")
    spec = ModelSpec(name="sm", kind="saved_model", path=d)
    assert any("variables/" in f for f in _saved_model_findings(spec))
    (d / "variables").mkdir()
    (d / "variables" / "variables.index").write_bytes(b"")
    assert _saved_model_findings(spec) == []
