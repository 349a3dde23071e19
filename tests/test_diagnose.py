"""Diagnoses name the shape of each catalogued bug, and stay silent on correct gradients."""

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.bugs import buggy_gradient
from fastcheck.apps.networks import network

EXPECTED = {
    "scaled": {"W2": "2 times the numeric one"},
    "missing_l2": {"W1": "the L2 term is missing", "W2": "the L2 term is missing", "W3": "the L2 term is missing"},
    "missing_mean": {"W2": "a missing 1/m", "b2": "a missing 1/m"},
    "transposed": {"W2": "transpose of the right one"},
    "sign_flip": {"W1": "a sign flip", "b3": "a sign flip"},
    "bias_axis": {"b2": "sum over the wrong axis"},
}


@pytest.fixture(scope="module")
def net_s():
    return network("S")


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_each_bug_is_diagnosed(net_s, bug):
    net, params, X, Y = net_s
    report = net.check(params, buggy_gradient(net, bug, params, X, Y), X, Y)
    for group, phrase in EXPECTED[bug].items():
        assert phrase in report.diagnoses[group], report.diagnoses
    assert "diagnosis:" in str(report)
    assert fc.Report.from_json(report.to_json()).diagnoses == report.diagnoses


def test_a_few_wrong_entries_are_named(net_s):
    net, params, X, Y = net_s
    grads = net.gradient(params, X, Y)
    grads["dW1"][5, 9] *= 1.1
    grads["dW1"][7, 3] *= -1.0
    report = net.check(params, grads, X, Y)
    assert report.diagnoses["W1"] == "only 2 of 2048 checked entries are wrong: W1[5, 9], W1[7, 3]"


def test_correct_gradients_get_no_diagnosis(net_s):
    net, params, X, Y = net_s
    assert net.check(params, net.gradient(params, X, Y), X, Y).diagnoses == {}


def test_user_costs_are_diagnosed_without_mlp_context():
    x = np.linspace(1.0, 2.0, 8)
    report = fc.check(lambda t: float(np.sum(np.cos(t) * x)), np.ones(8), 3.0 * (-np.sin(np.ones(8)) * x))
    assert "3 times the numeric one" in report.diagnoses["theta"]
    assert "(= 3)" in report.diagnoses["theta"] and "a missing 1/3" in report.diagnoses["theta"]


@pytest.mark.parametrize(("factor", "says"), [(1 / 16, "(= 1/16)"), (-1 / 16, "(= -1/16)"), (2.0, "stray constant"),
                                              (2.7, "stray constant"), (16.0, "a missing 1/16")])
def test_a_whole_factor_of_a_user_cost_names_its_likely_batch_division(factor, says):
    x = np.linspace(1.0, 2.0, 8)
    report = fc.check(lambda t: float(np.sum(np.cos(t) * x)), np.ones(8), factor * (-np.sin(np.ones(8)) * x))
    assert says in report.diagnoses["theta"]
    assert ("once too often" in report.diagnoses["theta"]) == (abs(factor) < 1 / 3)


def test_an_error_constant_over_a_whole_matrix_is_the_same_in_every_entry_not_along_one_axis():
    from fastcheck.apps.networks import network

    net, params, X, Y = network("S")
    grads = net.gradient(params, X, Y)
    grads["dW2"] = grads["dW2"] + 0.01
    sentence = net.check(params, grads, X, Y).diagnoses["W2"]
    assert "the same in every entry (1.000e-02)" in sentence and "along axis" not in sentence
