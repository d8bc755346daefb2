"""Keras models load with safe_mode on (issue 22, item 4): a Lambda layer's code never runs
unless the campaign marks that one model `trusted = true`, and the row says how."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

# One child with TensorFlow: make a model with a Lambda layer, then load it both ways.
CHILD = """
import json, sys, numpy as np, keras
from harness.convert.sources import SourceError, load_keras
inp = keras.Input((4,), name="x")
out = keras.layers.Dense(3, activation="softmax")(keras.layers.Lambda(lambda t: t * 2.0)(inp))
keras.Model(inp, out).save(sys.argv[1])
np.savez(sys.argv[2], x=np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32))
try:
    load_keras(__import__("pathlib").Path(sys.argv[1]))
    plain = "loaded"
except SourceError as exc:
    plain = str(exc)
trusted = load_keras(__import__("pathlib").Path(sys.argv[1]), trusted=True)
print(json.dumps({"plain": plain, "trusted_inputs": [i.name for i in trusted.inputs]}))
"""


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("lambda")
    model, samples = d / "lam.keras", d / "lam.npz"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model), str(samples)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model, samples, json.loads(proc.stdout.strip().splitlines()[-1])


def test_safe_mode_refuses_the_lambda_and_trusted_loads_it(lambda_model):
    _, _, got = lambda_model
    assert "Lambda" in got["plain"] and "trusted = true" in got["plain"], got["plain"]
    assert got["trusted_inputs"] == ["x"]


def test_the_row_says_how_to_allow_it(lambda_model, tmp_path):
    model, samples, _ = lambda_model
    (tmp_path / "c.toml").write_text(
        '[settings]\nflag_sets = ["fp32"]\nruns = 2\nmin_seconds = 0\nwarmup_runs = 0\neval_samples = 2\n'
        f'[[models]]\nname = "plain"\npath = "{model}"\nsamples = "{samples}"\n')
    proc = run_cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--store",
                   str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"),
                   "--workers", "1", timeout=600)  # one TensorFlow: parallel conversion is not tested here
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads((tmp_path / "run" / "results.json").read_text())
    assert row["status"] != "ok" and "trusted = true for this model" in row["reason"], row["reason"]


def test_trusted_must_be_a_boolean_and_keys_the_cache(tmp_path):
    from harness.config import load_campaign, model_payload
    from harness.core.errors import UsageError

    tiny = ROOT / "tests" / "data" / "tiny.tflite"
    (tmp_path / "c.toml").write_text(f'[[models]]\npath = "{tiny}"\ntrusted = "yes"\n')
    with pytest.raises(UsageError, match="trusted must be true or false"):
        load_campaign(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text(f'[[models]]\npath = "{tiny}"\ntrusted = true\n[[models]]\nname = "b"\npath = "{tiny}"\n')
    a, b = load_campaign(tmp_path / "c.toml").models
    assert a.trusted and not b.trusted
    assert model_payload(a)["trusted"] is True and "trusted" not in model_payload(b)
