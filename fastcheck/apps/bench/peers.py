"""Peer gradient checkers run on fastcheck's own networks, for benchmark comparisons.

Every adapter computes the same network, data and cost as :class:`fastcheck.MLP`
(float64, examples as columns, ``W`` of shape (n_out, n_in), ``b`` of shape (n_out, 1),
mean loss from the logits plus ``(l2 / 2m) * sum ||W||^2``) and calls the peer in its
default mode. Peers are optional: each import is inside its function, so fastcheck never
requires them; :func:`available` says which are installed.

========================  ==========================================  ========================
adapter                   peer call                                   verdict
========================  ==========================================  ========================
torch_gradcheck           ``torch.autograd.gradcheck`` (slow or       its own (returns a bool)
                          ``fast_mode=True``), parameters as inputs
jax_check_grads           ``jax.test_util.check_grads(order=1)``      its own (raises or not)
scipy_check_grad          ``scipy.optimize.check_grad``               ``err / ||grad||`` against
                          (``direction="all"`` or ``"random"``)       fastcheck's bounds
numdifftools_gradient     ``numdifftools.Gradient`` (central,         fastcheck's relative
                          Richardson extrapolation)                   difference and bounds
========================  ==========================================  ========================

Slow per-coordinate peers take ``indices``: only those coordinates of theta are inputs
(the others are constants), so a seeded sample can be timed and extrapolated.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from ...core.finite import Bounds, relative_difference
from ...core.layout import Layout
from ...errors import InputError

__all__ = ["PEERS", "PeerResult", "available", "flat_problem", "torch_cost", "torch_gradient", "jax_cost",
           "jax_gradient", "torch_gradcheck", "jax_check_grads", "scipy_check_grad", "numdifftools_gradient"]

#: Peer name -> the module that must be importable.
PEERS = {"torch": "torch", "jax": "jax", "scipy": "scipy", "numdifftools": "numdifftools"}


@dataclass
class PeerResult:
    """What a peer said about the gradient: ``passed``, and its error measure if it has one."""

    passed: bool
    difference: float | None = None
    detail: str = ""


def available(peer: str) -> bool:
    """True when ``peer`` (a key of :data:`PEERS`) is installed."""
    if peer not in PEERS:
        raise InputError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)}")
    return importlib.util.find_spec(PEERS[peer]) is not None


def _sample_indices(n_params: int, indices) -> np.ndarray | None:
    if indices is None:
        return None
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0 or indices.min() < 0 or indices.max() >= n_params:
        raise InputError(f"`indices` must be a non-empty 1-D array of coordinates in [0, {n_params})")
    return indices


# ---------------------------------------------------------------------- numpy (scipy, numdifftools)
def flat_problem(net, params, X, Y):
    """``(layout, theta, cost, grad)``: fastcheck's cost and backprop over a flat theta of shape (n,)."""
    layout, theta = Layout.from_params(params)

    def cost(flat):
        return net.cost(layout.unflatten(np.asarray(flat, dtype=np.float64)), X, Y)

    def grad(flat):
        return layout.flatten_grads(net.gradient(layout.unflatten(np.asarray(flat, dtype=np.float64)), X, Y))

    return layout, theta, cost, grad


def _restricted(theta, cost, grad, indices):
    """cost and grad of the coordinates ``indices`` only, the others held at ``theta``."""
    if indices is None:
        return theta.copy(), cost, grad

    def sub_cost(x):
        full = theta.copy()
        full[indices] = x
        return cost(full)

    def sub_grad(x):
        full = theta.copy()
        full[indices] = x
        return grad(full)[indices]

    return theta[indices].copy(), sub_cost, sub_grad


def scipy_check_grad(net, params, X, Y, *, direction: str = "all", indices=None, seed: int = 0,
                     bounds: Bounds | None = None) -> PeerResult:
    """``scipy.optimize.check_grad`` at its default step (forward differences, eps ~ 1.5e-8).

    ``check_grad`` returns ``err = ||grad - approx||``; the verdict applies fastcheck's
    bounds to ``err / ||grad||`` (``|grad . v|`` for ``direction="random"``).
    """
    from scipy.optimize import check_grad

    bounds = bounds or Bounds()
    layout, theta, cost, grad = flat_problem(net, params, X, Y)
    x0, f, g = _restricted(theta, cost, grad, _sample_indices(layout.n_params, indices))
    if direction == "random":
        err = check_grad(f, g, x0, direction="random", rng=np.random.default_rng(seed))
        v = np.random.default_rng(seed).standard_normal(x0.shape)
        scale = abs(float(g(x0) @ v))
    else:
        err = check_grad(f, g, x0)
        scale = float(np.linalg.norm(g(x0)))
    difference = float(err) / scale if scale > 0 else float(err)
    return PeerResult(bounds.verdict(difference) != "fail", difference, f"err {err:.3g}")


def numdifftools_gradient(net, params, X, Y, *, indices=None, bounds: Bounds | None = None) -> PeerResult:
    """``numdifftools.Gradient`` (its defaults), compared with fastcheck's relative difference."""
    import numdifftools as nd

    bounds = bounds or Bounds()
    layout, theta, cost, grad = flat_problem(net, params, X, Y)
    x0, f, g = _restricted(theta, cost, grad, _sample_indices(layout.n_params, indices))
    numeric = np.asarray(nd.Gradient(f)(x0), dtype=np.float64).ravel()
    difference = relative_difference(numeric, g(x0))
    return PeerResult(bounds.verdict(difference) != "fail", difference)


# ---------------------------------------------------------------------- torch and jax
def _mlp_expression(net, arrays, X, Y, fns):
    """The MLP cost written once for any array library: ``arrays`` = [W1, b1, W2, b2, ...]."""
    a, L = X, net.n_layers
    for layer in range(L):
        z = arrays[2 * layer] @ a + arrays[2 * layer + 1]
        if layer < L - 1:
            a = fns[net.hidden](z)
    m = X.shape[1]
    cost = fns["loss_" + net.output](z, Y).sum() / m
    if net.l2 != 0.0:
        cost = cost + net.l2 / (2.0 * m) * sum((W * W).sum() for W in arrays[0::2])
    return cost


def _torch_fns():
    import torch

    return {
        "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z,
        "leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
        "loss_softmax": lambda z, y: y * (torch.logsumexp(z, dim=0, keepdim=True) - z),
        "loss_sigmoid": lambda z, y: torch.relu(z) + torch.log1p(torch.exp(-z.abs())) - y * z,
        "loss_identity": lambda z, y: 0.5 * (z - y) ** 2,
    }


def torch_cost(net, X, Y):
    """``cost(W1, b1, W2, b2, ...) -> 0-d tensor``: fastcheck's cost in PyTorch, float64."""
    import torch

    Xt, Yt, fns = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.ascontiguousarray(Y)), _torch_fns()

    def cost(*arrays):
        return _mlp_expression(net, arrays, Xt, Yt, fns)

    return cost


def _torch_inputs(params):
    import torch

    return tuple(torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in params.values())


def torch_gradient(net, params, X, Y) -> tuple[float, dict]:
    """PyTorch's cost and autograd gradient, ``(J, {"dW1": ..., ...})`` as numpy float64."""
    inputs = _torch_inputs(params)
    value = torch_cost(net, X, Y)(*inputs)
    value.backward()
    return float(value.detach()), {"d" + k: t.grad.numpy().copy() for k, t in zip(params, inputs)}


def torch_gradcheck(net, params, X, Y, *, fast_mode: bool = False, indices=None, seed: int = 0) -> PeerResult:
    """``torch.autograd.gradcheck`` at its defaults (eps 1e-6, atol 1e-5, rtol 1e-3).

    The parameters W1, b1, ... are the inputs. With ``indices``, the only input is the
    vector of those coordinates of theta (the rest are constants): for timing a sample
    of the slow mode, which keeps a Jacobian column per input element.
    """
    import torch

    layout, theta = Layout.from_params(params)
    indices = _sample_indices(layout.n_params, indices)
    cost = torch_cost(net, X, Y)
    torch.manual_seed(seed)  # fast mode draws its random vectors from torch's generator
    if indices is None:
        inputs = _torch_inputs(params)
        func = cost
    else:
        base = torch.from_numpy(theta.copy())
        where = torch.from_numpy(indices)
        shapes = [(g.start, g.stop, g.shape) for g in layout.groups]

        def func(sub):
            full = base.index_put((where,), sub)
            return cost(*(full[start:stop].reshape(shape) for start, stop, shape in shapes))

        inputs = (torch.tensor(theta[indices], requires_grad=True),)
    passed = torch.autograd.gradcheck(func, inputs, fast_mode=fast_mode, raise_exception=False)
    return PeerResult(bool(passed))


def _jax_fns():
    import jax
    import jax.numpy as jnp

    return {
        "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z,
        "leaky_relu": lambda z: jnp.where(z > 0, z, 0.01 * z),
        "loss_softmax": lambda z, y: y * (jax.scipy.special.logsumexp(z, axis=0, keepdims=True) - z),
        "loss_sigmoid": lambda z, y: jax.nn.relu(z) + jnp.log1p(jnp.exp(-jnp.abs(z))) - y * z,
        "loss_identity": lambda z, y: 0.5 * (z - y) ** 2,
    }


def _enable_x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def jax_cost(net, X, Y):
    """``cost(params) -> scalar``: fastcheck's cost in JAX over the params dict, float64."""
    _enable_x64()
    import jax.numpy as jnp

    Xj, Yj, fns = jnp.asarray(X, dtype=jnp.float64), jnp.asarray(Y, dtype=jnp.float64), _jax_fns()

    names = list(net.shapes)

    def cost(p):  # jax orders a dict's leaves by key: take them by name
        return _mlp_expression(net, [p[k] for k in names], Xj, Yj, fns)

    return cost


def _jax_params(params):
    import jax.numpy as jnp

    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}


def jax_gradient(net, params, X, Y) -> tuple[float, dict]:
    """JAX's cost and gradient, ``(J, {"dW1": ..., ...})`` as numpy float64."""
    _enable_x64()
    import jax

    value, grads = jax.value_and_grad(jax_cost(net, X, Y))(_jax_params(params))
    return float(value), {"d" + k: np.asarray(grads[k], dtype=np.float64) for k in params}


def jax_check_grads(net, params, X, Y) -> PeerResult:
    """``jax.test_util.check_grads(cost, (params,), order=1)`` at its defaults (fwd and rev, eps 1e-4)."""
    _enable_x64()
    from jax.test_util import check_grads

    try:
        check_grads(jax_cost(net, X, Y), (_jax_params(params),), order=1)
    except AssertionError as exc:
        return PeerResult(False, detail=" ".join(str(exc).split())[:200])
    return PeerResult(True)
