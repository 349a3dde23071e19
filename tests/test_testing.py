"""fc.assert_gradient / fc.assert_report for users' test suites, and the docstring examples."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.networks import network


@pytest.fixture(scope="module")
def quadratic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    A = A @ A.T
    params = {"W": rng.standard_normal((4, 1)), "b": rng.standard_normal(3)}

    def cost(p):
        return float(0.5 * (p["W"].T @ A @ p["W"]).item() + np.sum(np.cos(p["b"])))

    return cost, params, {"dW": A @ params["W"], "db": -np.sin(params["b"])}


def test_a_correct_gradient_passes_and_the_report_comes_back(quadratic):
    cost, params, grads = quadratic
    report = fc.assert_gradient(cost, params, grads)
    assert isinstance(report, fc.Report) and report.verdict == "pass"


def test_a_wrong_gradient_raises_with_the_report(quadratic):
    cost, params, grads = quadratic
    wrong = dict(grads, db=grads["db"] * 1.1)
    with pytest.raises(AssertionError) as info:
        fc.assert_gradient(cost, params, wrong)
    text = str(info.value)
    assert text.startswith("gradient check FAILED")
    assert "b " in text and "fail" in text and "worst entries" in text


def test_strict_also_fails_a_warn(quadratic):
    cost, params, grads = quadratic
    slightly = dict(grads, db=grads["db"] * (1 + 1e-5))  # between the warn and fail bounds
    assert fc.assert_gradient(cost, params, slightly).verdict == "warn"
    with pytest.raises(AssertionError, match="gradient check"):
        fc.assert_gradient(cost, params, slightly, strict=True)


def test_options_reach_the_check_and_bad_input_is_not_an_assertion(quadratic):
    cost, params, grads = quadratic
    report = fc.assert_gradient(cost, params, grads, mode="directions", n_directions=3)
    assert report.settings["mode"] == "directions"
    with pytest.raises(fc.InputError):  # a broken set-up is a ValueError, not a failed assertion
        fc.assert_gradient(cost, params, {"W": grads["dW"]})


def test_assert_report_on_a_built_in_network_with_a_bug():
    net, params, X, Y = network("S")
    grads = net.gradient(params, X, Y)
    assert fc.assert_report(net.check(params, grads, X, Y)).passed
    grads["dW2"][3, 7] *= 1.1
    with pytest.raises(AssertionError, match=r"W2\[3, 7\]"):
        fc.assert_report(net.check(params, grads, X, Y))


def test_docstring_examples_run():
    failures, attempted = [], 0
    package = importlib.import_module("fastcheck")
    names = [m.name for m in pkgutil.walk_packages(package.__path__, "fastcheck.") if not m.name.endswith(".peers")]
    modules = [package] + [importlib.import_module(name) for name in names]
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
        attempted += result.attempted
        if result.failed:
            failures.append(module.__name__)
    assert attempted >= 15  # the examples of the package, check, MLP and these helpers
    assert not failures, f"docstring examples failed in {failures} (run python -m doctest -v on them)"
