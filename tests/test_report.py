import json

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.networks import network


@pytest.fixture(scope="module")
def buggy_report():
    """Network S with the design's planted bug: W2[3, 7] off by 10%."""
    net, params, X, Y = network("S")
    grads = net.gradient(params, X, Y)
    grads["dW2"][3, 7] *= 1.1
    return net.check(params, grads, X, Y, engine="reference")


def test_report_fields(buggy_report):
    report = buggy_report
    assert report.verdict == "fail" and not report.passed and not bool(report)
    assert [g.name for g in report.groups] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert report.failing_groups == ["W2"]
    w2 = report.group("W2")
    assert (w2.shape, w2.size, w2.checked) == ((16, 32), 512, 512)
    top = report.worst(3)
    assert (top[0].group, top[0].index, top[0].label) == ("W2", (3, 7), "W2[3, 7]")
    assert top[0].rel_error >= top[1].rel_error >= top[2].rel_error
    assert top[0].abs_error == abs(top[0].analytic - top[0].numeric)
    assert report.settings["eps"] == 1e-7 and report.settings["engine"] == "reference"
    assert report.settings["mode"] == "full" and report.settings["seed"] == 0
    assert report.n_evaluations == 2 * report.n_params
    assert report.elapsed > 0


def test_text_names_the_group_and_entry(buggy_report):
    text = str(buggy_report)
    assert text.startswith("gradient check FAILED")
    assert "W2[3, 7]" in text
    assert "wrong: W2" in text


def test_json_round_trip(buggy_report):
    report = buggy_report
    text = report.to_json()
    data = json.loads(text)
    assert data["verdict"] == "fail" and data["groups"][2]["name"] == "W2"
    again = fc.Report.from_json(text)
    assert again.to_json() == text
    assert again.difference == report.difference
    assert again.groups == report.groups
    assert again.worst(5) == report.worst(5)


def test_worst_is_sorted_and_bounded():
    x = np.arange(1.0, 6.0)
    analytic = x.copy()
    analytic[[1, 3]] *= [1.5, 1.1]
    report = fc.check(lambda t: float(t @ x), np.zeros(5), analytic)
    labels = [e.label for e in report.worst(2)]
    assert labels == ["theta[1]", "theta[3]"]
    assert len(report.worst(100)) == 5


def test_one_wrong_entry_of_the_largest_group_fails_and_is_named():
    net, params, X, Y = network("S")
    grads = net.gradient(params, X, Y)
    grads["dW1"][5, 9] *= 1.1
    report = net.check(params, grads, X, Y, engine="reference")
    assert report.failing_groups == ["W1"]
    assert report.group("W1").wrong_entries == 1
    assert report.group("W1").difference < 1e-3  # the norm alone would not fail it
    assert report.worst(1)[0].label == "W1[5, 9]"


def test_correct_gradient_has_no_wrong_entries():
    net, params, X, Y = network("S")
    report = net.check(params, net.gradient(params, X, Y), X, Y, engine="reference")
    assert report.verdict == "pass"
    assert all(g.wrong_entries == 0 for g in report.groups)


def test_worst_is_the_same_ranking_whatever_k_and_call_order():
    from fastcheck.apps.bugs import buggy_gradient
    from fastcheck.apps.networks import network

    net, params, X, Y = network("S")
    grads = buggy_gradient(net, "scaled", params, X, Y)
    first, second = net.check(params, grads, X, Y), net.check(params, grads, X, Y)
    big = [e.label for e in first.worst(100)]  # computed for 100 first ...
    assert len(big) == 100 and [e.label for e in first.worst(7)] == big[:7]
    small = [e.label for e in second.worst(3)]  # ... or for the JSON's 20 first, then more
    assert small == big[:3] and [e.label for e in second.worst(100)] == big
    assert [e.label for e in second.worst(20)] == big[:20]
