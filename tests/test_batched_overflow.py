"""Where the batched engine's identities overflow, it agrees with the reference engine all the same.

Inputs of 1e8 (tanh) or 1e20 (sigmoid) saturate the first hidden layer so that the exact
identities for the activation changes are 0/0 or inf/inf for some coordinates: those are
evaluated again by full forward passes, and the report says how many. A cost J(theta) that
is itself not finite is an error, in every engine.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp.batched import batched_engine
from fastcheck.engines.mlp.objective import MLPObjective
from fastcheck.engines.reference import reference_engine

EPS = 1e-7
COST_ULPS = 16


def scaled(hidden, output, scale, layers=(5, 4, 6, 3)):
    net = fc.MLP(list(layers), hidden=hidden, output=output, l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(7, seed=1)
    return net, params, scale * X, Y


CASES = [("tanh", "softmax", 1e8), ("tanh", "sigmoid", 1e8), ("sigmoid", "softmax", 1e20),
         ("sigmoid", "identity", 1e20), ("tanh", "identity", 1e12)]


@pytest.mark.parametrize(("hidden", "output", "scale"), CASES)
@pytest.mark.parametrize("layers", [(5, 4, 6, 3), (5, 4, 3), (5, 4, 6, 3, 3)])
def test_scaled_inputs_agree_with_the_reference(hidden, output, scale, layers):
    net, params, X, Y = scaled(hidden, output, scale, layers)
    grads = net.gradient(params, X, Y)
    batched = net.check(params, grads, X, Y, engine="batched")
    reference = net.check(params, grads, X, Y, engine="reference")
    assert batched.verdict == reference.verdict
    assert [g.verdict for g in batched.groups] == [g.verdict for g in reference.groups]
    comp = batched_engine(net, params, X, Y, np.arange(net.n_params), EPS)
    layout, theta = Layout.from_params(params)
    objective = MLPObjective(net, layout, X, Y)
    objective.base(theta)
    ref = reference_engine(objective, theta, np.arange(net.n_params), EPS)
    assert np.isfinite(ref.numeric).all() and np.isfinite(comp.numeric).all()
    J = net.cost(params, X, Y)
    assert_allclose(comp.numeric, ref.numeric, rtol=1e-9, atol=COST_ULPS * np.spacing(J) / EPS)
    assert batched.settings["full_passes"] > 0
    assert "full forward passes" in str(batched)


def test_engine_counts_its_full_passes():
    net, params, X, Y = scaled("tanh", "softmax", 1e8)
    notes = {}
    ev = batched_engine(net, params, X, Y, np.arange(net.n_params), EPS, notes=notes)
    assert np.isfinite(ev.numeric).all()
    assert 0 < notes["full_passes"] < net.n_params
    assert ev.n_evaluations == 2 * (net.n_params + notes["full_passes"])


def test_unscaled_needs_no_full_passes():
    net, params, X, Y = scaled("tanh", "softmax", 1.0)
    report = net.check(params, net.gradient(params, X, Y), X, Y)
    assert "full_passes" not in report.settings
    assert "full forward passes" not in str(report)


@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_infinite_cost_is_a_cost_error(engine):
    net, params, X, Y = scaled("identity", "identity", 1e200)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    with pytest.raises(fc.CostError, match=r"J\(theta\) is inf.*scale the inputs"):
        net.check(params, grads, X, Y, engine=engine)
