"""What a second user trial found: each defect held here by a test that failed before its fix."""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.errors import InputError


def two_layer():
    """A small tanh network written by hand, with its backward pass; ``bug`` breaks dW2."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((2, 4))
    params = {"W1": rng.standard_normal((5, 6)) * 0.5, "b1": np.zeros((5, 1)) + 0.1,
              "W2": rng.standard_normal((2, 5)) * 0.5, "b2": np.zeros((2, 1))}

    def cost(p):
        h = np.tanh(p["W1"] @ x + p["b1"])
        return 0.5 * np.mean(np.sum((p["W2"] @ h + p["b2"] - y) ** 2, axis=0))

    def grads(p, bug=False):
        h = np.tanh(p["W1"] @ x + p["b1"])
        d = (p["W2"] @ h + p["b2"] - y) / x.shape[1]
        dh = (p["W2"].T @ d) * (1 - h ** 2)
        g = {"dW1": dh @ x.T, "db1": dh.sum(1, keepdims=True), "dW2": d @ h.T, "db2": d.sum(1, keepdims=True)}
        if bug:
            g["dW2"] = g["dW2"] * 1.5
        return g

    return cost, params, grads


# ---------------------------------------------------------------------- elapsed: the wall time of the check
@pytest.mark.parametrize("engine", ["traced", "reference"])
def test_a_failing_check_reports_no_more_time_than_the_call_took(engine):
    cost, params, grads = two_layer()
    started = time.perf_counter()
    report = fc.check(cost, params, grads(params, bug=True), engine=engine)
    wall = time.perf_counter() - started
    assert report.verdict == "fail"
    assert "noise" in report.settings  # the post-check work ran: its time must be counted once
    assert 0 < report.elapsed <= wall
