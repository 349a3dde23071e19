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
