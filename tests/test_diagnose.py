"""Budgets, budget flag sets, the int8 family and the Model Explorer / HTML output: no conversion here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.config import parse_campaign
from harness.convert.calibration import calibration_fields, in_family
from harness.core.budget import parse_budget, wilson
from harness.core.errors import UsageError
from harness.core.flag_sets import BUILTIN_FLAG_SETS
from harness.core.result import Result
from harness.pipeline.diagnose import short_labels
from harness.pipeline.search import growth
from harness.report.diagnosis import diagnosis_html, node_data, write_model_explorer

from .conftest import TEST_MODELS


def test_budget_parses_every_metric_and_checks_drift():
    b = parse_budget("top1>=0.99, cosine>=0.995,accuracy_drop<=0.01,max_abs<=0.5")
    assert b.text == "top1>=0.99,cosine>=0.995,accuracy_drop<=0.01,max_abs<=0.5"
    good = {"top1_agreement": 1.0, "cosine": 0.999, "accuracy": 0.9, "reference_accuracy": 0.905, "max_abs": 0.1,
            "samples": 200}
    v = b.check(good)
    assert v.meets and v.failures == [] and v.shortfall == 0
    assert v.top1_ci is not None and v.top1_ci[0] < 1.0 <= v.top1_ci[1]
    bad = dict(good, top1_agreement=0.5, accuracy=0.5)
    v = b.check(bad)
    assert not v.meets and len(v.failures) == 2 and v.shortfall > 0
    assert "top1 0.5" in v.failures[0]


def test_budget_without_labels_says_so():
    v = parse_budget("accuracy_drop<=0.01").check({"top1_agreement": 1.0, "samples": 4})
    assert not v.meets and "labels" in v.failures[0]


@pytest.mark.parametrize("text, needle", [
    ("top1>0.99", "not a bound"), ("speed>=2", "unknown budget metric"), ("top1>=1.5", "fraction"),
    ("", "a budget is text"), ("max_abs<=1e999", "finite"),
])
def test_bad_budgets_are_one_line_errors(text, needle):
    with pytest.raises(UsageError, match=needle) as err:
        parse_budget(text)
    assert "\n" not in str(err.value)


def test_wilson_interval_narrows_with_more_samples():
    small, large = wilson(0.99, 32), wilson(0.99, 3200)
    assert small[0] < large[0] <= 0.99 <= large[1] <= small[1]


def _campaign(tmp_path, flag_sets: str):
    raw = f"""
name = "t"
[settings]
flag_sets = ["fp32", "int8", "int8_budget"]
{flag_sets}
"""
    import tomllib

    return parse_campaign(tomllib.loads(raw), tmp_path / "c.toml")


def test_budget_flag_set_starts_from_its_base(tmp_path):
    c = _campaign(tmp_path, '[flag_sets.int8_budget]\nbase = "int8"\nbudget = "top1 >= 0.99"\n')
    fs = {f.name: f for f in c.flag_sets}["int8_budget"]
    int8 = BUILTIN_FLAG_SETS["int8"]
    assert fs.budget == "top1>=0.99"
    assert fs.needs_representative_data
    assert {k: v for k, v in fs.converter_options().items() if k not in ("budget", "base")} == int8.converter_options()
    assert fs.fingerprint() != int8.fingerprint()  # the budget is part of the cache key
    # the calibration is shared with int8: the budget does not reach it
    assert calibration_fields(fs.converter_options()) == calibration_fields(int8.converter_options())


@pytest.mark.parametrize("body, needle", [
    ('base = "nope"\nbudget = "top1>=0.9"', "base 'nope' is not a flag set"),
    ('base = "int8"\nbudget = "top1=0.9"', "not a bound"),
    ('base = "int8_budget"', "loop"),
])
def test_bad_budget_flag_sets(tmp_path, body, needle):
    with pytest.raises(UsageError, match=needle):
        _campaign(tmp_path, f"[flag_sets.int8_budget]\n{body}\n")


def test_int8_family_is_what_calibrates_to_full_integer():
    family = {n for n, fs in BUILTIN_FLAG_SETS.items() if in_family(fs.converter_options(), fs.needs_representative_data)}
    assert family == {"int8", "int8_float_io", "int16x8"}
    # int8 and int16x8 quantize one calibration; a different representative_count is another one
    fields = {n: calibration_fields(BUILTIN_FLAG_SETS[n].converter_options()) for n in family}
    assert fields["int8"] == fields["int8_float_io"] == fields["int16x8"]
    other = dict(BUILTIN_FLAG_SETS["int8"].converter_options(), representative_count=10)
    assert calibration_fields(other) != fields["int8"]
    assert not in_family(dict(other, experimental_new_quantizer=False), True)


def test_short_labels_name_the_keras_layer():
    names = ["functional_1/functional_1/culprit_1/MatMul;functional_1/functional_1/culprit_1/Relu",
             "functional_1/functional_1/probs_1/MatMul;functional_1/functional_1/probs_1/BiasAdd",
             "StatefulPartitionedCall_1:0"]
    assert list(short_labels(names).values()) == ["culprit", "probs", "StatefulPartitionedCall_1:0"]
    mobilenet = ["digits_mobilenet_1/block_9_add_1/Add",
                 "digits_mobilenet_1/block_1_project_BN_1/batchnorm/add_1;digits_mobilenet_1/block_1_project_1/conv",
                 "digits_mobilenet_1/Conv1_relu_1/Relu6;digits_mobilenet_1/bn_Conv1_1/batchnorm/add_1",
                 "digits_mobilenet_1/dense_1/MatMul", "digits_mobilenet_1/dense_1/BiasAdd", "Identity:0"]
    assert list(short_labels(mobilenet).values()) == [
        "block_9_add", "block_1_project_BN", "Conv1_relu", "dense_1/MatMul", "dense_1/BiasAdd", "Identity:0"]


def test_growth_takes_a_few_more_layers_each_step():
    assert growth(1) == [1]
    sizes = growth(40)
    assert sizes[:4] == [1, 2, 3, 5] and sizes[-1] == 40 and sizes == sorted(set(sizes))


def test_model_explorer_node_data_shape(tmp_path):
    diag = {"layers": [
        {"tensor": "a;b", "isolated": {"rmse_scale": 62.3}, "accumulated": {"rmse_scale": 60.0}},
        {"tensor": "c", "isolated": {"rmse_scale": 0.3}, "accumulated": {"rmse_scale": math.inf}},
        {"tensor": "d", "isolated": {"rmse_scale": math.nan}, "accumulated": None},
    ]}
    paths = write_model_explorer(diag, tmp_path / "me", {"a;b": 12.5})
    assert [p.name for p in paths] == ["isolated_error.json", "accumulated_error.json", "op_latency_us.json"]
    iso = json.loads(paths[0].read_text())
    assert set(iso) == {"results", "gradient"}
    assert iso["results"] == {"a;b": {"value": 62.3}, "c": {"value": 0.3}}  # NaN left out: no value to colour
    stops = [g["stop"] for g in iso["gradient"]]
    assert stops[0] == 0 and stops[-1] == 1 and all(g["bgColor"].startswith("#") for g in iso["gradient"])
    acc = json.loads(paths[1].read_text())
    assert acc["results"] == {"a;b": {"value": 60.0}}  # inf is not valid JSON for Model Explorer
    assert json.loads(paths[2].read_text())["results"] == {"a;b": {"value": 12.5}}
    assert node_data({})["results"] == {}


def test_html_section_escapes_and_marks_float_layers():
    r = Result(model="m<x>", flag_set="int8_budget", device="local", threads=1, status="ok", diagnosis={
        "layers": [{"tensor": "t1", "label": "<culprit>", "isolated": 62.0, "accumulated": 60.0},
                   {"tensor": "t2", "label": "after", "isolated": 0.2, "accumulated": 0.5}],
        "search": {"message": "meets top1>=0.98 with 1 layer(s) kept float: <culprit>", "steps": [{}, {}],
                   "chosen": {"float_layers": ["<culprit>"], "float_tensors": ["t1"]}}})
    html = diagnosis_html([r, Result(model="n", flag_set="int8", device="local", threads=1, status="ok")])
    assert "m&lt;x&gt; / int8_budget" in html and "<culprit>" not in html
    assert "&lt;culprit&gt; (float)" in html and "after (float)" not in html
    assert html.count("<svg") == 1
    assert diagnosis_html([]) == ""


def test_cli_rejects_a_bad_budget_before_any_work(cli):
    proc = cli("diagnose", str(TEST_MODELS / "outlier_int8.py"), "--budget", "top1>0.9")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a bound" in proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["--flag-set", "fp32"], "not full-integer quantization"),
    (["--flag-set", "int16x8", "--backend", "tf"], "can keep no layer float in int16 mode"),
    (["--flag-set", "aeq_static_int8", "--backend", "tf"], "is an AI Edge Quantizer recipe"),
    (["--flag-set", "aeq_dynamic_int8"], "is not full-integer quantization"),
    (["--flag-set", "nope"], "unknown flag set"),
    (["--out", "x.tflite"], "give --budget too"),
])
def test_cli_rejects_what_cannot_be_diagnosed(cli, args, needle):
    from .conftest import MODELS

    proc = cli("diagnose", str(MODELS / "digits_cnn.keras"), *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_cli_diagnose_needs_the_original_model(cli):
    from .conftest import ROOT

    proc = cli("diagnose", str(ROOT / "tests" / "data" / "tiny.tflite"))
    assert proc.returncode == 2 and "needs the original model" in proc.stderr


BENCHMARK_MODEL = Path("/work/shared/bin/benchmark_model")


@pytest.mark.skipif(not BENCHMARK_MODEL.is_file(), reason="the real benchmark_model binary is not on this host")
def test_op_profile_of_the_real_benchmark_model_maps_to_tensors():
    from harness.devices.benchmark_model.output import parse_output
    from harness.pipeline.diagnose import op_profile_text
    from harness.report.diagnosis import op_latency_by_tensor
    from harness.tflite.file import read_tflite

    from .conftest import ROOT

    model = ROOT / "tests" / "data" / "tiny.tflite"
    latency, skipped = op_latency_by_tensor(parse_output(op_profile_text(BENCHMARK_MODEL, model)).op_profile)
    info = read_tflite(model)
    outputs = {info.tensors[t].name for _ins, outs in info.operator_io for t in outs if t >= 0}
    assert latency and skipped == 0
    assert set(latency) <= outputs  # every profiled op is named by a tensor the graph has
    assert all(v >= 0 for v in latency.values())
