"""Campaign parsing: good files load, every bad value is a one-line UsageError."""

from pathlib import Path

import pytest

from harness.config import BUNDLED_CAMPAIGN, load_campaign
from harness.core.errors import UsageError
from harness.core.flag_sets import BUILTIN_FLAG_SETS, DEFAULT_FLAG_SETS

from .conftest import MODELS


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_bundled_campaign_has_five_models_and_six_flag_sets():
    c = load_campaign(BUNDLED_CAMPAIGN)
    assert [m.kind for m in c.models] == ["keras"] * 4 + ["jax"]
    assert [fs.name for fs in c.flag_sets] == list(DEFAULT_FLAG_SETS)
    assert c.devices == ("local",)
    assert c.settings.threads == (1,)
    for m in c.models:
        assert m.samples
        assert m.representative or m.kind == "jax"  # the JAX model calibrates on its samples


def test_user_flag_set_and_settings(tmp_path):
    c = load_campaign(write(tmp_path, f"""
name = "x"
[settings]
threads = [1, 2]
flag_sets = ["fp32", "mine"]
runs = 7
[flag_sets.mine]
optimizations = ["DEFAULT"]
supported_types = ["float16"]
experimental_new_quantizer = true
[[models]]
path = "{MODELS / 'digits_cnn.keras'}"
"""))
    assert c.settings.threads == (1, 2) and c.settings.runs == 7
    mine = c.flag_sets[1]
    assert mine.name == "mine" and mine.options["experimental_new_quantizer"] is True
    assert not mine.needs_representative_data
    # sidecar samples are found next to the model
    assert c.models[0].samples == MODELS / "digits_cnn.samples.npz"


def test_builtin_flag_sets_need_representative_data_only_for_full_integer():
    needs = {n for n, fs in BUILTIN_FLAG_SETS.items() if fs.needs_representative_data}
    assert needs == {"int8", "int8_float_io", "int16x8"}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name = ", "not valid TOML"),
        ("bogus = 1", "unknown top-level key 'bogus'"),
        ("[settings]\nthreads = 'two'", "threads must be"),
        ("[settings]\nthreads = [0]", "threads must be a positive integer"),
        ("[settings]\nruns = 0", "runs must be at least 1"),
        ("[settings]\nwarp = 9", "unknown setting 'warp'"),
        ("[settings]\nxnnpack = 'yes'", "xnnpack must be bool"),
        ("[settings]\nflag_sets = ['nope']", "unknown flag set 'nope'"),
        ("[flag_sets.m]\noptimizations = ['FAST']", "optimizations has 'FAST'"),
        ("[flag_sets.m]\nsupported_ops = 'TFLITE_BUILTINS'", "supported_ops must be a list"),
        ("[flag_sets.m]\ncolour = 'red'", "unknown converter option 'colour'"),
        ("[flag_sets.m]\ninference_input_type = 'int4'", "inference_input_type has 'int4'"),
        ("[[models]]\nname = 'a'", "path is required"),
        ("[[models]]\npath = 'missing.keras'", "does not exist"),
        ("[[models]]\npath = 'CNN'\nkind = 'pytorch'", "kind 'pytorch' is unknown"),
        (f"[[models]]\npath = '{MODELS / 'digits_cnn.keras'}'\ninput_shapes = {{ x = [1, -8] }}", "positive integers"),
        (f"[[models]]\npath = '{MODELS / 'digits_cnn.keras'}'\nsamples = 'nope.npz'", "samples file"),
        (f"[[models]]\npath = '{MODELS / 'digits_cnn.keras'}'\n[[models]]\npath = '{MODELS / 'digits_cnn.keras'}'",
         "model names must be unique"),
    ],
)
def test_bad_campaigns(tmp_path, text, fragment):
    (tmp_path / "CNN").mkdir()
    with pytest.raises(UsageError) as err:
        load_campaign(write(tmp_path, text))
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_campaign_file(tmp_path):
    with pytest.raises(UsageError, match="campaign file not found"):
        load_campaign(tmp_path / "none.toml")
