"""What a user-style trial found: each defect held here by a test that failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import user_layers as u

import fastcheck as fc
from fastcheck.errors import InputError


# ---------------------------------------------------------------------- check_layer: grads need their dout
def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1).dot(w) + b, (x, w, b)


def affine_case():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    return {"x": x, "w": w, "b": b}, {"dx": dout @ w.T, "dw": x.T @ dout, "db": dout.sum(0)}, dout


def test_layer_grads_without_dout_are_refused_with_the_fix_named():
    inputs, grads, dout = affine_case()
    with pytest.raises(InputError, match=r"pass that array as `dout=` .*, or pass `backward=`"):
        fc.check_layer(affine_forward, inputs, grads=grads)
    assert fc.check_layer(affine_forward, inputs, grads=grads, dout=dout).verdict == "pass"


def test_a_scalar_output_layer_takes_dout_one_with_grads():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 5)), rng.integers(5, size=10)
    report = fc.check_layer(lambda x: u.softmax_loss(x, y), {"x": x}, grads={"dx": u.softmax_loss(x, y)[1]})
    assert report.verdict == "pass"
    assert "dout: 1" in report.settings["layer"]


# ---------------------------------------------------------------------- kinks="include": fc.check, fc.plan, CLI
def relu_at_a_tie():
    """sum(relu(theta)) at an entry exactly 0, where the backward took the left derivative (0)."""
    theta = np.array([0.5, 0.0, -1.0, 2.0])
    return (lambda t: float(np.maximum(t, 0).sum())), theta, (theta > 0).astype(float)


@pytest.mark.parametrize("engine", [None, "reference"])
def test_check_takes_kinks_include(engine):
    cost, theta, grad = relu_at_a_tie()
    left_out = fc.check(cost, theta, grad, engine=engine)
    kept = fc.check(cost, theta, grad, engine=engine, kinks="include")
    assert left_out.verdict == "pass" and left_out.groups[0].kinks == 1
    assert kept.verdict == "fail" and kept.settings["kinks"] == "include"
    assert fc.plan(cost, theta, kinks="include").n_evaluations == 8


def test_include_kinks_reaches_a_user_problem_on_the_cli(tmp_path, monkeypatch, capsys):
    from fastcheck.apps.cli import main

    (tmp_path / "tie_problem.py").write_text(
        "import numpy as np\n"
        "def make():\n"
        "    theta = np.array([0.5, 0.0, -1.0, 2.0])\n"
        "    return (lambda t: float(np.maximum(t, 0).sum())), theta, (theta > 0).astype(float)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "tie_problem:make", "--quiet"]) == 0
    assert main(["check", "tie_problem:make", "--quiet", "--include-kinks"]) == 1
    capsys.readouterr()


# ---------------------------------------------------------------------- messages that name the right thing
def list_problem():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    return (lambda p: float(np.sum(p[0] ** 2) + np.sum(p[1] ** 3))), [W, b], [2 * W, 3 * b ** 2]


def test_list_grads_are_named_as_grads():
    cost, params, grads = list_problem()
    with pytest.raises(InputError, match=r"^`grads\[0\]` has a non-finite value nan"):
        fc.check(cost, params, [np.full_like(grads[0], np.nan), grads[1]])
    with pytest.raises(InputError, match=r"^`grads\[1\]` has shape \(4,\) but `params\[1\]` has shape \(4, 1\)"):
        fc.check(cost, params, [grads[0], grads[1].ravel()])
    with pytest.raises(InputError, match=r"`params` is a list of 2 arrays but `grads` is a dict; pass grads as a list"):
        fc.check(cost, params, {"dW": grads[0], "db": grads[1]})


def test_cast_warnings_name_params_and_grads():
    cost, params, grads = list_problem()
    with pytest.warns(fc.CastWarning) as seen:
        fc.check(cost, [p.astype(np.float32) for p in params], [g.astype(np.float32) for g in grads], cast=True)
    messages = [str(w.message) for w in seen]
    assert any("params[0] float32" in m for m in messages) and any("grads[0] float32" in m for m in messages)


def test_a_typo_of_a_gradient_key_is_pointed_at():
    W = np.ones((2, 2))
    with pytest.raises(InputError, match=r"it has 'dw1' \(did you mean 'dw1'\?\)"):
        fc.check(lambda p: float(np.sum(p["W1"] ** 2)), {"W1": W}, {"dw1": 2 * W})
    with pytest.raises(InputError, match="'dW9' which matches no parameter"):
        fc.check(lambda p: float(np.sum(p["W1"] ** 2)), {"W1": W}, {"dW1": 2 * W, "dW9": W})


@pytest.mark.parametrize(("cost", "message"), [
    (3, "`cost` is an int, not a callable"),
    (lambda p: (_ for _ in ()).throw(MemoryError()), "raised MemoryError at the unperturbed parameters (with no "
                                                     "message)"),
])
def test_cost_messages_in_plain_english(cost, message):
    with pytest.raises(fc.CostError) as info:
        fc.check(cost, np.ones(3), np.ones(3))
    assert message in str(info.value)


def test_numbers_are_plain_in_messages():
    with pytest.raises(InputError) as info:
        fc.check(lambda t: np.float64(2.5) + float(t.sum()), np.ones(3))  # no grads and no (loss, grads)
    assert "float64 5.5" in str(info.value) and "np.float64" not in str(info.value)


def test_a_nested_dict_is_refused_as_such():
    W = np.ones((2, 2))
    with pytest.raises(InputError, match="nested dicts are not supported; flatten them"):
        fc.check(lambda p: float(np.sum(p["l1"]["W"] ** 2)), {"l1": {"W": W}}, {"l1": {"W": 2 * W}})


def test_forced_traced_engine_names_the_engine_it_would_fall_back_to():
    cost = lambda t: float(np.array(t).sum() ** 2)  # noqa: E731 - np.array of a traced value: not traceable
    with pytest.raises(InputError, match="fall back to the reference engine"):
        fc.check(cost, np.ones(3), np.full(3, 6.0), engine="traced")


def test_plan_takes_a_cost_returning_loss_and_grads():
    plan = fc.plan(lambda t: (float(t @ t), 2 * t), np.ones(3))
    assert plan.n_evaluations == 6


# ---------------------------------------------------------------------- layouts as the course has them
@pytest.mark.parametrize("engine", [None, "reference", "blackbox"])
def test_a_column_theta_is_the_flat_vector(engine):
    theta = np.arange(1.0, 6.0).reshape(5, 1)
    seen = []

    def cost(t):
        seen.append(t.shape)
        return float(np.sum(t[:3].reshape(3, 1) ** 2) + np.sum(np.sin(t[3:])))

    grad = np.vstack([2 * theta[:3], np.cos(theta[3:])])
    report = fc.check(cost, theta, grad, engine=engine)
    assert report.verdict == "pass" and set(seen) == {(5, 1)}
    bad = grad.copy()
    bad[4, 0] *= 1.5
    assert fc.check(cost, theta, bad, engine=engine).worst(1)[0].index == (4, 0)


@pytest.mark.parametrize("scalar", [np.float64, float])
def test_a_zero_d_parameter_takes_a_scalar_gradient(scalar):
    W, T = np.ones((2, 3)), np.array(1.5)
    cost = lambda p: float(np.sum(p["W"] ** 2) * p["T"])  # noqa: E731
    report = fc.check(cost, {"W": W, "T": T}, {"dW": 2 * W * 1.5, "dT": scalar(np.sum(W ** 2))})
    assert report.verdict == "pass"


# ---------------------------------------------------------------------- a cost that keeps its argument
class Model:
    """CS231n's pattern: the cost stores what it is given (``model.params = params``), training goes on after."""

    def __init__(self):
        self.params = {"W": np.arange(6.0).reshape(2, 3) / 10, "b": np.ones(3)}

    def loss(self, params):
        self.params = params
        return float(np.sum(np.tanh(self.params["W"]) ** 2) + np.sum(self.params["b"] ** 2))


@pytest.mark.parametrize("settings", [{}, {"engine": "reference"}, {"backend": "threading", "n_jobs": 2},
                                      {"mode": "directions"}])
def test_a_model_keeping_its_params_trains_on_after_the_check(settings):
    model = Model()
    start = {k: v.copy() for k, v in model.params.items()}
    grads = {"W": 2 * np.tanh(start["W"]) * (1 - np.tanh(start["W"]) ** 2), "b": 2 * start["b"]}
    assert fc.check(model.loss, dict(model.params), grads, **settings).verdict == "pass"
    for name, value in model.params.items():
        assert isinstance(value, np.ndarray) and value.flags.writeable
        np.testing.assert_array_equal(value, start[name])
        value -= 0.1  # a training step, in place, as an optimizer does


def test_plan_leaves_the_kept_params_writable_too():
    model = Model()
    fc.plan(model.loss, dict(model.params))
    assert all(v.flags.writeable for v in model.params.values())


def test_a_cost_writing_into_its_input_is_still_caught_at_once():
    with pytest.raises(fc.MutationError, match="tried to modify"):
        fc.check(lambda p: float(p["W"].__imul__(2).sum()), {"W": np.ones(3)}, {"W": np.full(3, 2.0)})
