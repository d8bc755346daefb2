"""JAX models (kind = "jax"): loaded, converted and compared with JAX's own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax jaxlib)")

from harness.convert.pool import WorkerPool  # noqa: E402
from harness.core.flag_sets import BUILTIN_FLAG_SETS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.cost(27)]  # seconds on one quiet core, for the xdist order (docs/testing.md)
ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "jax_mlp.py"


def test_jax_mlp_converts_and_matches_jax(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model = {"name": "jax_mlp", "kind": "jax", "path": str(MLP), "entry": "model", "signature": "serving_default",
             "samples": str(ROOT / "models" / "jax_mlp.samples.npz")}
    pool = WorkerPool(1, tmp_path / "logs", timeout_s=300)  # one TensorFlow + JAX import: parallelism is not tested here
    try:
        prep = pool.submit({"op": "prepare", "model": model, "eval_samples": 16, "seed": 0,
                            "out_dir": str(tmp_path / "prep")}).result()
        assert prep.ok, prep.error
        assert prep.data["inputs"][0]["shape"] == [1, 64] and prep.data["eval_source"] == "samples"
        futures = {}
        for name in ("fp32", "int8_float_io"):
            fs = BUILTIN_FLAG_SETS[name]
            futures[name] = pool.submit({
                "op": "convert", "model": model, "options": fs.converter_options(),
                "rep_path": str(tmp_path / "prep" / "representative.npz") if fs.needs_representative_data else None,
                "shapes": [[1, 64]], "out_path": str(tmp_path / f"{name}.tflite")})
        answers = {n: f.result() for n, f in futures.items()}
        check = pool.submit({"op": "check", "model": model, "shapes": [[1, 64]]}).result()
    finally:
        pool.close()
    for name, ans in answers.items():
        assert ans.ok, f"{name}: {ans.error}"
        assert ans.data["jax_route"] in ("experimental_from_jax", "jax2tf")
    assert check.ok and check.data["params"] == 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert "dot_general" in check.data["jax_primitives"]

    with np.load(tmp_path / "prep" / "eval.npz") as ev, np.load(tmp_path / "prep" / "reference.npz") as rf:
        x, labels, ref = ev["0"], ev["labels"], rf["0"]
    assert (ref.argmax(-1) == labels).mean() > 0.85  # the reference is JAX itself, and it is a good model
    for name in answers:
        it = Interpreter(model_path=str(tmp_path / f"{name}.tflite"))
        it.allocate_tensors()
        d, o = it.get_input_details()[0], it.get_output_details()[0]
        got = []
        for i in range(len(x)):
            it.set_tensor(d["index"], x[i : i + 1])
            it.invoke()
            got.append(it.get_tensor(o["index"])[0].copy())
        got = np.stack(got)
        tol = 1e-5 if name == "fp32" else 0.05
        assert np.abs(got - ref).max() < tol, name
        assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9
