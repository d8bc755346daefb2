"""Train the bundled JAX MLP (jax_mlp.py) on scikit-learn's digits with plain JAX (no optax).

    .venv/bin/python models/build_jax_mlp.py

Writes jax_mlp.params.npz (w1, b1, w2, b2, w3, b3) and jax_mlp.samples.npz (x: 64 held-out
images as float32 (64, 64) in [0, 1], labels: int64). Deterministic (fixed seeds and split);
takes a few seconds on CPU.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from jax_mlp import forward

HERE = Path(__file__).resolve().parent
SEED = 0


def init(key, sizes=(64, 64, 32, 10)):
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        key, sub = jax.random.split(key)
        params[f"w{i}"] = jax.random.normal(sub, (n_in, n_out), jnp.float32) * jnp.sqrt(2.0 / n_in)
        params[f"b{i}"] = jnp.zeros((n_out,), jnp.float32)
    return params


def loss(params, x, y):
    probs = forward(params, x)
    return -jnp.mean(jnp.log(probs[jnp.arange(len(y)), y] + 1e-9))


@jax.jit
def step(params, x, y, lr=0.1):
    grads = jax.grad(loss)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def main() -> None:
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=SEED)
    params = init(jax.random.PRNGKey(SEED))
    rng = np.random.default_rng(SEED)
    for _epoch in range(60):
        order = rng.permutation(len(x_tr))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            params = step(params, x_tr[idx], y_tr[idx])
    acc = float(np.mean(np.argmax(np.asarray(forward(params, x_te)), -1) == y_te))
    print(f"test accuracy {acc:.3f}")
    np.savez(HERE / "jax_mlp.params.npz", **{k: np.asarray(v, np.float32) for k, v in params.items()})
    np.savez(HERE / "jax_mlp.samples.npz", x=x_te[:64], labels=y_te[:64])


if __name__ == "__main__":
    main()
