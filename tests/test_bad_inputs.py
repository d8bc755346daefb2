"""A catalogue of bad inputs through the real CLI (issue 7).

Two kinds of answer, decided once and used everywhere:

* **usage error** -- the run cannot start as asked (a missing or empty file, bad TOML, an
  unknown name, a folder that cannot be written): one line on stderr naming the thing and
  the fix, exit code 2, no traceback unless --debug. Nothing has run, nothing is stored.
* **row** -- the thing exists but turns out to be bad once opened (a corrupt .tflite, a model
  that does not load, sample data that does not fit it): that model's rows get a status and
  the loader's one-line reason, and the other models of the same run go on (exit 0).

So a missing or empty `.tflite` is a usage error (there is nothing to run), while a
truncated, random-byte or zero-filled one is a `runtime_failed` row with the reader's
message. With tests/test_cli_errors.py (14 cases) this file brings the catalogue to more than
30 distinct cases; device-side bad inputs (full disk, missing benchmark_model, offline,
unauthorized, silent devices) are in tests/test_lost_devices.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODELS, ROOT, run_cli

DATA = ROOT / "tests" / "data"
TINY = DATA / "tiny.tflite"
CNN = str(MODELS / "digits_cnn.keras")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "empty.tflite").write_bytes(b"")
    (d / "afile").write_text("I am a file, not a folder\n")
    (d / "latin1.toml").write_bytes(b"name = \"caf\xe9\"\n")
    (d / "nomodels.toml").write_text('name = "x"\n')
    (d / "sm_empty").mkdir()
    (d / "notes.txt").write_text("not data")
    campaigns = {
        "kind": f'[[models]]\npath = "{TINY}"\nkind = "onnx"\n',
        "flagopt": f'[settings]\nflag_sets = ["mine"]\n[flag_sets.mine]\nbogus_option = 1\n[[models]]\npath = "{CNN}"\n',
        "setting": f'[settings]\nrunz = 5\n[[models]]\npath = "{TINY}"\n',
        "toplevel": f'nmae = "x"\n[[models]]\npath = "{TINY}"\n',
        "threads": f'[settings]\nthreads = "two"\n[[models]]\npath = "{TINY}"\n',
        "negative": f'[settings]\ntimeout_s = -1\n[[models]]\npath = "{TINY}"\n',
        "boolruns": f'[settings]\nruns = true\n[[models]]\npath = "{TINY}"\n',
        "dupes": f'[[models]]\npath = "{TINY}"\n[[models]]\npath = "{TINY}"\n',
        "nosavedmodel": '[[models]]\npath = "sm_empty"\nkind = "saved_model"\n',
        "cfentry": f'[[models]]\npath = "{ROOT}/tests/models/failing_models.py"\nkind = "concrete_function"\n',
        "shapes": f'[[models]]\npath = "{TINY}"\ninput_shapes = {{ x = [1, -8] }}\n',
        "device": f'[settings]\ndevices = ["local", "toaster"]\n[[models]]\npath = "{TINY}"\n',
        "noflagsets": f'[settings]\nflag_sets = []\n[[models]]\npath = "{TINY}"\n',
        "repext": f'[[models]]\npath = "{TINY}"\nrepresentative = "notes.txt"\n',
        "modelsnotarray": 'models = "tiny.tflite"\n',
        "nopath": '[[models]]\nname = "x"\n',
    }
    for name, text in campaigns.items():
        (d / f"{name}.toml").write_text(text)
    return d


# (args, fragment of the one line); {d} is the folder above
USAGE_CASES = [
    (["run", "--model", "{d}/missing.tflite"], "does not exist"),
    (["run", "--model", "{d}/empty.tflite"], "is empty"),
    (["run", "{d}/kind.toml"], "kind 'onnx' is unknown"),
    (["run", "{d}/flagopt.toml"], "bogus_option"),
    (["run", "{d}/setting.toml"], "unknown setting 'runz'"),
    (["run", "{d}/toplevel.toml"], "unknown top-level key 'nmae'"),
    (["run", "{d}/threads.toml"], "threads must be"),
    (["run", "{d}/negative.toml"], "timeout_s must not be negative"),
    (["run", "{d}/boolruns.toml"], "runs must be int"),
    (["run", "{d}/dupes.toml"], "model names must be unique"),
    (["run", "{d}/nosavedmodel.toml"], "has no saved_model.pb"),
    (["run", "{d}/cfentry.toml"], "file.py:function"),
    (["run", "{d}/shapes.toml"], "input_shapes.x must be a list of positive integers"),
    (["run", "{d}/device.toml"], "toaster"),
    (["run", "{d}/noflagsets.toml"], "flag_sets must be a non-empty list"),
    (["run", "{d}/repext.toml"], "must be .npz or .npy"),
    (["run", "{d}/modelsnotarray.toml"], "models must be an array of tables"),
    (["run", "{d}/nopath.toml"], "path is required"),
    (["run", "{d}/latin1.toml"], "not a UTF-8 text file"),
    (["run", "{d}/nomodels.toml"], "the campaign has no models"),
    (["run", "--model", str(TINY), "--devices", "adb:a b"], "adb:a b"),
    (["run", "--model", str(TINY), "--out", "{d}/afile/sub"], "is a file, not a folder"),
    (["run", "--model", str(TINY), "--out", "/proc/tflite-harness-x"], "is not writable"),
    (["run", "--model", str(TINY), "--store", "{d}/afile/s.sqlite"], "is a file, not a folder"),
    (["run", "--model", str(TINY), "--timeout", "0"], "--timeout"),
    (["run", "--model", str(TINY), "--threads", "0"], "threads are positive integers"),
    (["run", "--resume", "no-such-run", "--store", "{d}/resume.sqlite"], "no run 'no-such-run'"),
    (["run", "{d}/kind.toml", "--resume", "x"], "--resume takes the stored run's campaign"),
    (["convert", "{d}/notes.txt", "--out", "{d}/conv"], "cannot tell the model kind"),
]


@pytest.mark.parametrize("args, fragment", USAGE_CASES, ids=[" ".join(a)[:60] for a, _ in USAGE_CASES])
def test_usage_errors_are_one_line_exit_2(files, args, fragment):
    proc = run_cli(*[a.format(d=files) for a in args], timeout=60)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.stderr.startswith("error:"):
        assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_catalogue_has_at_least_30_distinct_cases():
    from tests import test_cli_errors

    distinct = {tuple(a) for a, _ in test_cli_errors.CASES} | {tuple(a) for a, _ in USAGE_CASES}
    rows = len(ROW_CASES) + len(SLOW_ROW_CASES)
    assert len(distinct) + rows >= 30 + 12


def test_debug_shows_the_traceback_of_a_usage_error(files):
    proc = run_cli("--debug", "run", "--model", str(TINY), "--out", f"{files}/afile/sub", timeout=60)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# ----------------------------------------------------------------------------------- rows

# model name -> (file or samples maker, status, fragment of the reason)
ROW_CASES = {
    "truncated": ("tflite", "runtime_failed", "corrupt TFLite flatbuffer"),
    "random": ("tflite", "runtime_failed", "not a TFLite flatbuffer"),
    "zeros": ("tflite", "runtime_failed", "not a TFLite flatbuffer"),
    "wrong_shape": ("samples", "input_error", "have shape (4, 9); the model takes (1, 8): resize the samples to (N, 8)"),
    "wrong_dtype": ("samples", "input_error", "not numbers"),
    "label_count": ("samples", "input_error", "labels must be integers, one per sample (4)"),
    "float_labels": ("samples", "input_error", "labels must be integers"),
    "pickled": ("samples", "input_error", "pickled objects, which are never loaded"),
    "wrong_keys": ("samples", "input_error", "key the arrays by input name"),
    "not_npz": ("samples", "input_error", "cannot read it as .npy/.npz"),
}


def _row_inputs(d: Path) -> None:
    blob = TINY.read_bytes()
    (d / "truncated.tflite").write_bytes(blob[: len(blob) // 2])
    (d / "random.tflite").write_bytes(np.random.default_rng(0).bytes(len(blob)))
    (d / "zeros.tflite").write_bytes(bytes(len(blob)))
    x = np.random.default_rng(1).random((4, 8), dtype=np.float32)
    np.savez(d / "wrong_shape.npz", x=np.zeros((4, 9), np.float32))
    np.savez(d / "wrong_dtype.npz", x=np.array([["a"] * 8] * 4))
    np.savez(d / "label_count.npz", x=x, labels=np.arange(3))
    np.savez(d / "float_labels.npz", x=x, labels=np.linspace(0, 1, 4))
    np.savez(d / "pickled.npz", x=np.array([object() for _ in range(4)], dtype=object))
    np.savez(d / "wrong_keys.npz", a=x, b=x)
    (d / "not_npz.npz").write_bytes(b"PK\x03\x04 not really a zip")


def _rows(out: Path) -> dict[str, dict]:
    return {r["model"]: r for r in json.loads((out / "results.json").read_text())}


def test_bad_files_and_data_are_rows_and_the_healthy_model_runs(tmp_path):
    _row_inputs(tmp_path)
    lines = ['name = "bad-rows"', "[settings]", "runs = 3", "min_seconds = 0", "eval_samples = 4"]
    for name, (what, _, _) in ROW_CASES.items():
        lines += ["[[models]]", f'name = "{name}"']
        if what == "tflite":
            lines.append(f'path = "{name}.tflite"')
        else:
            lines += [f'path = "{TINY}"', f'samples = "{name}.npz"']
    lines += ["[[models]]", 'name = "healthy"', f'path = "{TINY}"']
    (tmp_path / "c.toml").write_text("\n".join(lines) + "\n")
    proc = run_cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
                   "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    rows = _rows(tmp_path / "run")
    assert rows["healthy"]["status"] == "ok", rows["healthy"]["reason"]
    for name, (_, status, fragment) in ROW_CASES.items():
        r = rows[name]
        assert r["status"] == status and fragment in r["reason"], (name, r["status"], r["reason"])
        assert "\n" not in r["reason"] and len(r["reason"]) < 500


# -------------------------------------------------------------------- models that do not load

SLOW_ROW_CASES = {
    "text": ('path = "text.keras"', "not a loadable Keras model"),
    "nomodel": ('path = "nomodel.h5"', "No model config found"),
    "sm_novars": ('path = "sm_novars"', "has no variables/ folder"),
    "sm_nosig": ('path = "sm_ok"\nsignature = "nope"', "has no signature 'nope'"),
    "dynamic": ('path = "dynamic.keras"', "set input_shapes = { seq = [1, 1, 8] }"),
    "tokens": ('path = "tokens.keras"', "give samples"),
}


@pytest.mark.slow
def test_models_that_do_not_load_are_rows_and_the_campaign_goes_on(tmp_path):
    # made by tests/models/bad_models.py and committed: the converter is this test's only TensorFlow
    shutil.copytree(DATA / "bad_models", tmp_path, dirs_exist_ok=True)
    lines = ['name = "bad-models"', "[settings]", 'flag_sets = ["fp32"]', "runs = 3", "min_seconds = 0",
             "eval_samples = 4"]
    for name, (spec, _) in SLOW_ROW_CASES.items():
        lines += ["[[models]]", f'name = "{name}"', spec]
    lines += ["[[models]]", 'name = "healthy"', f'path = "{TINY}"']
    (tmp_path / "c.toml").write_text("\n".join(lines) + "\n")
    proc = run_cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
                   "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"),
                   "--workers", "1", timeout=600)  # one TensorFlow: parallel conversion is not tested here
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(tmp_path / "run")
    assert rows["healthy"]["status"] == "ok"
    for name, (_, fragment) in SLOW_ROW_CASES.items():
        r = rows[name]
        # a model that does not load is the converter's side; data it cannot take is the input's
        data = name in ("dynamic", "tokens")
        want = ("input_error", "sample_data") if data else ("conversion_failed", "load_error")
        assert (r["status"], r["failure_category"]) == want and fragment in r["reason"], (name, r["reason"])


# ----------------------------------------------------------------------------------- fuzzing

def _real_npz() -> bytes:
    import io

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.random((4, 8), dtype=np.float32), labels=np.arange(4))
    return buf.getvalue()


REAL_NPZ = _real_npz()


@st.composite
def mutated_npz(draw) -> bytes:
    data = bytearray(REAL_NPZ)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[pos:pos + 8] = bytes(len(data[pos:pos + 8]))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(blob=mutated_npz())
def test_fuzz_load_arrays_gives_arrays_or_our_clear_error(tmp_path, blob):
    """Mutated bytes of a real .npz: either arrays that pass our checks, or one SampleError line."""
    from harness.core.samples import SampleError, load_arrays

    path = tmp_path / "fuzz.npz"
    path.write_bytes(blob)
    try:
        arrays, labels = load_arrays(path, ["x"])
    except SampleError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert len(arrays) == 1 and isinstance(arrays[0], np.ndarray)
    assert labels is None or len(labels) == len(arrays[0])
