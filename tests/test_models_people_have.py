"""Models of the shapes users bring (issue 14), converted and measured through the real CLI.

- a Keras model with two named inputs and two outputs under every int8-family flag set: it
  converts from its exported SavedModel, whose signature orders the inputs otherwise, so
  representative data must go in by name (it used to fail calibration: conv.cc "2 != 4");
- samples saved as `np.stack` of batch-1 inputs, (N, 1, 12) for a (None, 12) model (refused);
- a TF1-style SavedModel (tf.compat.v1 builder) and a SavedModel whose object graph holds
  optimizer slot variables, which TF 2.21's loader cannot revive (`add_slot`): both go
  through the tf.compat.v1 graph path, reference outputs from that graph, and the rows say so.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.core.samples import drop_batch_axis

from .conftest import ROOT, TEST_MODELS, run_cli

pytestmark = pytest.mark.cost(80)  # seconds on one quiet core, for the xdist order (docs/testing.md)

FLAG_SETS = ["fp32", "int8", "int8_float_io", "int16x8"]


# ------------------------------------------------------------------ without TensorFlow

def test_stacked_batch_one_samples_drop_that_axis_with_a_note():
    arrays, notes = drop_batch_axis(["x"], [(None, 12)], [np.zeros((16, 1, 12), np.float32)])
    assert arrays[0].shape == (16, 12)
    assert notes == ["samples for input 'x' have shape (16, 1, 12): read as 16 samples of shape (1, 12) "
                     "(each sample kept its batch axis)"]


@pytest.mark.parametrize("model_shape, sample_shape", [
    ((None, 1, 12), (16, 1, 12)),   # the axis of size 1 is the model's own: nothing to drop
    ((None, 12), (16, 2, 12)),      # not a batch-1 axis
    ((4, 12), (16, 1, 12)),         # the model's batch is 4, not 1
    ((None, 12), (16, 1, 13)),      # the rest does not match the model
])
def test_ambiguous_or_misfit_samples_are_left_as_they_are(model_shape, sample_shape):
    arr = np.zeros(sample_shape, np.float32)
    arrays, notes = drop_batch_axis(["x"], [model_shape], [arr])
    assert arrays[0] is arr and notes == []


# ------------------------------------------------------------------ end to end

# Runs make_shapes.py, then loads the slots SavedModel as a user would with TensorFlow's own
# loaders (the saved files alone decide the outcome, not this process), and writes what they
# said to slots_sm.tf2.txt for test_the_slots_fixture_is_what_tf2_cannot_load.
BUILD_AND_PROBE = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
import tensorflow as tf
path, said = sys.argv[1] + "/slots_sm", []
for f in (tf.saved_model.load, lambda p: tf.lite.TFLiteConverter.from_saved_model(p).convert()):
    try:
        f(path)
        said.append("loaded")
    except AttributeError as e:
        said.append(str(e))
open(path + ".tf2.txt", "w").write("\\n".join(said) + "\\n")
"""


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    models = root / "models"
    # one TensorFlow: build the models, then try TF 2.21's own loaders on the slots SavedModel
    built = subprocess.run([sys.executable, "-c", BUILD_AND_PROBE, str(TEST_MODELS / "make_shapes.py"), str(models),
                            "two", "stacked", "tf1", "slots", "official"], capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stderr[-3000:]
    toml = root / "campaign.toml"
    toml.write_text(f"""
name = "shapes"
[settings]
flag_sets = {json.dumps(FLAG_SETS)}
runs = 3
warmup_runs = 1
min_seconds = 0.0
eval_samples = 4

[[models]]
name = "two"
path = "{models / 'two.keras'}"

[[models]]
name = "stacked"
path = "{models / 'stacked.keras'}"
samples = "{models / 'stacked.samples.npy'}"

[[models]]
name = "tf1"
path = "{models / 'tf1_sm'}"

[[models]]
name = "slots"
path = "{models / 'slots_sm'}"

[[models]]
name = "official"
path = "{models / 'two_official.tflite'}"
original = "{models / 'two.keras'}"
samples = "{models / 'two.samples.npz'}"

[[models]]
name = "not_its_original"
path = "{ROOT / 'tests' / 'data' / 'tiny.tflite'}"
original = "{models / 'two.keras'}"
samples = "{models / 'two.samples.npz'}"
""")
    done = run_cli("run", str(toml), "--out", str(root / "run"), "--store", str(root / "s.sqlite"),
                   "--cache-dir", str(root / "cache"), "--workers", "1")  # one converter: no assertion is on parallel conversion
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    rows = {(r["model"], r["flag_set"]): r for r in json.loads((root / "run" / "results.json").read_text())}
    return root, rows


def _assert_ok_with_drift(row):
    assert row["status"] == "ok", (row["flag_set"], row["reason"])
    assert row["drift"] and row["drift"]["cosine"] > 0.98, row["drift"]


@pytest.mark.slow
@pytest.mark.parametrize("flag_set", FLAG_SETS)
def test_two_named_inputs_convert_and_calibrate_by_name(shapes_run, flag_set):
    _, rows = shapes_run
    row = rows[("two", flag_set)]
    _assert_ok_with_drift(row)
    assert row["representative"] == ("none" if flag_set == "fp32" else "samples")  # the sidecar two.calib.npz


@pytest.mark.slow
def test_samples_that_kept_their_batch_axis_are_read_and_noted(shapes_run):
    _, rows = shapes_run
    for fs in FLAG_SETS:
        row = rows[("stacked", fs)]
        _assert_ok_with_drift(row)
        assert row["eval_source"] == "samples"
        assert any("(16, 1, 12): read as 16 samples of shape (1, 12)" in w for w in row["warnings"]), row["warnings"]
        assert row["reason"].startswith("note: samples for input 'features' have shape (16, 1, 12)"), row["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("model, why", [
    ("tf1", "a TF1-style SavedModel (no object graph)"),
    ("slots", "'_UserObject' object has no attribute 'add_slot'"),
])
def test_older_saved_models_convert_through_the_graph_path(shapes_run, model, why):
    _, rows = shapes_run
    for fs in FLAG_SETS:
        row = rows[(model, fs)]
        _assert_ok_with_drift(row)
        assert row["conversion_path"] == "tf_compat_v1_graph"
        assert any("tf.compat.v1 graph path" in w and why in w for w in row["warnings"]), row["warnings"]
        assert "tf.compat.v1 graph path" in row["reason"]  # the table's reason column shows the note


@pytest.mark.slow
def test_the_slots_fixture_is_what_tf2_cannot_load(shapes_run):
    """The fixture is faithful: TF 2.21's loader and TFLiteConverter.from_saved_model both fail on it
    with the error users meet, so the rows above went through the fallback for that reason."""
    root, _ = shapes_run
    said = (root / "models" / "slots_sm.tf2.txt").read_text()  # written by the fixture's TensorFlow child
    assert said.split("\n")[:2] == ["'_UserObject' object has no attribute 'add_slot'"] * 2, said


@pytest.mark.slow
def test_a_tflite_made_elsewhere_gets_drift_against_its_original(shapes_run):
    """`original = PATH`: the official .tflite and the harness's own conversions of the same
    model are held to the same reference outputs, in one table."""
    root, rows = shapes_run
    row = rows[("official", "as_given")]
    _assert_ok_with_drift(row)
    assert row["drift"]["max_abs"] < 1e-4  # an fp32 export of the same model
    assert any("drift against the original" in w for w in row["warnings"]), row["warnings"]
    ours = rows[("two", "fp32")]
    assert abs(ours["drift"]["max_abs"] - row["drift"]["max_abs"]) < 1e-5  # same references, same fp32 graph
    timeline = json.loads((root / "run" / "logs" / "build-timeline.json").read_text())
    preps = [j["model"] for j in timeline["jobs"] if j["op"] == "prepare" and j["event"] == "submitted"]
    assert len([p for p in preps if p in ("two", "official")]) == 1, preps  # one preparation, shared


@pytest.mark.slow
def test_a_tflite_whose_original_does_not_fit_is_an_input_error(shapes_run):
    _, rows = shapes_run
    row = rows[("not_its_original", "as_given")]
    assert (row["status"], row["failure_category"]) == ("input_error", "input_mismatch")
    assert "the .tflite takes 1 input(s)" in row["reason"] and "the original 2" in row["reason"], row["reason"]


@pytest.mark.slow
def test_devices_feed_a_two_input_artifact_by_name(shapes_run, tmp_path):
    """The local runner and the ADB drift path match inputs by name, whatever order the job
    lists them in: the same inputs given as (vector, image) and (image, vector) give the same outputs."""
    import hashlib
    from pathlib import Path

    from harness.devices.adb.drift import ordered_inputs
    from harness.devices.base import MeasureJob
    from harness.devices.local import LocalDevice
    from harness.tflite.file import read_tflite

    _, rows = shapes_run
    art = Path(rows[("two", "int8")]["artifact_path"])
    rng = np.random.default_rng(5)
    image, vector = rng.random((3, 24, 24, 3), dtype=np.float32), rng.random((3, 5), dtype=np.float32)
    outs = {}
    for order in (("image", "vector"), ("vector", "image")):
        npz = tmp_path / f"{order[0]}.npz"
        arrays = {"image": image, "vector": vector}
        np.savez(npz, **{str(i): arrays[n] for i, n in enumerate(order)})
        job = MeasureJob(art, hashlib.sha256(art.read_bytes()).hexdigest(), npz, list(order), threads=1,
                         xnnpack=True, warmup_runs=0, runs=1, min_seconds=0.0, max_seconds=5.0, timeout_s=120)
        m = LocalDevice().measure(job)
        assert m.status == "ok", m.reason
        outs[order] = m.outputs
        tensors = ordered_inputs(read_tflite(art), list(order))
        assert [tuple(t.shape[1:]) for t in tensors] == [arrays[n].shape[1:] for n in order]
    for a, b in zip(outs[("image", "vector")], outs[("vector", "image")], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_check_reads_an_older_saved_model_through_the_graph_path(shapes_run):
    """`check` on the add_slot SavedModel: the signature's ops only (no checkpoint save/restore
    functions), the parameters from the checkpoint without the optimizer's slot, and it converts."""
    root, _ = shapes_run
    proc = run_cli("check", str(root / "models" / "slots_sm"), "--flag-sets", "fp32", "--json",
                   "--workers", "1", timeout=300)  # one TensorFlow: parallel conversion is not tested here
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["graph_ops"] == {"AddV2": 1, "MatMul": 1, "Softmax": 1}
    assert report["params"] == 6 * 4 + 4
    assert report["flag_sets"]["fp32"]["verdict"] == "works", report["flag_sets"]
