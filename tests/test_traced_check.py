"""``fc.check`` on a user's unmodified cost: the traced engine by default, the fallback named in the report."""

import json
import math

import numpy as np
import pytest
from traced_models import course_mlp, cs231n_net

import fastcheck as fc
from fastcheck.errors import InputError


def test_check_uses_the_traced_engine_and_agrees_with_the_reference():
    cost, params, grads = course_mlp()
    traced = fc.check(cost, params, grads)
    reference = fc.check(cost, params, grads, engine="reference")
    assert traced.settings["engine"] == "traced" and "traced_not_used" not in traced.settings
    assert reference.settings["engine"] == "reference"
    assert traced.verdict == reference.verdict == "pass"
    assert [g.verdict for g in traced.groups] == [g.verdict for g in reference.groups]
    assert "traced engine" in str(traced)


def test_a_planted_bug_is_named_through_check():
    cost, params, grads = course_mlp(sizes=(6, 5, 4, 1), m=5)
    grads["dW2"] = grads["dW2"].copy()
    grads["dW2"][3, 1] *= 1.1
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "traced"
    assert report.failing_groups == ["W2"]
    worst = report.worst(1)[0]
    assert (worst.group, worst.index) == ("W2", (3, 1))


def test_relu_kinks_are_listed_and_left_out():
    cost, params, grads, X = cs231n_net(seed=3)
    pre = X @ params["W1"] + params["b1"]
    params["b1"] = params["b1"].copy()
    params["b1"][3] -= pre[2, 3] - 1e-9
    grads = cost(params, grads=True)
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "traced"
    assert report.passed and report.n_kinks > 0


def _untraceable(p):
    return float(np.sum(np.linalg.solve(p["W"], np.ones(3))) + np.sum(p["W"] ** 2))


W = {"W": np.random.default_rng(0).standard_normal((3, 3)) + 3 * np.eye(3)}


def _untraceable_grads():
    A = W["W"]
    x = np.linalg.solve(A, np.ones(3))
    return {"W": -np.outer(np.linalg.solve(A.T, np.ones(3)), x) + 2 * A}


def test_fallback_names_the_reason():
    report = fc.check(_untraceable, W, _untraceable_grads())
    assert report.settings["engine"] == "reference"
    reason = "np.linalg.solve is not supported at test_traced_check.py:48 (`np.linalg.solve(p[\"W\"], np.ones(3))`)"
    assert report.settings["traced_not_used"] == reason
    assert report.passed
    assert json.loads(report.to_json())["settings"]["traced_not_used"] == reason
    workers = fc.check(_untraceable, W, _untraceable_grads(), n_jobs=2)
    assert workers.settings["engine"] == "blackbox" and "np.linalg.solve" in workers.settings["traced_not_used"]


def test_forcing_the_traced_engine_on_an_untraceable_cost_is_an_error():
    with pytest.raises(InputError, match="'traced' cannot be used on this cost: np.linalg.solve is not supported"):
        fc.check(_untraceable, W, _untraceable_grads(), engine="traced")


def test_black_box_settings_keep_the_black_box_engine():
    cost, params, grads = course_mlp()
    assert fc.check(cost, params, grads, n_jobs=2, chunk_size=50).settings["engine"] == "blackbox"


@pytest.mark.parametrize("mode", [dict(mode="subset", fraction=0.3), dict(mode="directions", n_directions=3)])
def test_other_modes_use_the_traced_engine(mode):
    cost, params, grads = course_mlp()
    report = fc.check(cost, params, grads, **mode)
    assert report.settings["engine"] == "traced" and report.verdict == "pass"


def test_params_as_a_list_reach_the_cost_as_a_list():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    params = [rng.standard_normal((3, 2)), rng.standard_normal(2)]

    def cost(p):
        W, b = p
        return np.sum(np.tanh(X @ W + b) ** 2)

    def grads(p):
        W, b = p
        h = np.tanh(X @ W + b)
        d = 2 * h * (1 - h**2)
        return [X.T @ d, d.sum(axis=0)]

    report = fc.check(cost, params, grads(params))
    assert report.settings["engine"] == "traced" and report.passed


def test_flat_theta():
    A = np.random.default_rng(1).standard_normal((5, 5))
    theta = np.random.default_rng(2).standard_normal(5)
    report = fc.check(lambda t: float(np.sum(np.exp(A @ t * 0.1))), theta, 0.1 * A.T @ np.exp(A @ theta * 0.1))
    assert report.settings["engine"] == "traced" and report.passed


def _branching(p):
    z = p["W"] @ np.ones(3)
    if z.max() > 50:
        z = z / 2
    return np.sum(p["W"] ** 2)


def _python_number(p):
    return math.exp(float(np.sum(p["W"] * 0.0))) * np.sum(p["W"] ** 2)


def _plain_array(p):
    return np.sum(np.asarray(p["W"]) ** 2)


def _python_int(p):
    return np.sum(p["W"] ** 2) + int(np.sum(p["W"] * 0.0))


def test_a_branch_on_a_traced_value_is_a_guard():
    """The branch taken at theta is the graph's; perturbations that would take the other go to the real cost."""
    report = fc.check(_branching, W, {"W": 2 * W["W"]})
    assert report.settings["engine"] == "traced" and "traced_not_used" not in report.settings
    assert report.passed


@pytest.mark.parametrize(("cost", "reason"), [(_python_int, "converts a traced value to a Python int"),
                                              (_python_number, "converts a traced value to a Python number"),
                                              (_plain_array, "to a plain numpy array")])
def test_untraceable_costs_are_checked_by_the_loop_with_the_reason(cost, reason):
    report = fc.check(cost, W, {"W": 2 * W["W"]})
    assert report.settings["engine"] == "reference" and reason in report.settings["traced_not_used"]
    assert report.passed


def test_the_text_report_says_why_the_traced_engine_was_not_used():
    params = {"w": np.array([0.3, -0.2])}

    def cost(p):
        return math.exp(float(p["w"][0])) + float(np.sum(p["w"] ** 2))

    grads = {"w": np.array([math.exp(0.3) + 0.6, -0.4])}
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "reference" and report.passed
    assert "traced engine not used: " in str(report)


def test_coordinates_whose_traced_changes_are_not_finite_take_the_real_cost():
    """A saturated sigmoid (exactly 1.0) under a tiny log guard: the traced change is NaN there."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 6))
    params = {"W": 0.1 * rng.standard_normal((8, 3)), "b": np.zeros((8, 1))}
    params["b"][5] = 40.0  # sigmoid(40) == 1.0 in float64

    def cost(p):
        A = 1 / (1 + np.exp(-(p["W"] @ X + p["b"])))
        return -np.sum(np.log(A) + 0.0 * np.log(1 - A + 1e-300)) / 6

    A = 1 / (1 + np.exp(-(params["W"] @ X + params["b"])))
    grads = {"W": (A - 1) @ X.T / 6, "b": (A - 1).sum(axis=1, keepdims=True) / 6}
    reference = fc.check(cost, params, grads, engine="reference")
    for options in ({}, {"mode": "subset", "n_samples": 12}, {"mode": "directions", "n_directions": 4}):
        report = fc.check(cost, params, grads, **options)
        assert report.verdict == reference.verdict == "pass", (options, report)
        assert np.isfinite(report.difference)


def test_a_wrong_gradient_is_not_excused_by_a_kink():
    """Zero biases before a ReLU on blank inputs: every perturbation of b flips a ReLU; a 2x bug still fails."""
    rng = np.random.default_rng(7)
    X = rng.random((5, 6))
    X[:, :3] = 0.0  # three blank examples: their pre-activations are exactly the zero bias
    params = {"W": 0.3 * rng.standard_normal((4, 5)), "b": np.zeros((4, 1)), "V": rng.standard_normal((1, 4))}
    T = rng.standard_normal((1, 6))

    def forward(p):
        Z = p["W"] @ X + p["b"]
        A = np.maximum(0, Z)
        return Z, A, p["V"] @ A

    def cost(p):
        return 0.5 * float(np.sum((forward(p)[2] - T) ** 2)) / 6

    Z, A, out = forward(params)
    dout = (out - T) / 6
    dZ = (params["V"].T @ dout) * (Z > 0)
    grads = {"W": dZ @ X.T, "b": dZ.sum(axis=1, keepdims=True), "V": dout @ A.T}
    assert fc.check(cost, params, grads).passed
    bad = {**grads, "b": 2.0 * grads["b"]}
    for engine in (None, "reference"):
        report = fc.check(cost, params, bad, engine=engine)
        assert "b" in report.failing_groups, report
