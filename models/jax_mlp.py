"""A small JAX MLP classifier on scikit-learn's digits (8x8 images flattened to 64 floats).

Campaign entry (kind = "jax"):  path = "jax_mlp.py:model"
`model()` returns (fn, params, input_specs) as the harness expects: fn(params, x) -> probs.
Params are trained offline by build_jax_mlp.py and stored in jax_mlp.params.npz.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def forward(params, x):
    import jax
    import jax.numpy as jnp

    h = jax.nn.relu(jnp.dot(x, params["w1"]) + params["b1"])
    h = jax.nn.relu(jnp.dot(h, params["w2"]) + params["b2"])
    return jax.nn.softmax(jnp.dot(h, params["w3"]) + params["b3"], axis=-1)


def load_params(path=HERE / "jax_mlp.params.npz"):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k].astype(np.float32) for k in data.files}


def model():
    return forward, load_params(), [("x", (1, 64), "float32")]
