"""The batched MLP engine against its slow twins: ``net.cost`` and the reference engine."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastcheck as fc
from fastcheck.apps.bugs import BUGS, buggy_gradient
from fastcheck.apps.networks import network
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp import kernels
from fastcheck.engines.mlp.batched import batched_engine
from fastcheck.engines.mlp.objective import MLPObjective
from fastcheck.engines.reference import reference_engine

EPS = 1e-7
HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "identity"]
OUTPUTS = ["softmax", "sigmoid", "identity"]
DEPTHS = {1: [5, 4, 3], 2: [5, 4, 6, 3], 3: [5, 4, 6, 3, 3], 4: [5, 4, 6, 3, 2, 3]}
#: Rounding of one full cost, in units of spacing(J): a loose bound on the reference's noise.
COST_ULPS = 16


def problem(layers, hidden, output, l2, m=7, seed=0):
    net = fc.MLP(layers, hidden=hidden, output=output, l2=l2)
    params = net.init(seed=seed)
    X, Y = net.random_data(m, seed=seed + 1)
    return net, params, X, Y


def run_batched(net, params, X, Y, indices=None, **options):
    indices = np.arange(net.n_params) if indices is None else np.asarray(indices, dtype=np.int64)
    return batched_engine(net, params, X, Y, indices, EPS, **options)


def run_reference(net, params, X, Y, indices=None):
    layout, theta = Layout.from_params(params)
    objective = MLPObjective(net, layout, X, Y)
    objective.base(theta)
    indices = np.arange(net.n_params) if indices is None else indices
    return reference_engine(objective, theta, indices, EPS)


def explicit_costs(net, params, X, Y, i):
    """J(theta +- eps e_i) by full forward passes, theta_i set to fl(theta_i +- eps)."""
    layout, theta = Layout.from_params(params)
    out = []
    for sign in (+1, -1):
        work = theta.copy()
        work[i] = theta[i] + sign * EPS
        out.append(net.cost(layout.unflatten(work), X, Y))
    return out


def sample_per_group(net, rng, per_group=3):
    starts = np.cumsum([0] + [int(np.prod(s)) for s in net.shapes.values()])
    return np.concatenate([rng.choice(np.arange(lo, hi), size=min(per_group, hi - lo), replace=False)
                           for lo, hi in zip(starts[:-1], starts[1:])])


CASES = [(h, o, l2, depth) for n, (h, o) in enumerate((h, o) for h in HIDDEN for o in OUTPUTS)
         for l2, depth in [(0.0, 1 + n % 4), (0.3, 1 + (n + 2) % 4)]]


@pytest.mark.parametrize(("hidden", "output", "l2", "depth"), CASES)
def test_costs_equal_full_forward_passes(hidden, output, l2, depth):
    net, params, X, Y = problem(DEPTHS[depth], hidden, output, l2)
    indices = sample_per_group(net, np.random.default_rng(depth))
    comp = run_batched(net, params, X, Y, indices)
    ref = np.array([explicit_costs(net, params, X, Y, int(i)) for i in indices])
    J = net.cost(params, X, Y)
    assert_allclose(comp.cost_plus, ref[:, 0], rtol=1e-13, atol=4 * np.spacing(J))
    assert_allclose(comp.cost_minus, ref[:, 1], rtol=1e-13, atol=4 * np.spacing(J))
    assert comp.n_evaluations == 2 * indices.size


@pytest.mark.parametrize(("hidden", "output", "l2", "depth"), CASES)
def test_numeric_and_kinks_match_reference(hidden, output, l2, depth):
    net, params, X, Y = problem(DEPTHS[depth], hidden, output, l2)
    comp = run_batched(net, params, X, Y)
    ref = run_reference(net, params, X, Y)
    J = net.cost(params, X, Y)
    assert_allclose(comp.numeric, ref.numeric, rtol=1e-9, atol=COST_ULPS * np.spacing(J) / EPS)
    assert_array_equal(comp.kinks, ref.kinks)
    assert_array_equal(comp.indices, ref.indices)


def near_kink(hidden, layer):
    """A relu-like net where unit 0 of hidden ``layer`` sits 3e-8 above its kink for example 0."""
    net, params, X, Y = problem([5, 4, 6, 3], hidden, "softmax", 0.1, m=6)
    zs, _ = net.forward(params, X)
    params[f"b{layer}"][0, 0] -= zs[layer - 1][0, 0] - 3e-8
    return net, params, X, Y


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
@pytest.mark.parametrize("layer", [1, 2])
def test_kinks_match_reference(hidden, layer):
    net, params, X, Y = near_kink(hidden, layer)
    comp = run_batched(net, params, X, Y)
    ref = run_reference(net, params, X, Y)
    assert ref.kinks.any()
    assert_array_equal(comp.kinks, ref.kinks)
    J = net.cost(params, X, Y)
    assert_allclose(comp.numeric, ref.numeric, rtol=1e-9, atol=COST_ULPS * np.spacing(J) / EPS)
    grads = net.gradient(params, X, Y)
    by_batched = net.check(params, grads, X, Y, engine="batched")
    by_reference = net.check(params, grads, X, Y, engine="reference")
    assert by_batched.verdict == by_reference.verdict
    assert [e.flat_index for e in by_batched.kinks] == [e.flat_index for e in by_reference.kinks]


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bugs_fail_in_their_groups(hidden, bug):
    net, params, X, Y = problem([6, 5, 4, 3], hidden, "softmax", 0.1, m=8)
    grads = buggy_gradient(net, bug, params, X, Y)
    report = net.check(params, grads, X, Y, engine="batched")
    planted = BUGS[bug]
    assert set(planted.origin(net)) <= set(report.failing_groups) <= set(planted.touches(net))
    reference = net.check(params, grads, X, Y, engine="reference")
    assert report.failing_groups == reference.failing_groups
    assert report.verdict == reference.verdict


@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_independent_of_threads_and_chunking(hidden):
    net, params, X, Y = problem([12, 9, 7, 4], hidden, "softmax", 0.1, m=10)
    base = run_batched(net, params, X, Y, n_threads=2)
    for options in ({"n_threads": 1}, {"max_memory": 1}, {"max_memory": 4000, "n_threads": 1}):
        other = run_batched(net, params, X, Y, **options)
        for field in ("cost_plus", "cost_minus", "numeric", "kinks"):
            assert_array_equal(getattr(other, field), getattr(base, field))


def test_thread_count_is_restored():
    import numba

    before = numba.get_num_threads()
    net, params, X, Y = problem([5, 4, 3], "relu", "softmax", 0.1)
    run_batched(net, params, X, Y, n_threads=1)
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("hidden", ["relu", "sigmoid"])
def test_subset_matches_full_run(hidden):
    net, params, X, Y = problem([8, 6, 5, 3], hidden, "sigmoid", 0.2, m=9)
    full = run_batched(net, params, X, Y)
    subset = np.random.default_rng(5).permutation(net.n_params)[: net.n_params // 3]
    part = run_batched(net, params, X, Y, subset)
    assert_array_equal(part.indices, subset)
    for field in ("cost_plus", "cost_minus", "numeric", "kinks"):
        assert_array_equal(getattr(part, field), getattr(full, field)[subset])


@pytest.mark.parametrize("name", ["S", "M"])
def test_correct_gradient_of_benchmark_networks_passes(name):
    net, params, X, Y = network(name)
    report = net.check(params, net.gradient(params, X, Y), X, Y, engine="batched")
    assert report.passed and report.verdict == "pass"
    assert report.n_checked == net.n_params


def test_noise_is_below_the_reference():
    net, params, X, Y = problem([10, 8, 6, 4], "tanh", "softmax", 0.1, m=12)
    grads = Layout.from_params(params)[0].resolve_grads(net.gradient(params, X, Y), params)
    comp = run_batched(net, params, X, Y)
    ref = run_reference(net, params, X, Y)
    assert fc.relative_difference(comp.numeric, grads) < fc.relative_difference(ref.numeric, grads)


@pytest.mark.parametrize(("fast", "exact"), [(kernels.expm1_, math.expm1), (kernels.log1p_, math.log1p),
                                             (kernels.tanh_, math.tanh)])
def test_series_match_the_library_to_an_ulp(fast, exact):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 2000) * np.exp(rng.uniform(np.log(1e-12), np.log(kernels.SMALL), 2000))
    x = np.append(x, [0.0, kernels.SMALL * 0.999, -kernels.SMALL * 0.999, 0.3, -0.7])
    for value in x:
        assert abs(fast(value) - exact(value)) <= np.spacing(abs(exact(value)))


@pytest.mark.parametrize("hidden", ["tanh", "sigmoid"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("eps", [1e-3, 0.7])
def test_large_steps_equal_full_forward_passes(hidden, output, depth, eps):
    """Steps large enough for the library branches (activations, losses, two-sided formula)."""
    net, params, X, Y = problem(DEPTHS[depth], hidden, output, 0.2)
    params = {name: 4.0 * value for name, value in params.items()}
    indices = sample_per_group(net, np.random.default_rng(depth), per_group=4)
    comp = batched_engine(net, params, X, Y, indices, eps)
    layout, theta = Layout.from_params(params)
    for p, i in enumerate(indices):
        for sign, got in ((+1, comp.cost_plus[p]), (-1, comp.cost_minus[p])):
            work = theta.copy()
            work[i] = theta[i] + sign * eps
            ref = net.cost(layout.unflatten(work), X, Y)
            assert got == pytest.approx(ref, rel=1e-12, abs=8 * np.spacing(ref))
