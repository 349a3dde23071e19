"""Every engine reports the same kinks on a user's cost: the branches an engine sees change (a stable
softmax's shift, a stable softplus's max and abs) are no kinks where the cost is smooth across them, and a
real kink (a ReLU's pre-activation at 0, |v| at 0, a max-pool's tie) is one for all of them.

The costs are written as users write them: plain numpy, the course's layout (examples as columns).
"""

from __future__ import annotations

import numpy as np
import pytest
from models import build

import fastcheck as fc

ENGINES = ["traced", "reference", "blackbox"]


def _course_mlp(sizes=(6, 5, 4), m=7, lambd=0.1, seed=0, output="softmax"):
    """A ReLU network, a stable softmax (or a stable sigmoid's softplus) and cross-entropy, and its backprop:
    ``(cost, params, grads_of, forward, X, Y)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes[0], m))
    Y = (np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], m)] if output == "softmax"
         else (rng.random((1, m)) > 0.5).astype(float))
    L = len(sizes) - 1
    params = {}
    for l in range(1, L + 1):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) * np.sqrt(2 / sizes[l - 1])
        params[f"b{l}"] = rng.standard_normal((sizes[l], 1)) * 0.1

    def forward(p):
        A, caches = X, []
        for l in range(1, L + 1):
            Z = p[f"W{l}"] @ A + p[f"b{l}"]
            caches.append((A, Z))
            A = np.maximum(0, Z) if l < L else Z
        return A, caches

    def cost(p):
        Z = forward(p)[0]
        if output == "softmax":
            shifted = Z - Z.max(axis=0, keepdims=True)
            loss = -np.sum(Y * (shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True)))) / m
        else:
            loss = np.sum(np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z))) - Y * Z) / m
        return loss + lambd / (2 * m) * sum(np.sum(p[f"W{l}"] ** 2) for l in range(1, L + 1))

    def grads_of(p):
        Z, caches = forward(p)
        if output == "softmax":
            e = np.exp(Z - Z.max(axis=0, keepdims=True))
            dZ = (e / e.sum(axis=0, keepdims=True) - Y) / m
        else:
            dZ = (1 / (1 + np.exp(-Z)) - Y) / m
        grads = {}
        for l in range(L, 0, -1):
            A, _ = caches[l - 1]
            grads[f"dW{l}"] = dZ @ A.T + lambd / m * p[f"W{l}"]
            grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True)
            if l > 1:
                dZ = (p[f"W{l}"].T @ dZ) * (caches[l - 2][1] > 0)
        return grads

    return cost, params, grads_of, forward, X, Y


def _kinks(report) -> list[str]:
    return sorted(e.label for e in report.kinks)


def _planted(output):
    """Hidden unit 0 exactly at ReLU's 0 on example 1; then example 0's two largest logits tied (softmax), or
    its logit at exactly 0 (softplus): branches of the stable formulas, where the cost is smooth."""
    cost, params, grads_of, forward, X, Y = _course_mlp(sizes=(6, 5, 4 if output == "softmax" else 1), output=output)
    params["b1"][0, 0] = -(params["W1"] @ X)[0, 1]
    Z = forward(params)[0]
    if output == "softmax":
        top = np.argsort(Z[:, 0])
        params["b2"][top[-2], 0] += Z[top[-1], 0] - Z[top[-2], 0]
        Z = forward(params)[0]
        assert Z[top[-1], 0] == Z[top[-2], 0]
    else:
        params["b2"][0, 0] -= Z[0, 0]
        assert forward(params)[0][0, 0] == 0
    assert forward(params)[1][0][1][0, 1] == 0
    return cost, params, grads_of(params), X, Y


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_a_stable_softmax_or_softplus_is_no_kink_and_a_relu_at_zero_is_one_for_every_engine(output):
    cost, params, grads, X, Y = _planted(output)
    reports = {engine: fc.check(cost, params, grads, engine=engine) for engine in ENGINES}
    net = fc.MLP([6, 5, 4 if output == "softmax" else 1], hidden="relu", output=output, l2=0.1)
    for engine in ("batched", "reference"):  # the same network as the built-in one
        reports[f"MLP {engine}"] = net.check(params, grads, X, Y, engine=engine)
    assert reports["traced"].settings["engine"] == "traced"
    kinks = {engine: _kinks(report) for engine, report in reports.items()}
    assert all(report.verdict == "pass" for report in reports.values())
    assert all(k == kinks["reference"] for k in kinks.values()), kinks
    assert "b1[0, 0]" in kinks["reference"]  # the ReLU at 0
    assert not [k for k in kinks["reference"] if k.startswith(("W2", "b2"))]  # the logits' branches: smooth


def test_max_pool_ties_and_abs_at_zero_are_kinks_for_every_engine():
    c = build("layer_max_pool_ties")
    pooled = [fc.check(c.cost, c.params, c.grads, engine=engine) for engine in ENGINES]
    assert [r.group("x").kinks for r in pooled] == [12, 12, 12]
    assert _kinks(pooled[0]) == _kinks(pooled[1]) == _kinks(pooled[2])

    v = np.array([0.0, 1.0, -2.0, 0.0])
    absolute = [fc.check(lambda t: float(np.sum(np.abs(t)) + t[1] ** 2), v, np.sign(v) + [0, 2, 0, 0],
                         engine=engine) for engine in ENGINES]
    assert [_kinks(r) for r in absolute] == [["theta[0]", "theta[3]"]] * 3
