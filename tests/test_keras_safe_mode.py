"""Keras models load with safe_mode on (issue 22, item 4): a Lambda layer's code never runs
unless the campaign marks that one model `trusted = true`, and the row says how."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

MAKE = """
import sys, numpy as np, keras
inp = keras.Input((4,), name="x")
out = keras.layers.Dense(3, activation="softmax")(keras.layers.Lambda(lambda t: t * 2.0)(inp))
keras.Model(inp, out).save(sys.argv[1])
np.savez(sys.argv[2], x=np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32))
"""


def test_lambda_layer_needs_trusted(tmp_path):
    model, samples = tmp_path / "lam.keras", tmp_path / "lam.npz"
    subprocess.run([sys.executable, "-c", MAKE, str(model), str(samples)], check=True, capture_output=True,
                   timeout=300)
    (tmp_path / "c.toml").write_text(
        '[settings]\nflag_sets = ["fp32"]\nruns = 2\nmin_seconds = 0\nwarmup_runs = 0\neval_samples = 2\n'
        f'[[models]]\nname = "plain"\npath = "{model}"\nsamples = "{samples}"\n'
        f'[[models]]\nname = "trusted"\npath = "{model}"\nsamples = "{samples}"\ntrusted = true\n')
    proc = run_cli("run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--store",
                   str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    assert rows["plain"]["status"] != "ok"
    assert "Lambda" in rows["plain"]["reason"] and "trusted = true" in rows["plain"]["reason"]
    assert rows["trusted"]["status"] == "ok", rows["trusted"]["reason"]


def test_trusted_must_be_a_boolean(tmp_path):
    from harness.config import load_campaign
    from harness.core.errors import UsageError

    from .conftest import ROOT

    (tmp_path / "c.toml").write_text(f'[[models]]\npath = "{ROOT}/tests/data/tiny.tflite"\ntrusted = "yes"\n')
    with pytest.raises(UsageError, match="trusted must be true or false"):
        load_campaign(tmp_path / "c.toml")
