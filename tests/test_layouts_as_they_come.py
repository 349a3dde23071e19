"""Parameters and gradients as users hand them over (issue: layouts as they come)."""

import warnings

import numpy as np
import pytest

import fastcheck as fc


def _course_net(seed=0):
    """A two-layer course-layout network: examples as columns, sigmoid output, BCE."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((3, 5)), (rng.random((1, 5)) > 0.5).astype(float)
    params = {"W1": rng.standard_normal((4, 3)), "b1": np.zeros((4, 1)),
              "W2": rng.standard_normal((1, 4)), "b2": np.zeros((1, 1))}

    def forward(p):
        Z1 = p["W1"] @ X + p["b1"]
        A1 = np.tanh(Z1)
        Z2 = p["W2"] @ A1 + p["b2"]
        return Z1, A1, Z2, 1 / (1 + np.exp(-Z2))

    def cost(p):
        A2 = forward(p)[3]
        return float(-np.mean(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)))

    def backward_propagation(p):
        m = X.shape[1]
        Z1, A1, Z2, A2 = forward(p)
        dZ2 = A2 - Y
        dW2, db2 = dZ2 @ A1.T / m, dZ2.sum(axis=1, keepdims=True) / m
        dA1 = p["W2"].T @ dZ2
        dZ1 = dA1 * (1 - A1**2)
        dW1, db1 = dZ1 @ X.T / m, dZ1.sum(axis=1, keepdims=True) / m
        return {"dZ2": dZ2, "dW2": dW2, "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}

    return cost, params, backward_propagation


def test_the_course_gradients_dict_is_accepted_as_it_comes():
    cost, params, backward = _course_net()
    grads = backward(params)
    report = fc.check(cost, params, grads)
    assert report.passed and report.verdict == "pass"
    assert report.settings["grads_not_parameters"] == ["dZ2", "dA1", "dZ1"]
    assert fc.check(cost, params, backward).settings["grads_not_parameters"] == ["dZ2", "dA1", "dZ1"]
    bad = {**grads, "dW1": grads["dW1"] * 1.1}
    assert fc.check(cost, params, bad).failing_groups == ["W1"]


def test_a_typo_of_a_parameter_name_is_still_refused():
    cost, params, backward = _course_net()
    grads = backward(params)
    grads["dw1"] = grads.pop("dW1")
    with pytest.raises(fc.InputError, match="no entry for params\\['W1'\\]"):
        fc.check(cost, params, grads)
    grads = {**backward(params), "dw1": np.zeros((4, 3))}
    with pytest.raises(fc.InputError, match="'dw1' which matches no parameter"):
        fc.check(cost, params, grads)


def test_parameters_named_w_and_dw():
    x = np.arange(1.0, 4.0)
    params = {"W": np.ones(3), "dW": np.full(3, 2.0)}

    def cost(p):
        return float(p["W"] @ x + 0.5 * p["dW"] @ p["dW"])

    assert fc.check(cost, params, {"W": x.copy(), "dW": params["dW"].copy()}).passed
    assert fc.check(cost, params, {"dW": x.copy(), "ddW": params["dW"].copy()}).passed


def test_a_cost_returning_loss_and_grads():
    """CS231n's model.loss(X, y) returns (loss, grads): fc.check(loss_fn, params)."""
    cost, params, backward = _course_net()

    def loss(p):
        return cost(p), backward(p)

    report = fc.check(loss, params)
    assert report.passed and report.n_checked == sum(v.size for v in params.values())

    def not_a_pair(p):
        return cost(p)

    with pytest.raises(fc.InputError, match="not \\(loss, grads\\)"):
        fc.check(not_a_pair, params)
    with pytest.raises(fc.CostError) as info:  # (loss, grads) with grads given: named by shape, never printed
        fc.check(loss, params, backward(params))
    assert "a tuple of 2 items (float, dict)" in str(info.value) and len(str(info.value)) < 400


def test_params_as_a_list():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3)
    params = [rng.standard_normal((2, 3)), rng.standard_normal(2)]

    def cost(p):
        assert isinstance(p, list)
        w, b = p
        return float(np.sum(np.tanh(w @ x + b)))

    def grad(p):
        w, b = p
        d = 1 - np.tanh(w @ x + b) ** 2
        return [np.outer(d, x), d]

    assert fc.check(cost, params, grad(params)).passed
    bad = grad(params)
    bad[1] = bad[1] * 2
    report = fc.check(cost, params, bad)
    assert report.failing_groups == ["params[1]"]
    assert report.worst(1)[0].label.startswith("params[1][")


def test_cast_gives_one_warning_for_all_arrays():
    params = {f"W{i}": np.ones(3, dtype=np.float32) for i in range(6)}
    grads = {f"dW{i}": np.full(3, 2.0, dtype=np.float32) for i in range(6)}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fc.check(lambda p: float(sum(np.sum(v**2) for v in p.values())), params, grads, cast=True)
    casts = [w for w in seen if issubclass(w.category, fc.CastWarning)]
    assert len(casts) == 2  # one for the parameters, one for the gradients
    assert all(f"W{i}" in str(casts[0].message) for i in range(6))


def test_integer_arrays_are_refused_in_their_own_words():
    with pytest.raises(fc.DtypeError) as info:
        fc.check(lambda p: float(np.sum(p["W"])), {"W": np.ones(3, dtype=np.int64)}, {"W": np.ones(3)})
    assert "int64" in str(info.value) and "float32" not in str(info.value)


def test_cast_runs_the_backprop_on_the_float64_arrays_and_warns_at_the_callers_line():
    """With float32 parameters, a gradient callable given the user's arrays would compute in float32."""
    params = {"W": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
    seen_dtypes = []

    def grads(p):
        seen_dtypes.append(p["W"].dtype)
        return {"W": 2 * p["W"]}

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        report = fc.check(lambda p: float(np.sum(p["W"] ** 2)), params, grads, cast=True)
    assert report.passed and seen_dtypes == [np.float64]
    casts = [w for w in seen if issubclass(w.category, fc.CastWarning)]
    assert len(casts) == 1 and "params['W'] float32" in str(casts[0].message)
    assert casts[0].filename == __file__  # the user's line, not fastcheck's
