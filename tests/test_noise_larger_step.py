"""The noise rule takes its larger step first, and through the check's own engine where that engine
computes its values otherwise than by calls of the cost: a bug costs no noise measurement, and a
traced check of a slow cost with a wrong gradient stays about as fast as a passing one."""

from __future__ import annotations

import numpy as np
import pytest
from test_user_verdicts import _saturated_bce
from traced_models import course_mlp

import fastcheck as fc


def _counted(cost):
    calls = []

    def counted(p):
        calls.append(1)
        return cost(p)

    return counted, calls


@pytest.mark.parametrize("group", ["dW1", "db2"])
def test_a_bug_is_refuted_at_the_larger_step_without_measuring_noise_or_calling_the_cost(group):
    cost, params, grads = course_mlp(sizes=(20, 8, 5, 1), m=16)
    grads = dict(grads)
    grads[group] = grads[group] * 1.1
    counted, calls = _counted(cost)
    passing, passing_calls = _counted(cost)
    fc.check(passing, params, course_mlp(sizes=(20, 8, 5, 1), m=16)[2], sweep=False)
    report = fc.check(counted, params, grads, sweep=False)
    assert report.settings["engine"] == "traced" and report.failing_groups == [group[1:]]
    noise = report.settings["noise"]
    assert [r["group"] for r in noise["refuted"]] == [group[1:]]
    assert noise["entries"] == 0  # nothing measured: the larger step refuted it, taken by the traced engine
    assert noise["larger_step"]["by"] == "traced" and noise["evaluations"] == noise["larger_step"]["evaluations"]
    # the larger step's trace is verified against the cost (two steps, a sample each), nothing more
    assert len(calls) <= 3 * len(passing_calls)


def test_a_noisy_cost_is_still_measured_and_confirmed():
    cost, params, grads = _saturated_bce()
    report = fc.check(cost, params, grads)
    assert report.verdict == "warn" and not report.failing_groups
    noise = report.settings["noise"]
    assert noise["entries"] > 0 and noise["evaluations"] > 0 and noise["refuted"] == []
    assert noise["largest"] > 1e3 * np.spacing(abs(cost(params)))  # far above the rounding of J


@pytest.mark.parametrize("engine", [None, "reference"])
def test_a_bug_on_a_noisy_cost_fails_either_way(engine):
    cost, params, grads = _saturated_bce()
    grads = dict(grads)
    grads["dW2"] = grads["dW2"] * 1.1
    report = fc.check(cost, params, grads, engine=engine)
    assert report.failing_groups == ["W2"]
    assert [r["group"] for r in report.settings["noise"]["refuted"]] == ["W2"]
