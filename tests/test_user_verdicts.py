"""Verdicts on correct gradients of costs written the way users write them.

Each case here was a correct gradient given a wrong verdict (or a wrong one given a
misleading diagnosis); each test holds the verdict, and a planted bug of the same cost
beside it must still fail with its group and entry named.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.cli import main

ENGINES = [pytest.param(None, id="default"), pytest.param("reference", id="reference"),
           pytest.param("blackbox", id="blackbox")]


# ---------------------------------------------------------------- a cost that ignores its argument
def _reads_its_model():
    """CS231n's idiom ``f = lambda _: model.loss(X, y)[0]``: the loss reads the model's params."""
    rng = np.random.RandomState(0)
    X = rng.randn(5, 4)
    model = {"W": rng.randn(4, 3), "b": rng.randn(3)}

    def loss():
        return np.sum(np.tanh(X @ model["W"] + model["b"]))

    dZ = 1 - np.tanh(X @ model["W"] + model["b"]) ** 2
    return loss, model, {"W": X.T @ dZ, "b": dZ.sum(0)}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cost_that_ignores_its_argument_is_refused(engine):
    loss, model, grads = _reads_its_model()
    with pytest.raises(fc.CostError, match="does not use its argument.*model.params"):
        fc.check(lambda _: loss(), model, grads, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cost_that_ignores_its_argument_with_a_zero_gradient_passes(engine):
    loss, model, _ = _reads_its_model()
    zeros = {name: np.zeros_like(v) for name, v in model.items()}
    assert fc.check(lambda _: loss(), model, zeros, engine=engine).verdict == "pass"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cost_that_ignores_one_group_is_checked(engine):
    rng = np.random.RandomState(1)
    X = rng.randn(5, 4)
    params = {"W": rng.randn(4, 3), "unused": rng.randn(3)}

    def cost(p):
        return np.sum(np.tanh(X @ p["W"]))

    grads = {"W": X.T @ (1 - np.tanh(X @ params["W"]) ** 2), "unused": np.zeros(3)}
    assert fc.check(cost, params, grads, engine=engine).verdict == "pass"
    bug = {**grads, "unused": np.ones(3)}  # a gradient for a parameter the cost does not use: wrong
    report = fc.check(cost, params, bug, engine=engine)
    assert report.verdict == "fail" and report.failing_groups == ["unused"]


def test_a_cost_that_ignores_its_argument_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "usermodel.py").write_text(
        "import numpy as np\n"
        "model = {'W': np.arange(12.0).reshape(4, 3) / 10}\n"
        "X = np.linspace(-1, 1, 20).reshape(5, 4)\n"
        "def problem():\n"
        "    loss = lambda: np.sum(np.tanh(X @ model['W']))\n"
        "    return (lambda _: loss()), model, {'W': X.T @ (1 - np.tanh(X @ model['W']) ** 2)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "usermodel:problem"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not use its argument" in err and "Traceback" not in err


# ---------------------------------------------------------------- a ReLU at a tie, in the warn band
def _relu_at_a_tie():
    """One hidden unit exactly at ReLU's 0 on one example; a small input there puts W[0, 2]'s
    kink error (half the one-sided jump) in the warn band, not the fail band."""
    rng = np.random.RandomState(0)
    X = rng.randn(3, 40)
    X[2, 0] = 1e-3
    W, b = rng.randn(4, 3), rng.randn(4, 1)
    b[0, 0] = -(W[0] @ X[:, 0])
    v = rng.randn(1, 4)

    def cost(p):
        return np.sum(v @ np.maximum(0, p["W"] @ X + p["b"])) / 40

    dZ = (v.T * np.ones((1, 40))) * ((W @ X + b) > 0) / 40  # the subgradient 0 at the tie
    return cost, {"W": W, "b": b}, {"W": dZ @ X.T, "b": dZ.sum(1, keepdims=True)}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_relu_tie_in_the_warn_band_passes_on_every_engine(engine):
    cost, params, grads = _relu_at_a_tie()
    report = fc.check(cost, params, grads, engine=engine, sweep=True)
    assert report.verdict == "pass"
    assert "W[0, 2]" in [e.label for e in report.kinks]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bug_at_the_tie_still_fails(engine):
    cost, params, grads = _relu_at_a_tie()
    grads["W"] = grads["W"].copy()
    grads["W"][0, 2] *= 1.3  # wrong on both sides of the kink
    report = fc.check(cost, params, grads, engine=engine)
    assert report.verdict == "fail" and report.failing_groups == ["W"]
    assert report.worst(1)[0].label == "W[0, 2]"


@pytest.mark.parametrize("engine", ENGINES)
def test_the_sweep_never_calls_a_tie_a_bug(engine):
    from fastcheck.api import prepare_check
    from fastcheck.pipeline.options import CheckOptions

    cost, params, grads = _relu_at_a_tie()
    options = CheckOptions(engine=engine, sweep=True, kinks="include")  # the ties are swept too
    report = prepare_check(cost, params, grads, options=options).run()
    assert report.sweeps and {row.kind for row in report.sweeps} == {"kink"}
    assert not any("bug" in row.sentence and "not a bug" not in row.sentence for row in report.sweeps)


def test_a_flat_error_below_the_error_at_the_check_s_own_step_is_no_bug():
    """A course network's W1[3, 4], a kink at 2e-7 of theta on a cost noisier than its rounding scale:
    the error is flat at 3e-8 for the large steps (the kink's) and 1.1e-7 at the check's own step (noise)."""
    from fastcheck.report.sweep import SWEEP_STEPS, classify

    steps = np.array(SWEEP_STEPS)
    errors = np.array([3.19e-08, 3.19e-08, 3.14e-08, 1.74e-08, 1.13e-07, 2.21e-06, 1.28e-06])
    a = 4.350799e-03
    kind, sentence = classify("W1[3, 4]", steps, errors, a + errors, a, 4.4e-16 / steps, 1e-7, 1e-6)
    assert kind == "unresolved" and "a real bug" not in sentence
    # a real bug of that size, flat down to the check's own step, is still one
    bug = np.array([3.19e-08, 3.19e-08, 3.14e-08, 3.2e-08, 3.3e-08, 2.21e-06, 1.28e-06])
    assert classify("W1[3, 4]", steps, bug, a + bug, a, 4.4e-16 / steps, 1e-7, 1e-6)[0] == "bug"


# ---------------------------------------------------------------- a cost that loses precision
def _saturated_bce():
    """Sigmoid + cross-entropy the course's way, log(1 - AL) with AL = 1 - 5e-10 on some examples:
    the cost's own rounding is millions of times float64's."""
    rng = np.random.RandomState(0)
    X = rng.randn(10, 30) * 12
    Y = (rng.rand(1, 30) > .5).astype(float)
    W1, W2 = rng.randn(8, 10) * np.sqrt(.2), rng.randn(1, 8) * np.sqrt(.25)

    def forward(p):
        A1 = np.maximum(0, p["W1"] @ X)
        return A1, 1 / (1 + np.exp(-(p["W2"] @ A1)))

    def cost(p):
        AL = forward(p)[1]
        return -np.mean(Y * np.log(AL) + (1 - Y) * np.log(1 - AL))

    A1, AL = forward({"W1": W1, "W2": W2})
    dZ2 = (AL - Y) / 30
    dZ1 = (W2.T @ dZ2) * (W1 @ X > 0)
    return cost, {"W1": W1, "W2": W2}, {"dW1": dZ1 @ X.T, "dW2": dZ2 @ A1.T}


@pytest.mark.parametrize("eps", [1e-7, 1e-4])
def test_a_correct_gradient_of_a_noisy_cost_warns_and_says_why(eps):
    cost, params, grads = _saturated_bce()
    report = fc.check(cost, params, grads, eps=eps, sweep=True)
    assert report.verdict == "warn" and not report.failing_groups
    text = str(report)
    assert "the cost loses precision" in text and "log1p" in text
    assert "(layers)" not in report.diagnoses and "at a tie" not in text
    assert not any(row.kind == "unresolved" for row in report.sweeps)


def test_the_noise_counts_the_evaluations_it_ran(monkeypatch):
    from dataclasses import replace

    from fastcheck.api import prepare_check
    from fastcheck.pipeline import prepared as prepared_module

    cost, params, grads = _saturated_bce()
    check = prepare_check(cost, params, grads, engine="reference")
    ran, measuring = [], []
    real_full, real_noise = check.engine.full, prepared_module.noise_report

    def full(idx, eps):  # full evaluations that spend one more per coordinate (a check of their own, say)
        ev = real_full(idx, eps)
        ev = replace(ev, n_evaluations=ev.n_evaluations + len(idx))
        if measuring:
            ran.append(ev.n_evaluations)
        return ev

    def noise_report(*args):
        measuring.append(True)
        try:
            return real_noise(*args)
        finally:
            measuring.clear()

    monkeypatch.setattr(prepared_module, "noise_report", noise_report)
    check = replace(check, engine=replace(check.engine, full=full))
    report = check.report(check.evaluate(check.indices()))
    assert report.settings["noise"]["evaluations"] == sum(ran) > 0


def test_a_bug_well_above_the_noise_of_a_noisy_cost_fails():
    cost, params, grads = _saturated_bce()
    # at eps = 1e-4 the cost's noise in a central difference is ~6e-5: a 10% bug of W1[2, 3] is ~5e-3
    grads["dW1"] = grads["dW1"].copy()
    grads["dW1"][2, 3] *= 1.1
    report = fc.check(cost, params, grads, eps=1e-4)
    assert report.verdict == "fail" and report.failing_groups == ["W1"]
    assert report.worst(1)[0].label == "W1[2, 3]" and report.group("W1").wrong_entries == 1
    # at eps = 1e-7 the noise is ~6e-2 per entry: a bug far beyond it is still caught and named
    grads["dW1"][2, 3] += 10.0
    report = fc.check(cost, params, grads)
    assert report.verdict == "fail" and report.failing_groups == ["W1"]
    assert report.group("W1").wrong_entries == 1 and "W1[2, 3]" in report.diagnoses["W1"]


# ---------------------------------------------------------------- the headline and the group table
def test_the_headline_names_the_failing_group_when_the_difference_alone_would_warn():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2000)
    grads = {"W": np.cos(x), "b": 2 * x[:3]}
    grads["W"][7] *= 1.1  # one wrong entry of 2000: the norm dilutes it into the warn band

    def cost(p):
        return np.sum(np.sin(p["W"])) + np.sum(p["b"] ** 2)

    report = fc.check(cost, {"W": x, "b": x[:3].copy()}, grads)
    assert report.verdict == "fail" and 1e-6 <= report.difference < 1e-3
    assert str(report).startswith("gradient check FAILED in W: difference")


def test_a_group_of_kinks_only_says_nothing_was_judged():
    def cost(p):
        return np.sum(np.abs(p["a"])) + np.sum(p["c"] ** 2)

    report = fc.check(cost, {"a": np.zeros(3), "c": np.ones(2)}, {"a": np.zeros(3), "c": 2 * np.ones(2)})
    row = next(line for line in str(report).splitlines() if line.strip().startswith("a "))
    assert "all 3 entries are kinks" in row and "0.00e+00" not in row
    assert "all 3 entries are kinks" in report.to_html()
