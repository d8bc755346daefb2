"""`original = PATH` on a .tflite model entry (issue 14), without TensorFlow: the config
takes it, refuses it where it means nothing, carries it through the payload and --resume,
and the .tflite shares its original's reference outputs (one cache key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import (
    campaign_config,
    campaign_from_config,
    load_campaign,
    model_payload,
    reference_model,
)
from harness.convert.cache import Cache
from harness.core.errors import UsageError
from harness.pipeline.build import Builder

from .conftest import MODELS, ROOT

TINY = ROOT / "tests" / "data" / "tiny.tflite"
CNN = MODELS / "digits_cnn.keras"


def _campaign(tmp_path: Path, body: str):
    toml = tmp_path / "c.toml"
    toml.write_text(body)
    return load_campaign(toml)


def test_a_tflite_takes_its_original_and_shares_its_references(tmp_path):
    c = _campaign(tmp_path, f"""
[[models]]
name = "cnn"
path = "{CNN}"
[[models]]
name = "cnn_official"
path = "{TINY}"
original = "{CNN}"
""")
    own, official = c.models
    assert (official.kind, official.original, official.original_kind) == ("tflite", CNN.resolve(), "keras")
    ref = reference_model(official)
    assert (ref.kind, ref.path, ref.original) == ("keras", CNN.resolve(), None)
    assert model_payload(official)["original"] == {"path": str(CNN.resolve()), "kind": "keras", "entry": None}
    again = campaign_from_config(campaign_config(c))  # what --resume rebuilds
    assert again.models[1].original == official.original and again.models[1].original_kind == "keras"
    b = Builder(c, Cache(tmp_path / "cache"), {"tensorflow": "x"}, tmp_path / "out", 1)
    assert b._reference_key(own) == b._reference_key(official)  # the same references, computed once


@pytest.mark.parametrize("entry, fragment", [
    (f'path = "{CNN}"\noriginal = "{CNN}"', "original applies to a .tflite model"),
    (f'path = "{TINY}"\noriginal = "{TINY}"', "is a .tflite; give the model it was converted from"),
    (f'path = "{TINY}"\noriginal = "missing_dir/"', "does not exist"),
    (f'path = "{TINY}"\noriginal_kind = "keras"', "original_kind needs original = PATH"),
    (f'path = "{TINY}"\noriginal = 3', "original must be a non-empty string"),
    # found by the fuzz test in test_untrusted_inputs.py: a list where a path belongs was a TypeError
    (f'path = "{TINY}"\nsamples = []', "samples must be a non-empty string"),
    (f'path = "{TINY}"\nrepresentative = 1', "representative must be a non-empty string"),
    (f'path = "{TINY}"\nsignature = ["a"]', "signature must be a non-empty string"),
    (f'path = "{TINY}"\nname = 1', "name must be a non-empty string"),
])
def test_original_where_it_means_nothing_is_a_usage_error(tmp_path, entry, fragment):
    with pytest.raises(UsageError, match=fragment):
        _campaign(tmp_path, f"[[models]]\n{entry}\n")
