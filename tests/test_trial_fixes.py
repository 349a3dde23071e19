"""What a user-style trial found: each defect held here by a test that failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

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
    with pytest.raises(InputError, match=r"pass that array as `dout=`, or pass `backward=`"):
        fc.check_layer(affine_forward, inputs, grads=grads)
    assert fc.check_layer(affine_forward, inputs, grads=grads, dout=dout).verdict == "pass"


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return -log_probs[np.arange(n), y].sum() / n, dx / n


def test_a_scalar_output_layer_takes_dout_one_with_grads():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 5)), rng.integers(5, size=10)
    report = fc.check_layer(lambda x: softmax_loss(x, y), {"x": x}, grads={"dx": softmax_loss(x, y)[1]})
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
