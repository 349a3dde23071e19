"""fastcheck.check on user costs: the reference engine and its error handling."""

import numpy as np
import pytest

import fastcheck as fc


def test_linear_cost_checks_to_about_1e10():
    x = np.random.default_rng(0).standard_normal(50)
    report = fc.check(lambda theta: float(theta @ x), np.random.default_rng(1).standard_normal(50), x.copy())
    assert report.verdict == "pass"
    assert report.difference < 1e-8
    assert report.n_evaluations == 100
    assert report.n_checked == report.n_params == 50


def test_dict_cost_passes_and_a_planted_error_is_named(quadratic):
    cost, params, grads = quadratic
    assert fc.check(cost, params, grads).passed
    grads["dW"][1, 2] *= 1.1
    report = fc.check(cost, params, grads)
    assert not report.passed
    assert report.failing_groups == ["W"]
    assert report.group("b").verdict == "pass"
    top = report.worst(1)[0]
    assert (top.group, top.index) == ("W", (1, 2))


def test_a_coarse_step_must_fail():
    """With eps = 0.1 the central difference of exp is off by eps^2/6: the check must see it."""
    theta = np.full(4, 2.0)
    report = fc.check(lambda t: float(np.sum(np.exp(3 * t))), theta, 3 * np.exp(3 * theta), eps=0.1)
    assert report.verdict == "fail"
    assert fc.check(lambda t: float(np.sum(np.exp(3 * t))), theta, 3 * np.exp(3 * theta)).verdict == "pass"


def test_callers_arrays_are_unchanged(quadratic):
    cost, params, grads = quadratic
    before = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in grads.items()}
    fc.check(cost, params, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[1][k])


def test_grads_may_be_callable(quadratic):
    cost, params, grads = quadratic
    assert fc.check(cost, params, lambda p: grads).passed


def test_nondeterministic_cost_explains_dropout():
    rng = np.random.default_rng(0)

    def dropout_cost(theta):
        keep = rng.random(theta.shape) < 0.8
        return float(np.sum((theta * keep) ** 2))

    with pytest.raises(fc.NondeterministicCostError, match=r"dropout \(keep_prob = 1\)"):
        fc.check(dropout_cost, np.ones(5), 2 * np.ones(5))


def test_mutating_cost_is_refused_naming_the_evaluation():
    def mutating(p):
        p["W"] *= 1.0
        return 0.0

    with pytest.raises(fc.MutationError, match="modify the parameters"):
        fc.check(mutating, {"W": np.ones(2)}, {"W": np.ones(2)})


def test_mutation_during_the_loop_names_the_coordinate():
    calls = {"n": 0}

    def cost(theta):
        calls["n"] += 1
        if calls["n"] == 5:
            theta[0] = 1.0
        return float(np.sum(theta**2))

    with pytest.raises(fc.MutationError, match=r"at theta\[1\] \+ eps"):
        fc.check(cost, np.ones(3), 2 * np.ones(3), engine="reference")


@pytest.mark.parametrize(
    ("returned", "error", "message"),
    [
        (lambda t: np.ones(2), fc.CostError, "array of shape (2,)"),
        (lambda t: "x", fc.CostError, "returned str"),
        (lambda t: np.float32(1.0), fc.DtypeError, "returned float32"),
        (lambda t: float("nan") if t[1] > 1 else 0.0, fc.CostError, "returned nan at theta[1] + eps"),
        (lambda t: 1 / 0 if t[2] < 1 else 0.0, fc.CostError, "raised ZeroDivisionError at theta[2] - eps"),
    ],
)
def test_bad_cost_values_name_the_coordinate(returned, error, message):
    with pytest.raises(error) as info:
        fc.check(returned, np.ones(3), np.ones(3))
    assert message in str(info.value)


def test_size_one_array_counts_as_a_scalar():
    assert fc.check(lambda t: np.array([[float(t @ t)]]), np.ones(3), 2 * np.ones(3)).passed


def test_bad_settings():
    with pytest.raises(fc.InputError, match="`mode`: expected one of .* got 'bogus'"):
        fc.check(lambda t: 0.0, np.ones(2), np.zeros(2), mode="bogus")
    with pytest.raises(fc.InputError, match="`seed`"):
        fc.check(lambda t: 0.0, np.ones(2), np.zeros(2), seed=-1)
    with pytest.raises(fc.CostError, match="not a callable"):
        fc.check(3.0, np.ones(2), np.zeros(2))


def test_grads_none_is_an_error_not_a_zero_gradient():
    """A backprop that forgot to `return` hands over None: that is named, not checked as zeros."""
    params = {"W": np.ones((2, 3))}
    with pytest.raises(fc.InputError, match=r"`grads` is None.*forget to `return`"):
        fc.check(lambda p: float(np.sum(p["W"] ** 2)), params, None)
    net = fc.MLP([3, 2], l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(4, seed=1)
    with pytest.raises(fc.InputError, match="`grads` is None"):
        net.check(params, None, X, Y)
    assert fc.plan(lambda p: float(np.sum(p["W"] ** 2)), {"W": np.ones((2, 3))}).n_coordinates == 6


def test_a_cost_that_exits_is_an_error_not_the_end_of_the_program():
    import sys

    calls = []

    def cost(p):
        calls.append(1)
        if len(calls) > 3:
            sys.exit(0)
        return float(np.sum(p["W"] ** 2))

    params = {"W": np.ones(3)}
    with pytest.raises(fc.CostError, match=r"sys.exit\(0\) at "):
        fc.check(cost, params, {"W": 2 * params["W"]})


def test_a_plan_says_what_its_estimate_rests_on(quadratic):
    cost, params, _ = quadratic
    assert "traced engine timed" in fc.plan(cost, params).basis
    plan = fc.plan(cost, params, options=fc.api.CheckOptions(engine="reference"))
    assert plan.basis.startswith("the median of ") and "timed cost evaluations" in plan.basis
    assert int(plan.basis.split()[3]) >= 4
    assert "(from the median of" in str(plan)
