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
