"""The smooth shortcut (certified Taylor polynomials for tanh and sigmoid layers) against exact twins.

The twins: full forward passes in float64 (``net.cost``) and in 50-digit decimal
arithmetic, and the stacked engine's exact cost changes. Each runs where the certificate
holds for every example, where it holds for none, and where it holds for some.
"""

from decimal import Decimal, localcontext

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp import smooth
from fastcheck.engines.mlp.batched import base_pass, batched_engine

EPS = 1e-7
OUTPUTS = ["softmax", "sigmoid", "identity"]
#: (layers, scale of X, eps): every example certified / none / some, by the layers' widths.
SCALES = {"certified": (1.0, EPS), "uncertified": (40.0, 1e-2), "mixed": (4.0, 1e-3)}


def problem(layers, hidden, output, scale=1.0, m=5, l2=0.2):
    net = fc.MLP(layers, hidden=hidden, output=output, l2=l2)
    params = net.init(seed=0)
    X, Y = net.random_data(m, seed=1)
    return net, params, scale * X, Y


def decimal_cost(net, params, X, Y):
    """J by a forward pass in 50-digit decimal arithmetic (the float64 inputs taken exactly)."""
    losses, penalty = decimal_losses(net, params, X, Y)
    return sum(losses) / len(losses) + penalty


def decimal_losses(net, params, X, Y):
    """Each example's loss and the L2 term, by a forward pass in 50-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 50
        one = Decimal(1)

        def act(z):
            if net.hidden == "tanh":
                e = (2 * z).exp()
                return (e - one) / (e + one)
            return one / (one + (-z).exp())

        m = X.shape[1]
        A = [[Decimal(float(v)) for v in row] for row in X]
        for layer in range(1, net.n_layers + 1):
            W, b = params[f"W{layer}"], params[f"b{layer}"]
            Z = [[sum((Decimal(float(W[i, k])) * A[k][e] for k in range(W.shape[1])), Decimal(float(b[i, 0])))
                  for e in range(m)] for i in range(W.shape[0])]
            A = [[act(v) for v in row] for row in Z] if layer < net.n_layers else Z
        losses = []
        for e in range(m):
            z = [A[c][e] for c in range(len(A))]
            y = [Decimal(float(Y[c, e])) for c in range(len(A))]
            if net.output == "softmax":
                lse = sum(v.exp() for v in z).ln()
                losses.append(sum(y) * lse - sum(yc * zc for yc, zc in zip(y, z)))
            elif net.output == "sigmoid":
                losses.append(sum((one + zc.exp()).ln() - yc * zc for yc, zc in zip(y, z)))
            else:
                losses.append(sum((zc - yc) ** 2 for yc, zc in zip(y, z)) / 2)
        penalty = sum(Decimal(float(w)) ** 2 for layer in range(1, net.n_layers + 1)
                      for w in params[f"W{layer}"].ravel())
        return losses, Decimal(net.l2) / (2 * m) * penalty


def coverage(net, params, X, Y, eps):
    base = base_pass(net, params, X, Y)
    return [base.smooth(layer, eps).certified.mean() for layer in range(1, net.n_layers) if smooth.covers(net, layer)]


def smooth_indices(net):
    """Every coordinate of the layers the shortcut serves."""
    starts = np.cumsum([0] + [int(np.prod(s)) for s in net.shapes.values()])
    layers = [layer for layer in range(1, net.n_layers) if smooth.covers(net, layer)]
    return np.concatenate([np.arange(starts[2 * layer - 2], starts[2 * layer]) for layer in layers])


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("most", [False, True])
@pytest.mark.parametrize("layers", [[3, 4, 3, 2], [3, 3, 4, 3, 2]])
def test_changes_equal_decimal_forward_passes(hidden, output, scale, most, layers, monkeypatch):
    """``most``: the degree that certifies the most pairs, not the least work."""
    x_scale, eps = SCALES[scale]
    net, params, X, Y = problem(layers, hidden, output, x_scale, m=3)
    if most:
        monkeypatch.setattr(smooth, "PATH_COST", 1e30)
        share = coverage(net, params, X, Y, eps)
        assert {"certified": min(share) == 1.0, "uncertified": max(share) == 0.0,
                "mixed": 0.0 < max(share) and min(share) < 1.0}[scale], share
    assert_changes_exact(net, params, X, Y, eps)


def assert_changes_exact(net, params, X, Y, eps):
    """J(theta +- d e_i) - J(theta) to float64 rounding of the examples' changes, not of J."""
    indices = smooth_indices(net)
    comp = batched_engine(net, params, X, Y, indices, eps)
    layout, theta = Layout.from_params(params)
    losses, penalty = decimal_losses(net, params, X, Y)
    for p, i in enumerate(indices):
        changes, size = [], Decimal(0)
        for sign in (+1, -1):
            work = theta.copy()
            work[i] = theta[i] + sign * eps
            new, new_penalty = decimal_losses(net, layout.unflatten(work), X, Y)
            changes.append(sum(a - b for a, b in zip(new, losses)) / len(losses) + new_penalty - penalty)
            size += sum(abs(a - b) for a, b in zip(new, losses)) / len(losses) + abs(new_penalty - penalty)
        steps = float(Decimal(float(theta[i] + eps)) - Decimal(float(theta[i] - eps)))
        exact = float((changes[0] - changes[1]) / Decimal(steps))
        scale_of_change = float(size) / steps
        assert abs(comp.numeric[p] - exact) <= 64 * 2.0**-52 * scale_of_change + 1e-300, f"numeric[{p}] (theta[{i}])"


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("layers", [[5, 4, 3], [5, 4, 6, 3], [5, 4, 6, 3, 3]])
def test_costs_equal_full_forward_passes(hidden, output, scale, layers):
    x_scale, eps = SCALES[scale]
    net, params, X, Y = problem(layers, hidden, output, x_scale, m=7)
    indices = np.arange(net.n_params)
    comp = batched_engine(net, params, X, Y, indices, eps)
    layout, theta = Layout.from_params(params)
    for p, i in enumerate(indices[::3]):
        for sign, got in ((+1, comp.cost_plus[3 * p]), (-1, comp.cost_minus[3 * p])):
            work = theta.copy()
            work[i] = theta[i] + sign * eps
            ref = net.cost(layout.unflatten(work), X, Y)
            assert got == pytest.approx(ref, rel=1e-13, abs=8 * np.spacing(ref))


def test_planted_truncation_is_caught(monkeypatch):
    """A certificate that lets through too short a polynomial fails the decimal comparison."""
    monkeypatch.setattr(smooth, "TOLERANCE", 1.0)
    monkeypatch.setattr(smooth, "MAX_ORDER", 1)
    monkeypatch.setattr(smooth, "PATH_COST", 1e30)
    x_scale, eps = SCALES["mixed"]
    net, params, X, Y = problem([3, 4, 3, 2], "tanh", "softmax", x_scale, m=3)
    assert min(coverage(net, params, X, Y, eps)) > 0.5
    with pytest.raises(AssertionError, match="numeric"):
        assert_changes_exact(net, params, X, Y, eps)


def test_certificate_bounds_the_true_remainder():
    """Cauchy's bound against the truncation error seen in decimal arithmetic, for one row and example."""
    net, params, X, Y = problem([3, 4, 3, 2], "tanh", "softmax", 1.0, m=1, l2=0.0)
    eps = 1e-3
    base = base_pass(net, params, X, Y)
    poly = base.smooth(1, eps)
    assert poly.certified.all()
    layout, theta = Layout.from_params(params)
    J = decimal_cost(net, params, X, Y)
    for j in range(net.layers[1]):
        i = layout.groups[1].start + j  # b1[j]: t = d
        work = theta.copy()
        work[i] = theta[i] + eps
        t = work[i] - theta[i]
        exact = decimal_cost(net, layout.unflatten(work), X, Y) - J
        c = poly.coefs[j, :, 0]
        series = sum(Decimal(float(c[n])) * Decimal(t) ** (n + 1) for n in range(c.size))
        assert abs(float(exact - series)) <= 2.0**-50 * abs(float(exact))


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
def test_orders_and_certificates_do_not_depend_on_the_coordinates_asked(hidden):
    net, params, X, Y = problem([8, 6, 5, 3], hidden, "softmax", 4.0, m=9)
    full = batched_engine(net, params, X, Y, np.arange(net.n_params), 1e-3)
    subset = np.random.default_rng(5).permutation(net.n_params)[: net.n_params // 4]
    part = batched_engine(net, params, X, Y, subset, 1e-3)
    for field in ("cost_plus", "cost_minus", "numeric"):
        assert_array_equal(getattr(part, field), getattr(full, field)[subset])


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
def test_derivative_terms_match_finite_differences(hidden):
    z = np.linspace(-6, 6, 25)
    coefs = smooth._taylor(hidden, z, 5)
    g = np.tanh if hidden == "tanh" else fc.mlp.functions.sigmoid
    h = 1e-2
    # the degree-5 polynomial through g at z + h*(-2..2) ... via a least-squares fit of nine points
    offsets = h * np.arange(-4, 5)
    V = np.vander(offsets, 9, increasing=True)
    fit = np.linalg.solve(V, np.array([g(z + o) for o in offsets]))
    for k in range(1, 6):
        np.testing.assert_allclose(coefs[k - 1], fit[k], rtol=1e-5, atol=1e-7 / h**k * 1e-6)


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
def test_per_coordinate_steps_equal_full_forward_passes(hidden):
    """Steps of every size at once (as ``eps="auto"`` gives): each layer's certificate takes its own."""
    net, params, X, Y = problem([5, 4, 6, 3], hidden, "softmax", 4.0, m=7)
    steps = 10.0 ** np.random.default_rng(3).uniform(-8, -2, net.n_params)
    comp = batched_engine(net, params, X, Y, np.arange(net.n_params), steps)
    layout, theta = Layout.from_params(params)
    for i in range(net.n_params):
        for sign, got in ((+1, comp.cost_plus[i]), (-1, comp.cost_minus[i])):
            work = theta.copy()
            work[i] = theta[i] + sign * steps[i]
            ref = net.cost(layout.unflatten(work), X, Y)
            assert got == pytest.approx(ref, rel=1e-13, abs=8 * np.spacing(ref))
    part = batched_engine(net, params, X, Y, np.arange(0, net.n_params, 5), steps)
    assert_array_equal(part.numeric, comp.numeric[::5])
