"""The traced engine on user-style models: the reference engine's twin, bugs found where planted, kinks found.

ref = reference_engine(...), comp = traced engine, assert they agree: J+- to rounding on
every coordinate, the same verdict per group, a planted bug failing at its group and entry.
"""

import math

import numpy as np
import pytest
from traced_models import batchnorm_net, cnn, course_mlp, cs231n_net, plain_mlp, pool_net, rnn, softmax_regression

from fastcheck.core.finite import Bounds, relative_difference
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.reference import reference_engine
from fastcheck.engines.traced import NotTraceable, traced_engine
from fastcheck.engines.traced.tracing import trace

EPS = 1e-7


def _setup(cost, params, returns_grads=False):
    layout, theta = Layout.from_params(params)
    objective = CostObjective(cost, layout, returns_grads=returns_grads)
    return layout, theta, objective


def _verdicts(layout, numeric, analytic):
    return {g.name: Bounds().verdict(relative_difference(numeric[g.slice], analytic[g.slice])) for g in layout.groups}


def _numeric_grads(objective, theta, layout):
    """A correct gradient for models without a backprop: central differences with a larger step."""
    return reference_engine(objective, theta, np.arange(layout.n_params), 1e-5).numeric


MODELS = {
    "course_mlp": lambda: course_mlp(),
    "course_mlp_sigmoid": lambda: course_mlp(hidden="sigmoid", seed=1),
    "cs231n": lambda: cs231n_net()[:3],
    "cnn": lambda: cnn(),
    "batchnorm": lambda: batchnorm_net(),
    "rnn": lambda: rnn(),
    "plain_mlp": lambda: plain_mlp()[:3],
    "plain_mlp_tanh": lambda: plain_mlp(hidden="tanh", seed=2)[:3],
    "softmax_regression": lambda: softmax_regression(N=40, D=6, seed=2),
    "pool_net_loss_grads": lambda: (lambda cost, params: (cost, params, cost(params)[1]))(*pool_net()),
}


@pytest.mark.parametrize("model", list(MODELS))
def test_traced_equals_reference(model):
    cost, params, grads = MODELS[model]()
    layout, theta, objective = _setup(cost, params, returns_grads=model.endswith("loss_grads"))
    analytic = layout.flatten_grads(grads) if grads is not None else _numeric_grads(objective, theta, layout)
    indices = np.arange(layout.n_params)
    ref = reference_engine(objective, theta, indices, EPS)
    comp = traced_engine(objective, layout, theta, EPS, n_threads=2).coordinates(indices)
    scale = 2.0**-52 * max(1.0, abs(ref.cost_plus).max()) * 64
    np.testing.assert_allclose(comp.cost_plus, ref.cost_plus, rtol=0, atol=scale)
    np.testing.assert_allclose(comp.cost_minus, ref.cost_minus, rtol=0, atol=scale)
    assert _verdicts(layout, comp.numeric, analytic) == _verdicts(layout, ref.numeric, analytic)
    assert set(_verdicts(layout, comp.numeric, analytic).values()) == {"pass"}

    # a planted backprop bug: one entry of one group off by a tenth of the group's norm
    group = layout.groups[len(layout.groups) // 2]
    bad = analytic.copy()
    position = group.start + group.size // 3
    bad[position] += 0.1 * np.linalg.norm(analytic[group.slice]) + 1e-3
    verdicts = _verdicts(layout, comp.numeric, bad)
    assert verdicts[group.name] == "fail"
    assert verdicts == _verdicts(layout, ref.numeric, bad)
    assert int(np.argmax(np.abs(comp.numeric - bad))) == position


def test_course_mlp_backprop_bug_named_at_its_entry():
    cost, params, grads = course_mlp(sizes=(6, 5, 4, 1), m=5)
    grads["dW2"] = grads["dW2"].copy()
    grads["dW2"][3, 1] *= 1.1
    layout, theta, objective = _setup(cost, params)
    ev = traced_engine(objective, layout, theta, EPS).coordinates(np.arange(layout.n_params))
    analytic = layout.flatten_grads(grads)
    worst = int(np.argmax(np.abs(ev.numeric - analytic)))
    assert layout.describe(worst) == "W2[3, 1]"
    assert _verdicts(layout, ev.numeric, analytic)["W2"] == "fail"


def test_relu_kinks_match_brute_force():
    cost, params, _, X = cs231n_net(seed=3)
    pre = X.dot(params["W1"]) + params["b1"]
    params["b1"] = params["b1"].copy()
    params["b1"][3] -= pre[2, 3] - 1e-9  # example 2's unit 3 sits 1e-9 above its kink
    pre = X.dot(params["W1"]) + params["b1"]
    assert abs(pre[2, 3] - 1e-9) < 1e-12
    layout, theta, objective = _setup(cost, params)
    ev = traced_engine(objective, layout, theta, EPS).coordinates(np.arange(layout.n_params))
    expected = []
    for i in range(layout.n_params):
        flipped = False
        for sign in (1, -1):
            work = theta.copy()
            work[i] += sign * EPS
            p = layout.unflatten(work)
            flipped |= bool(((X.dot(p["W1"]) + p["b1"] > 0) != (pre > 0)).any())
        expected.append(flipped)
    assert ev.kinks.sum() > 0
    np.testing.assert_array_equal(ev.kinks, expected)


def test_directions_match_reference():
    from fastcheck.core.directions import draw_directions
    from fastcheck.engines.reference import evaluate_directions

    cost, params, grads, _ = cs231n_net()
    layout, theta, objective = _setup(cost, params)
    analytic = layout.flatten_grads(grads)
    directions = draw_directions(layout, 3, seed=0)
    ref = evaluate_directions(objective, theta, analytic, directions, EPS)
    comp = traced_engine(objective, layout, theta, EPS).directions(directions, analytic)
    np.testing.assert_array_equal(comp.analytic, ref.analytic)
    np.testing.assert_allclose(comp.numeric, ref.numeric, rtol=1e-6, atol=1e-8)


def test_float_of_the_final_output_is_traced():
    cost, params, _ = course_mlp()
    layout, theta, objective = _setup(lambda p: float(cost(p)), params)
    engine = traced_engine(objective, layout, theta, EPS)
    assert engine.cost == cost(params)


# ---------------------------------------------------------------------- fallbacks
W = {"W": np.random.default_rng(0).standard_normal((3, 3)) + 3 * np.eye(3)}


def _solve(p):
    return float(np.sum(np.linalg.solve(p["W"], np.ones(3))))


def _branch(p):
    z = p["W"] @ np.ones(3)
    if z.max() > 50:
        z = z / 2
    return np.sum(z**2)


def _ambiguous_branch(p):
    z = p["W"] @ np.ones(3)
    return np.sum(z) if z else 0.0


def _python_float(p):
    return math.exp(float(np.sum(p["W"]))) + np.sum(p["W"] ** 2)


def _asarray(p):
    return np.sum(np.asarray(p["W"]) ** 2)


def _data_dependent(p):
    z = p["W"] @ np.ones(3)
    return np.sum(z[z > 0])


def _unsupported_method(p):
    return p["W"].cumsum().sum()


def _plain_array_write(p):
    out = np.zeros(3)
    out[:] = p["W"][0]
    return out.sum()


def _plain_dot(p):  # a 3-d argument: a plain .dot() the engine does not follow (a 2-d one it does)
    return np.sum(np.ones((2, 3)).dot(p["W"][None]))


def _in_place_on_params(p):
    w = p["W"]
    w[0, 0] = 1.0
    return np.sum(w)


FALLBACKS = {
    _solve: "np.linalg.solve is not supported",
    _ambiguous_branch: "branches on a traced array of 3 entries",
    _python_float: "converts a traced value to a Python number",
    _asarray: "converts a traced value to a plain numpy array",
    _data_dependent: "boolean mask that depends on the parameters",
    _unsupported_method: r"the array method \.cumsum\(\) is not supported",
    _plain_dot: r"a plain numpy array's \.dot\(\) .* cannot follow .* write np\.dot\(np\.ones\(\(2, 3\)\), ",
    _plain_array_write: r"writes a traced value into a plain numpy array at test_traced_models.py:\d+ \(`out\[:\]`\)",
    _in_place_on_params: "modifies its parameters in place",
}


@pytest.mark.parametrize("cost", list(FALLBACKS), ids=lambda f: f.__name__)
def test_not_traceable_with_reason(cost):
    layout, theta = Layout.from_params(W)
    with pytest.raises(NotTraceable, match=FALLBACKS[cost]):
        trace(cost, layout, theta)


def test_cost_closing_over_a_traced_value():
    kept = {}

    def first(p):
        kept["scaled"] = p["W"] * 2.0
        return np.sum(kept["scaled"])

    def second(p):
        return np.sum(p["W"] * kept["scaled"])

    layout, theta = Layout.from_params(W)
    trace(first, layout, theta)
    with pytest.raises(NotTraceable, match="traced value kept from outside this call"):
        trace(second, layout, theta)
    # a value kept from a finished trace behaves as the plain array it holds
    assert second(W) == pytest.approx(np.sum(W["W"] * W["W"] * 2.0))


def test_exception_swallowed_by_the_cost_still_ends_the_trace():
    def cost(p):
        try:
            np.linalg.solve(p["W"], np.ones(3))
        except Exception:
            pass
        return np.sum(p["W"])

    layout, theta = Layout.from_params(W)
    with pytest.raises(NotTraceable, match="np.linalg.solve is not supported"):
        trace(cost, layout, theta)


def test_a_branch_is_a_guard_exact_where_it_holds():
    """``if z.max() > 50`` on a traced value: the graph takes this branch; where a perturbation flips it
    (large steps here), the change is NaN, for the real cost to evaluate; elsewhere it is exact."""
    from test_traced_ops import incremental_and_full

    params = {"W": np.full((3, 3), 50.0 / 3) + np.diag([0.05, -0.05, -0.05])}  # row sums 50.05, 49.95, 49.95
    traced, full, _ = incremental_and_full(_branch, params, step=0.1)
    # only lowering a weight of row 0 (the second half: -0.1) brings z.max() under 50
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(traced)), [9, 10, 11])
    flipped = np.isnan(traced)
    np.testing.assert_allclose(traced[~flipped], full[~flipped], rtol=0, atol=1e-9)


def test_trace_that_disagrees_with_the_cost_is_refused():
    def cost(p):  # behaves differently on traced arrays: verification must notice
        w = p["W"] if isinstance(p["W"], np.ndarray) else p["W"] * 1.001
        return np.sum(w**2)

    layout, theta, objective = _setup(cost, W)
    with pytest.raises(NotTraceable, match="the traced evaluation of the unperturbed parameters differs"):
        traced_engine(objective, layout, theta, EPS)


@pytest.mark.parametrize("name", ["cs231n_two_layer_svm", "cs231n_fc_bn"])
def test_cs231n_nets_as_written_are_traced_and_their_bugs_named(name):
    """CS231n's own layers (affine_forward's x.reshape(N, -1).dot(w), svm_loss's masks, batch norm):
    the traced engine runs them, agrees with the reference loop, and names every planted bug."""
    from models import build

    import fastcheck as fc

    c = build(name)
    cases = {"correct": (c.meta["grads_clean"], None)}
    entry = {k: v.copy() for k, v in c.meta["grads_clean"].items()}
    entry["W2"][3, 1] *= 1.1
    cases["W2[3, 1] off by 10%"] = (entry, ("W2", (3, 1)))
    cases.update({bug.name: (bug.raw(c.params), None) for bug in c.meta["bugs"].values() if not bug.kink})
    for label, (grads, where) in cases.items():
        traced = fc.check(c.cost, c.params, grads)
        reference = fc.check(c.cost, c.params, grads, engine="reference")
        assert traced.settings["engine"] == "traced", traced.settings.get("traced_not_used")
        assert [(g.name, g.verdict) for g in traced.groups] == [(g.name, g.verdict) for g in reference.groups], label
        if label == "correct":
            assert traced.passed
        elif where is not None:
            assert traced.failing_groups == [where[0]]
            assert [r.index for r in traced.worst(20) if r.group == where[0]][0] == where[1]
        else:
            bug = c.meta["bugs"][label]
            assert set(bug.wrong) <= set(traced.failing_groups), label
            assert not set(bug.right) & set(traced.failing_groups), label
