"""User problems for ``examples/nightly.toml``: factories ``module:function`` for ``fastcheck nightly``.

A factory returns ``(cost, params, grads)`` (optionally a 4th item, a vectorized
``batch_cost``); it may take a ``seed`` keyword, which the suite's points give. For
points after training (``train_steps``), ``grads`` must be a callable ``grads(params)``:
fastcheck trains with it, then checks it at the trained point.
"""

import os

import numpy as np


def logistic_regression(seed=0, n_features=5, n_classes=3, m=40, l2=0.01):
    """Softmax regression on random data: params ``{"W": (k, d), "b": (k,)}``, its exact gradient."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_features))
    y = rng.integers(0, n_classes, size=m)
    Y = np.eye(n_classes)[y]
    params = {"W": 0.1 * rng.standard_normal((n_classes, n_features)), "b": np.zeros(n_classes)}

    def probabilities(p):
        z = X @ p["W"].T + p["b"]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def cost(p):
        z = X @ p["W"].T + p["b"]
        top = z.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        return float(np.mean(lse - z[np.arange(m), y]) + 0.5 * l2 * np.sum(p["W"] ** 2))

    # NIGHTLY_EXAMPLE_DRIFT=3e-7 makes dW that much too large: how the README's regression was made
    drift = float(os.environ.get("NIGHTLY_EXAMPLE_DRIFT", "0"))

    def grads(p):
        delta = (probabilities(p) - Y) / m
        return {"W": (1.0 + drift) * (delta.T @ X) + l2 * p["W"], "b": delta.sum(axis=0)}

    return cost, params, grads
