"""The peer adapters compute fastcheck's cost and gradient, to rounding, before anything is timed."""

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.bench import peers

PAIRS = [("relu", "softmax"), ("tanh", "softmax"), ("leaky_relu", "sigmoid"), ("sigmoid", "identity")]


def _problem(hidden="relu", output="softmax", layers=(6, 5, 4, 3), m=8):
    net = fc.MLP(list(layers), hidden=hidden, output=output, l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(m, seed=1)
    return net, params, X, Y


def _assert_same(net, params, X, Y, value, grads):
    ref = net.gradient(params, X, Y)
    np.testing.assert_allclose(value, net.cost(params, X, Y), rtol=1e-13, atol=0)
    assert list(grads) == list(ref)
    for name in ref:
        np.testing.assert_allclose(grads[name], ref[name], rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize(("hidden", "output"), PAIRS)
def test_torch_cost_and_gradient_match(hidden, output):
    pytest.importorskip("torch")
    net, params, X, Y = _problem(hidden, output)
    _assert_same(net, params, X, Y, *peers.torch_gradient(net, params, X, Y))


@pytest.mark.parametrize(("hidden", "output"), PAIRS)
def test_jax_cost_and_gradient_match(hidden, output):
    pytest.importorskip("jax")
    net, params, X, Y = _problem(hidden, output)
    _assert_same(net, params, X, Y, *peers.jax_gradient(net, params, X, Y))


def test_benchmark_network_S_matches_in_torch_and_jax():
    from fastcheck.apps.networks import network

    net, params, X, Y = network("S")
    for peer, gradient in (("torch", peers.torch_gradient), ("jax", peers.jax_gradient)):
        if peers.available(peer):
            _assert_same(net, params, X, Y, *gradient(net, params, X, Y))


def test_flat_problem_is_fastcheck_cost():
    net, params, X, Y = _problem()
    layout, theta, cost, grad = peers.flat_problem(net, params, X, Y)
    assert cost(theta) == net.cost(params, X, Y)
    np.testing.assert_array_equal(grad(theta), layout.flatten_grads(net.gradient(params, X, Y)))


def test_torch_gradcheck_passes_smooth_and_sample():
    pytest.importorskip("torch")
    net, params, X, Y = _problem("tanh")
    assert peers.torch_gradcheck(net, params, X, Y).passed
    assert peers.torch_gradcheck(net, params, X, Y, fast_mode=True).passed
    assert peers.torch_gradcheck(net, params, X, Y, indices=np.array([0, 5, 40, net.n_params - 1])).passed


def test_jax_check_grads_passes_smooth():
    pytest.importorskip("jax")
    net, params, X, Y = _problem("tanh")
    assert peers.jax_check_grads(net, params, X, Y).passed


def test_scipy_check_grad_passes_and_catches_a_bug():
    pytest.importorskip("scipy")
    net, params, X, Y = _problem("tanh")
    result = peers.scipy_check_grad(net, params, X, Y)
    assert result.passed and result.difference < 1e-5
    assert peers.scipy_check_grad(net, params, X, Y, direction="random", seed=3).passed
    assert peers.scipy_check_grad(net, params, X, Y, indices=np.arange(0, net.n_params, 7)).passed
    wrong = fc.MLP(net.layers, hidden="tanh", output="softmax", l2=0.0)  # gradient without the L2 term
    net.gradient = wrong.gradient
    assert not peers.scipy_check_grad(net, params, X, Y).passed


def test_numdifftools_gradient_passes_smooth():
    pytest.importorskip("numdifftools")
    net, params, X, Y = _problem("tanh", layers=(4, 3, 2))
    result = peers.numdifftools_gradient(net, params, X, Y)
    assert result.passed and result.difference < 1e-6


def test_bad_peer_and_indices():
    with pytest.raises(fc.InputError, match="unknown peer"):
        peers.available("tensorflow")
    pytest.importorskip("scipy")
    net, params, X, Y = _problem()
    with pytest.raises(fc.InputError, match="indices"):
        peers.scipy_check_grad(net, params, X, Y, indices=np.array([net.n_params]))
