"""Sample data of the right rank but the wrong size fails early, as that model's rows.

Every known dimension of a model input except the batch axis must match the sample
arrays (and `input_shapes` may only fill unknown ones); dimensions the model leaves
unknown take any size. Before, a wrong size was reported with the file's name only, a
contradicting `input_shapes` reached Keras ("layer is incompatible") or, for a .tflite,
the interpreter, which resized the input and measured Inf/NaN outputs as `unhealthy`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.core.samples import SampleError, check_fit, resolve_shapes

from .conftest import ROOT, run_cli

pytestmark = pytest.mark.cost(20)  # seconds on one quiet core, for the xdist order (docs/testing.md)
TINY = ROOT / "tests" / "data" / "tiny.tflite"  # input x: (1, 8) float32

# ------------------------------------------------------------------ without TensorFlow

def test_dynamic_dimensions_take_any_size():
    for n in (5, 16):
        shapes = resolve_shapes(["seq"], [(1, None, 8)], {}, [np.zeros((3, n, 8), np.float32)], "m")
        assert shapes == [(1, n, 8)]


def test_wrong_size_names_model_input_both_shapes_and_fix():
    with pytest.raises(SampleError) as err:
        resolve_shapes(["image"], [(None, 28, 28, 1)], {}, [np.zeros((8, 32, 32, 1), np.float32)], "cnn")
    assert str(err.value) == ("cnn: samples for input 'image' have shape (8, 32, 32, 1); the model takes "
                              "(None, 28, 28, 1): resize the samples to (N, 28, 28, 1)")


def test_input_shapes_may_only_fill_unknown_dimensions():
    with pytest.raises(SampleError, match=r"input_shapes gives input 'image' shape \[1, 32, 32, 1\]; "
                                          r"the model takes \(None, 28, 28, 1\)"):
        resolve_shapes(["image"], [(None, 28, 28, 1)], {"image": (1, 32, 32, 1)}, None, "cnn")
    with pytest.raises(SampleError, match=r"input_shapes names \['img'\]"):
        resolve_shapes(["image"], [(None, 28, 28, 1)], {"img": (1, 28, 28, 1)}, None, "cnn")
    # a configured size for an unknown dimension must then match the samples
    with pytest.raises(SampleError, match="with input_shapes \\[1, 16, 8\\]: resize the samples or change input_shapes"):
        resolve_shapes(["seq"], [(1, None, 8)], {"seq": (1, 16, 8)}, [np.zeros((2, 5, 8), np.float32)], "rnn")


@pytest.mark.parametrize("arr, dtype, fragment", [
    (np.zeros((2, 8), np.complex64), "float32", "are complex"),
    (np.full((2, 8), 300), "uint8", "outside uint8's 0..255"),
    (np.full((2, 8), -1), "uint8", "outside uint8's"),
    (np.full((2, 8), 1e39), "float32", "too large for float32"),
    (np.full((2, 8), 0.5), "int32", "needs integer samples"),
    (np.full((2, 8), 2), "bool", "give booleans or 0/1 integers"),
])
def test_unsafe_casts_are_refused(arr, dtype, fragment):
    with pytest.raises(SampleError, match=fragment):
        check_fit("f.npz", [arr], ["x"], [(1, 8)], [dtype])


def test_safe_casts_pass():
    for arr, dtype in [(np.ones((2, 8)), "float32"), (np.full((2, 8), 7), "int8"), (np.ones((2, 8), np.int64), "float32"),
                       (np.ones((2, 8), np.int64), "bool"), (np.ones((2, 8), bool), "float32")]:
        (out,) = check_fit("f.npz", [arr], ["x"], [(1, 8)], [dtype])
        assert out.dtype == np.dtype(dtype) and (out == arr).all()


# ------------------------------------------------------------------------ through the CLI

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The Keras models of tests/data/shapes/ (made once by make_fixtures.py --shapes and committed:
    the converter's TensorFlow is the only one this module starts) and sample files for them."""
    out = tmp_path_factory.mktemp("shape_models")
    for model in ("fixed", "nobatch", "dyn"):
        shutil.copyfile(ROOT / "tests" / "data" / "shapes" / f"{model}.keras", out / f"{model}.keras")
    rng = np.random.default_rng(0)
    np.savez(out / "good.npz", image=rng.random((6, 8, 8, 1), dtype=np.float32))
    np.savez(out / "big.npz", image=rng.random((6, 10, 10, 1), dtype=np.float32))
    np.savez(out / "seq5.npz", seq=rng.random((3, 5, 8), dtype=np.float32))
    np.savez(out / "seq16.npz", seq=rng.random((3, 16, 8), dtype=np.float32))
    np.savez(out / "x9.npz", x=rng.random((4, 9), dtype=np.float32))
    return out


def test_wrong_size_samples_are_rows_and_the_good_model_runs(models, tmp_path):
    (tmp_path / "c.toml").write_text(f"""
name = "sample-shapes"
[settings]
flag_sets = ["fp32", "int8"]
runs = 3
warmup_runs = 1
min_seconds = 0
eval_samples = 4
[[models]]
name = "good"
path = "{models}/fixed.keras"
samples = "{models}/good.npz"
[[models]]
name = "nobatch_good"
path = "{models}/nobatch.keras"
samples = "{models}/good.npz"
[[models]]
name = "big"
path = "{models}/nobatch.keras"
samples = "{models}/big.npz"
[[models]]
name = "big_calib"
path = "{models}/fixed.keras"
samples = "{models}/good.npz"
representative = "{models}/big.npz"
[[models]]
name = "dyn5"
path = "{models}/dyn.keras"
samples = "{models}/seq5.npz"
[[models]]
name = "dyn16"
path = "{models}/dyn.keras"
samples = "{models}/seq16.npz"
[[models]]
name = "tfl_big"
path = "{TINY}"
samples = "{models}/x9.npz"
[[models]]
name = "tfl_shapes"
path = "{TINY}"
samples = "{models}/x9.npz"
input_shapes = {{ x = [1, 9] }}
""")
    proc = run_cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--store",
                   str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"),
                   "--workers", "1", timeout=600)  # one TensorFlow: parallel conversion is not tested here
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["model"], r["flag_set"]): r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    for fs in ("fp32", "int8"):
        assert rows[("good", fs)]["status"] == "ok", rows[("good", fs)]["reason"]
        big = rows[("big", fs)]
        assert big["status"] == "input_error" and big["failure_category"] == "sample_data"  # the converter was never asked
        assert big["reason"] == ("big: samples for input 'image' have shape (6, 10, 10, 1); the model takes "
                                 "(None, 8, 8, 1): resize the samples to (N, 8, 8, 1)")
        calib = rows[("big_calib", fs)]
        assert calib["status"] == "input_error"
        assert calib["reason"].startswith("big_calib: representative samples (big.npz) for input 'image' have "
                                          "shape (6, 10, 10, 1); the model takes (1, 8, 8, 1)")
    for fs in ("fp32", "int8"):
        # An ordinary Keras model (batch None): once converted from a traced concrete function
        # with its weights left as resource variables, so fp32 ignored its input ("same for
        # every input") and int8 calibration crashed in READ_VARIABLE.
        r = rows[("nobatch_good", fs)]
        assert r["status"] == "ok", (fs, r["reason"])
        assert r["drift"]["cosine"] > 0.99 and r["drift"]["top1_agreement"] >= 0.75, (fs, r["drift"])
    for name in ("dyn5", "dyn16"):  # unknown dimensions take any size: prepared, converted, measured
        r = rows[(name, "fp32")]
        assert r["status"] == "ok", (name, r["reason"])
        assert r["drift"]["max_abs"] < 1e-4, (name, r["drift"])
    tfl = rows[("tfl_big", "as_given")]
    assert tfl["status"] == "input_error"
    assert tfl["reason"] == ("tfl_big: samples for input 'x' have shape (4, 9); the model takes (1, 8): "
                             "resize the samples to (N, 8)")
    shaped = rows[("tfl_shapes", "as_given")]  # before: resized to (1, 9) by the interpreter and measured
    assert shaped["status"] == "input_error"
    assert shaped["reason"].startswith("tfl_shapes: input_shapes gives input 'x' shape [1, 9]; the model takes (1, 8)")
    assert all("\n" not in r["reason"] for r in rows.values())
