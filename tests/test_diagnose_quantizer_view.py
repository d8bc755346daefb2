"""How a diagnosis is shown says what its backend measured (issue 20, int16 activations).

The quantizer backend ranks ops by the cosine loss each adds over its inputs (accumulated on
LiteRT); it has no isolated (NumericVerify) figure. So its table, JSON, Model Explorer node
data and HTML chart carry `added_cosine_loss` and no empty isolated columns, while the TF
backend's stay as they were.

Real parts: one real diagnosis of tests/data/tiny.tflite (a float model, no TensorFlow) by the
installed AI Edge Quantizer, run on LiteRT. The TF-shaped diagnosis is built by hand: what is
tested there is only its presentation (the real TF path is tests/test_diagnose_models.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli.diagnose import layer_table
from harness.core.result import Result
from harness.pipeline.diagnose import Diagnosis, Layer
from harness.report.diagnosis import diagnosis_html, write_model_explorer

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def quantizer_run(tmp_path_factory, suite_cache) -> tuple[Diagnosis, Path]:
    """The quantizer backend's diagnosis of tiny.tflite, and the session folder it ran in."""
    from harness.api import diagnose

    out = tmp_path_factory.mktemp("diagnose-out")
    return diagnose(DATA / "tiny.tflite", "aeq_static_int8", cache_dir=suite_cache, out_dir=out), out


def tf_diagnosis() -> Diagnosis:
    iso = {"rmse_scale": 62.3, "rmse_range": 0.2, "cosine": 0.71, "snr_db": 3.2, "max_abs": 1.5}
    acc = {"rmse_scale": 60.0, "rmse_range": 0.2, "cosine": 0.73, "snr_db": 3.4, "max_abs": 1.4}
    layers = [Layer(0, "m/culprit;x", "culprit", "FULLY_CONNECTED", iso, acc, 0.01, 3),
              Layer(1, "m/after", "after", "SOFTMAX", {**iso, "rmse_scale": 0.3}, acc, 0.004, -128)]
    return Diagnosis("m", "int8", layers, 8, 16, "/nonexistent/q.tflite", "/nonexistent/f.tflite")


def table_text(diagnosis: Diagnosis) -> tuple[list[str], list[list[str]], str]:
    """(column headers, cells by row, title) of the terminal table."""
    t = layer_table(diagnosis, top=15)
    headers = [str(c.header) for c in t.columns]
    rows = [[str(c._cells[i]) for c in t.columns] for i in range(t.row_count)]
    return headers, rows, str(t.title)


def test_the_quantizer_table_shows_its_metric_and_no_empty_isolated_columns(quantizer_run):
    result, _out = quantizer_run
    assert result.backend == "quantizer" and result.metric == "added_cosine_loss"
    headers, rows, title = table_text(result)
    assert not any("isolated" in h for h in headers)
    assert "added cosine loss" in headers and "added cosine loss" in title and "rmse/scale; ~0.29" not in title
    assert "accumulated rmse/scale" in headers
    assert rows and all(r[headers.index("added cosine loss")] != "-" for r in rows)  # a number in every row
    assert all(r[headers.index("accumulated rmse/scale")] != "-" for r in rows)
    losses = [x.added_cosine_loss for x in result.layers]
    assert all(math.isfinite(v) for v in losses) and losses == sorted(losses, reverse=True)  # the ranking
    assert all(x.isolated == {} for x in result.layers)


def test_the_tf_table_keeps_its_isolated_columns():
    headers, rows, title = table_text(tf_diagnosis())
    assert headers == ["#", "op", "layer", "isolated rmse/scale", "cosine", "SNR dB", "accumulated rmse/scale",
                       "cosine", "SNR dB"]
    assert "isolated rmse/scale; ~0.29 is rounding alone" in title and "added" not in " ".join(headers)
    assert rows[0][3] == "62.3" and rows[0][4] == "0.7100"


def test_the_json_says_which_metric_ranks_the_layers(quantizer_run):
    result, _out = quantizer_run
    d = json.loads(json.dumps(result.to_dict()))
    assert d["ranking"]["metric"] == "added_cosine_loss" and d["backend"] == "quantizer"
    assert d["samples"] == {"accumulated": result.accumulated_samples}  # no isolated samples to count
    for x, layer in zip(d["layers"], result.layers, strict=True):
        assert "isolated" not in x and x["added_cosine_loss"] == pytest.approx(layer.added_cosine_loss)
        assert {"tensor", "op", "index", "accumulated"} <= set(x)
    tf = tf_diagnosis().to_dict()
    assert "ranking" not in tf and tf["samples"] == {"isolated": 8, "accumulated": 16}
    assert all("added_cosine_loss" not in x and x["isolated"]["rmse_scale"] > 0 for x in tf["layers"])


def test_model_explorer_gets_the_added_loss_with_numbers(quantizer_run, tmp_path):
    result, _out = quantizer_run
    paths = write_model_explorer(result.to_dict(), tmp_path / "me")
    assert [p.name for p in paths] == ["added_cosine_loss.json", "accumulated_error.json"]
    assert not (tmp_path / "me" / "isolated_error.json").exists() and (tmp_path / "me" / "quantized.tflite").is_file()
    added = json.loads(paths[0].read_text())["results"]
    assert added == {x.tensor: {"value": pytest.approx(x.added_cosine_loss)} for x in result.layers}
    accumulated = json.loads(paths[1].read_text())["results"]
    assert set(accumulated) == {x.tensor for x in result.layers}
    assert all(math.isfinite(v["value"]) for v in [*added.values(), *accumulated.values()])
    tf_paths = write_model_explorer(tf_diagnosis().to_dict(), tmp_path / "tf")
    assert [p.name for p in tf_paths] == ["isolated_error.json", "accumulated_error.json"]
    assert json.loads(tf_paths[0].read_text())["results"]["m/culprit;x"] == {"value": 62.3}


def test_the_html_chart_draws_the_added_loss(quantizer_run):
    result, _out = quantizer_run
    row = Result(model="tiny", flag_set="aeq_static_int8_budget", device="local", threads=1, status="ok",
                 diagnosis={**result.compact(), "search": {"message": "meets", "steps": [{}], "chosen": {}}})
    page = diagnosis_html([row])
    worst = result.layers[0]
    assert worst.added_cosine_loss > 0
    assert f"<title>added cosine loss {worst.added_cosine_loss}</title>" in page
    assert "red: added cosine loss (log scale" in page and "red: isolated" not in page
    bar = page.split(f"<title>added cosine loss {worst.added_cosine_loss}")[0].rsplit('width="', 1)[1]
    assert float(bar.split('"')[0]) > 0  # the worst op's bar is drawn
    tf_row = Result(model="m", flag_set="int8_budget", device="local", threads=1, status="ok",
                    diagnosis={**tf_diagnosis().compact(), "search": {"message": "meets", "steps": [], "chosen": {}}})
    tf_page = diagnosis_html([tf_row])
    assert "red: isolated, blue: accumulated rmse/scale" in tf_page and "<title>isolated 62.3</title>" in tf_page


def test_the_session_logs_go_in_out_logs_not_out_logs_logs(quantizer_run):
    _result, out = quantizer_run
    logs = out / "logs"
    assert sorted(p.name for p in logs.glob("*.log")), f"no session logs in {logs}: {sorted(out.rglob('*'))}"
    assert not (logs / "logs").exists()


@pytest.mark.parametrize("flag_set, backend, chosen", [
    ("int8", "auto", "tf"), ("int16x8", "auto", "quantizer"),  # TF's int16x8 output is refused by LiteRT
    ("aeq_static_int16x8", "auto", "quantizer"), ("int8", "quantizer", "quantizer"), ("int16x8", "tf", "tf"),
])
def test_auto_follows_the_flag_sets_tool_and_sends_int16_to_the_quantizer(flag_set, backend, chosen):
    from harness.core.flag_sets import resolve_flag_sets
    from harness.pipeline.diagnose_backends import choose_backend

    assert choose_backend(resolve_flag_sets([flag_set], {})[0], backend).name == chosen
