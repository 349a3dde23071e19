"""The built-in MLP: its cost and backprop, checked by the reference engine, and the bug catalogue."""

import itertools

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.bugs import BUGS, buggy_gradient
from fastcheck.mlp.functions import HIDDEN, OUTPUTS

PAIRS = list(itertools.product(HIDDEN, OUTPUTS))


def make(hidden, output, l2, layers=(6, 5, 4, 3), m=8):
    net = fc.MLP(list(layers), hidden=hidden, output=output, l2=l2)
    params = net.init(seed=0)
    X, Y = net.random_data(m, seed=1)
    return net, params, X, Y


def test_layout_follows_the_course():
    net = fc.MLP([784, 128, 64, 10], hidden="relu", output="softmax", l2=0.1)
    params = net.init(seed=0)
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert params["W1"].shape == (128, 784) and params["b1"].shape == (128, 1)
    assert net.n_params == 109_386
    X, Y = net.random_data(m=64, seed=1)
    assert X.shape == (784, 64) and Y.shape == (10, 64)
    np.testing.assert_array_equal(Y.sum(axis=0), np.ones(64))


def test_cost_includes_the_l2_term():
    net, params, X, Y = make("tanh", "softmax", 0.0)
    reg = fc.MLP(net.layers, hidden="tanh", output="softmax", l2=0.3)
    m = X.shape[1]
    l2 = 0.3 / (2 * m) * sum(np.sum(params[f"W{i}"] ** 2) for i in (1, 2, 3))
    assert reg.cost(params, X, Y) == pytest.approx(net.cost(params, X, Y) + l2, rel=1e-14)


def test_losses_match_their_textbook_definitions():
    z = np.array([[0.3, -2.0], [1.5, 0.1]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum(axis=0)
    from fastcheck.mlp.functions import example_losses, sigmoid

    np.testing.assert_allclose(example_losses("softmax", z, y), -(y * np.log(p)).sum(axis=0), rtol=1e-14)
    s = sigmoid(z)
    np.testing.assert_allclose(example_losses("sigmoid", z, y), -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum(0),
                               rtol=1e-13)
    np.testing.assert_allclose(example_losses("identity", z, y), 0.5 * ((z - y) ** 2).sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize(("hidden", "output"), PAIRS)
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_correct_backprop_passes(hidden, output, l2):
    net, params, X, Y = make(hidden, output, l2)
    report = net.check(params, net.gradient(params, X, Y), X, Y, engine="reference")
    assert report.verdict == "pass", str(report)
    assert all(g.verdict == "pass" for g in report.groups)


@pytest.mark.parametrize(("hidden", "output"), PAIRS)
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_every_catalogued_bug_fails_in_the_right_groups(hidden, output, bug):
    net, params, X, Y = make(hidden, output, 0.1)
    report = net.check(params, buggy_gradient(net, bug, params, X, Y), X, Y, engine="reference")
    assert not report.passed
    assert set(BUGS[bug].origin(net)) <= set(report.failing_groups) <= set(BUGS[bug].touches(net)), str(report)


def test_bug_needs_two_hidden_layers():
    net, params, X, Y = make("relu", "softmax", 0.1, layers=(4, 3, 2))
    with pytest.raises(fc.InputError, match=">= 2 hidden layers"):
        buggy_gradient(net, "scaled", params, X, Y)


def test_kinks_are_found_and_left_out_by_default():
    net, params, X, Y = make("relu", "softmax", 0.1)
    zs, _ = net.forward(params, X)
    # put hidden unit 2 of layer 1 exactly 3e-8 above its kink for example 0
    params["b1"][2, 0] -= zs[0][2, 0] - 3e-8
    grads = net.gradient(params, X, Y)
    report = net.check(params, grads, X, Y, engine="reference")
    assert report.n_kinks > 0
    assert {k.group for k in report.kinks} >= {"b1"}
    assert any(k.label == "b1[2, 0]" for k in report.kinks)
    assert report.group("b1").kinks >= 1
    included = net.check(params, grads, X, Y, engine="reference", kinks="include")
    assert included.n_kinks == report.n_kinks
    assert included.settings["kinks"] == "include"
    assert "crossed a kink" in str(report)


def test_smooth_networks_have_no_kinks():
    net, params, X, Y = make("tanh", "sigmoid", 0.1)
    assert net.check(params, net.gradient(params, X, Y), X, Y, engine="reference").n_kinks == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": [5]}, "at least two positive integer widths"),
        ({"layers": [5, 0, 2]}, "at least two positive integer widths"),
        ({"layers": [5, 2], "hidden": "gelu"}, "`hidden`='gelu'"),
        ({"layers": [5, 2], "output": "tanh"}, "`output`='tanh'"),
        ({"layers": [5, 2], "l2": -1.0}, "`l2`=-1.0"),
    ],
)
def test_bad_networks(kwargs, message):
    with pytest.raises(fc.InputError, match=message.replace("(", r"\(")):
        fc.MLP(**kwargs)


def test_bad_data_and_params(small_net):
    net, params, X, Y = small_net
    grads = net.gradient(params, X, Y)
    with pytest.raises(fc.InputError, match=r"`X` has shape \(5, 8\) but this network needs \(6, m\)"):
        net.check(params, grads, X[:5], Y)
    with pytest.raises(fc.InputError, match="`X` has 8 examples"):
        net.check(params, grads, X, Y[:, :4])
    with pytest.raises(fc.DtypeError, match="`Y` has dtype float32"):
        net.check(params, grads, X, Y.astype(np.float32))
    with pytest.raises(fc.InputError, match=r"`params\['W2'\]` has shape \(5, 4\)"):
        net.check({**params, "W2": params["W2"].T}, grads, X, Y)
    with pytest.raises(fc.InputError, match="in that order"):
        net.check(dict(reversed(params.items())), grads, X, Y)
    with pytest.raises(fc.InputError, match="`engine`: expected one of .* got 'fast'"):
        net.check(params, grads, X, Y, engine="fast")


@pytest.mark.parametrize("engine", ["batched", "reference"])
@pytest.mark.parametrize("mode", ["full", "directions"])
def test_callers_arrays_are_unchanged(small_net, engine, mode):
    net, params, X, Y = small_net
    grads = net.gradient(params, X, Y)
    before = [{k: v.copy() for k, v in d.items()} for d in (params, grads)] + [X.copy(), Y.copy()]
    net.check(params, grads, X, Y, engine=engine, mode=mode)
    for k in params:
        np.testing.assert_array_equal(params[k], before[0][k])
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[1][k])
    np.testing.assert_array_equal(X, before[2])
    np.testing.assert_array_equal(Y, before[3])
