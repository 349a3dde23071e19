"""Directions: exact symmetric steps, the paired (+s, -s) change propagation against the
general one and against full forward passes, shared draws, chunking independence."""

from fractions import Fraction

import numpy as np
import pytest
from full_passes import full_change as _full_change

from fastcheck.core.directions import GAUSSIAN, GLOBAL, KINDS, SIGNS, direction_steps, draw_directions
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp.directions import mlp_evaluate_directions
from fastcheck.engines.mlp.linear_map import CERTIFIED_FRACTION, _linear_map, linear_map_applies, linear_map_changes
from fastcheck.engines.mlp.stacked import BaseState, cost_changes, symmetric_cost_changes
from fastcheck.mlp.functions import HIDDEN, OUTPUTS
from fastcheck.mlp.model import MLP

EPS = 1e-7


def _exact(a: float, b: float) -> bool:
    """Whether a + b is exactly representable (checked in rational arithmetic)."""
    return Fraction(float(np.float64(a) + np.float64(b))) == Fraction(a) + Fraction(b)


def _ideal(d, eps):
    """The step before rounding: eps v for a Gaussian direction, h times the signs for a sign direction."""
    return d.step(eps) * d.draw() if d.kind == SIGNS else eps * d.vector()


@pytest.mark.parametrize("kind", KINDS)
def test_symmetric_steps_are_exact_or_the_direction_takes_plain_steps(kind):
    tricky = [0.0, -0.0, 1e-300, -1e-20, 3e-11, 1.0, 2.0, -0.5, np.nextafter(1.0, 0.0), np.nextafter(0.25, 1.0),
              0.125 - 2e-17, 4.0 - 1e-15]
    params = {f"t{i}": np.array([t]) for i, t in enumerate(tricky)}  # one group each: the step is +-eps
    params["normal"] = np.random.default_rng(0).standard_normal(40) * 0.05
    layout, theta = Layout.from_params(params)
    directions = draw_directions(layout, 3, seed=1, overall=False, kind=kind)
    steps = [direction_steps(theta, np.zeros_like(theta), [d], 1e-2) for d in directions]  # a big step
    symmetric = [bool(st.symmetric[0]) for st in steps]
    assert any(symmetric) and not all(symmetric)
    for d, st in zip(directions, steps):
        base = theta[d.start:d.stop]
        # a Gaussian step is the rounded one, kept exactly when exact both ways; a sign step is h a b^T, kept
        # where a sufficient rule vouches for it (never where a sum would round)
        wanted = _ideal(d, 1e-2) if kind == SIGNS else st.plus[0]
        exact = all(_exact(t, s) and _exact(t, -s) for t, s in zip(base, wanted))
        assert (exact == st.symmetric[0]) if kind == GAUSSIAN else (exact or not st.symmetric[0]), d
        if st.symmetric[0]:
            assert np.array_equal(st.minus[0], st.plus[0])
        else:  # the plain steps of the rounded perturbed values, fl(theta + eps v) and fl(theta - eps v)
            assert np.array_equal((base + st.plus[0]) - base, st.plus[0])
            assert np.array_equal(base - (base - st.minus[0]), st.minus[0])
            np.testing.assert_allclose(st.plus[0], _ideal(d, 1e-2), rtol=1e-6, atol=1e-20)
            np.testing.assert_allclose(st.minus[0], _ideal(d, 1e-2), rtol=1e-6, atol=1e-20)
    # one direction per one-entry group: 1e-300 has no exact symmetric step; 0.0 has one
    assert not symmetric[2] and symmetric[0]


def test_steps_follow_the_rounded_perturbation_and_u_is_their_mean():
    params = {"W": np.random.default_rng(2).standard_normal((6, 5))}
    layout, theta = Layout.from_params(params)
    grad = np.random.default_rng(3).standard_normal(theta.size)
    (d,) = draw_directions(layout, 1, seed=4, overall=False, kind=GAUSSIAN)
    steps = direction_steps(theta, grad, [d], EPS)
    assert steps.symmetric[0]
    v = d.vector()
    np.testing.assert_allclose(steps.plus[0], EPS * v, rtol=1e-7)  # the rounded step, near eps v
    assert steps.analytic[0] == (steps.plus[0] @ grad + steps.minus[0] @ grad) / (2 * EPS)


def test_a_sign_step_is_h_times_a_rank_one_pattern_of_signs():
    params = {"W": np.random.default_rng(2).standard_normal((6, 5)), "b": np.random.default_rng(5).standard_normal(4)}
    layout, theta = Layout.from_params(params)
    grad = np.random.default_rng(3).standard_normal(theta.size)
    for d in draw_directions(layout, 3, seed=4):
        steps = direction_steps(theta, grad, [d], EPS)
        assert steps.symmetric[0]
        h = d.step(EPS)
        assert np.array_equal(steps.plus[0], h * d.draw())
        assert (np.abs(steps.plus[0]) >= h).all() and (np.abs(steps.plus[0]) < 4 * h).all()
        assert abs(np.linalg.norm(steps.plus[0]) / EPS - 1) <= 1 / 16
        for start, stop, a, b in d.factors():  # each group's part is the outer product of two sign vectors
            assert np.array_equal(d.draw()[start - d.start:stop - d.start], np.outer(a, b).ravel())
            assert (a.size, b.size) == ((6, 5) if stop - start == 30 else (4, 1))
        base = theta[d.start:d.stop]
        assert np.array_equal((base + steps.plus[0]) - base, steps.plus[0])  # exact both ways
        assert np.array_equal(base - (base - steps.plus[0]), steps.plus[0])
        np.testing.assert_allclose(steps.analytic[0], steps.plus[0] @ grad[d.start:d.stop] / EPS, rtol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_global_directions_share_the_groups_draws(kind):
    net = MLP([5, 4, 3])
    layout, _ = Layout.from_params(net.init(seed=0))
    directions = draw_directions(layout, 3, seed=7, kind=kind)
    by_key = {(d.group, d.number): d for d in directions}
    for j in range(3):
        whole = by_key[GLOBAL, j].draw()
        for g in layout.groups:
            assert np.array_equal(whole[g.start:g.stop], by_key[g.name, j].draw())
    assert not np.array_equal(by_key["W1", 0].draw(), by_key["W1", 1].draw())


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("hidden", sorted(HIDDEN))
def test_paired_changes_equal_the_general_ones_and_full_passes(hidden, output):
    net = MLP([7, 6, 5, 3], hidden=hidden, output=output, l2=0.3)
    params = net.init(seed=1)
    X, Y = net.random_data(9, seed=2)
    base = BaseState(net, params, X, Y)
    rng = np.random.default_rng(3)
    for perturbed in (["W1"], ["b1"], ["W2", "b2"], ["W3"], ["b3"], list(params)):
        steps = {k: rng.standard_normal((4, *params[k].shape)) * 1e-3 for k in perturbed}
        plus, minus, crossed = symmetric_cost_changes(base, steps)
        change, flips = cost_changes(base, {k: np.concatenate([s, -s]) for k, s in steps.items()})
        np.testing.assert_allclose(plus, change[:4], rtol=1e-11, atol=1e-18)
        np.testing.assert_allclose(minus, change[4:], rtol=1e-11, atol=1e-18)
        assert np.array_equal(crossed, flips[:4] | flips[4:])
        for j in range(4):  # and each equals a full forward pass on the perturbed parameters
            one = {k: s[j] for k, s in steps.items()}
            np.testing.assert_allclose(plus[j], _full_change(net, params, X, Y, one, +1), rtol=1e-6, atol=1e-13)
            np.testing.assert_allclose(minus[j], _full_change(net, params, X, Y, one, -1), rtol=1e-6, atol=1e-13)


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
def test_a_pair_that_crosses_a_kink_is_recomputed(hidden):
    """A unit sits just above 0: the -s step switches it off, which breaks the pair's symmetry."""
    net = MLP([4, 3, 2], hidden=hidden, output="softmax", l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(5, seed=1)
    z = params["W1"] @ X + params["b1"]
    params["b1"][0, 0] -= z[0, 2] - 1e-9  # unit 0 of example 2 at +1e-9
    base = BaseState(net, params, X, Y)
    steps = {"b1": np.zeros((3, 3, 1))}
    steps["b1"][0, 0, 0] = 1e-6  # crosses when subtracted
    steps["b1"][1, 1, 0] = 1e-6  # does not cross
    steps["b1"][2, 0, 0] = -1e-6  # crosses when added
    plus, minus, crossed = symmetric_cost_changes(base, steps)
    assert crossed.tolist() == [True, False, True]
    for j in range(3):
        one = {"b1": steps["b1"][j]}
        np.testing.assert_allclose(plus[j], _full_change(net, params, X, Y, one, +1), rtol=1e-7)
        np.testing.assert_allclose(minus[j], _full_change(net, params, X, Y, one, -1), rtol=1e-7)
    # the odd part alone would be wrong for the crossing pairs: -(plus change) is not the minus change
    assert abs(plus[0] + minus[0]) > 1e3 * abs(plus[1] + minus[1])


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
def test_the_linear_map_path_is_certified_or_checked_exactly_and_equals_full_passes(hidden):
    """Layer 2 has a unit of example 2 at +1e-9 (layer 1 far from its kinks): small steps are
    certified, larger ones are not and have that example's product tested exactly, which
    finds a change of state in some pairs (recomputed by the general path) and not in others."""
    net = MLP([7, 6, 5, 3], hidden=hidden, output="softmax", l2=0.3)
    params = net.init(seed=1)
    X, Y = net.random_data(9, seed=2)
    params["b1"] += 5.0
    z2 = params["W2"] @ np.maximum(params["W1"] @ X + params["b1"], 0.0) + params["b2"]
    params["b2"][0, 0] -= z2[0, 2] - 1e-9
    base = BaseState(net, params, X, Y)
    assert linear_map_applies(base, ["W1", "b1"], 20) and not linear_map_applies(base, ["W1", "W2"], 20)
    assert not linear_map_applies(base, ["b1"], 2)  # too few to be worth building the maps
    rng = np.random.default_rng(3)
    seen = set()
    for scale in (1e-11, 1e-9, 1e-8, 1e-2):
        steps = {"W1": rng.standard_normal((20, 6, 7)) * scale, "b1": rng.standard_normal((20, 6, 1)) * scale}
        odd = np.einsum("krc,ci->ikr", steps["W1"], X) + steps["b1"][:, :, 0]
        doubt = (np.sqrt(np.einsum("ikr,ikr->ik", odd, odd)) * _linear_map(base, 1).bound[:, None]
                 > CERTIFIED_FRACTION).any(axis=0)
        crossed = np.zeros(20, dtype=bool)
        linear_map_changes(base, steps, crossed)
        change, flips = cost_changes(base, {k: np.concatenate([s, -s]) for k, s in steps.items()})
        assert np.array_equal(crossed, flips[:20] | flips[20:])  # the certificate never hides a change of state
        seen |= {(bool(d), bool(c)) for d, c in zip(doubt, crossed)}
        plus, minus, _ = symmetric_cost_changes(base, steps)
        np.testing.assert_allclose(plus, change[:20], rtol=1e-11, atol=1e-24)
        np.testing.assert_allclose(minus, change[20:], rtol=1e-11, atol=1e-24)
        for j in range(0, 20, 4):
            one = {k: s[j] for k, s in steps.items()}
            np.testing.assert_allclose(plus[j], _full_change(net, params, X, Y, one, +1), rtol=1e-6, atol=1e-13)
            np.testing.assert_allclose(minus[j], _full_change(net, params, X, Y, one, -1), rtol=1e-6, atol=1e-13)
    assert seen == {(False, False), (True, False), (True, True)}  # certified; checked, no change; changed


def _evaluate(net, params, X, Y, directions, **kw):
    layout, theta = Layout.from_params(params)
    analytic = layout.flatten_grads(net.gradient(params, X, Y))
    return mlp_evaluate_directions(BaseState(net, params, X, Y), layout, theta, analytic, directions, EPS, **kw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_results_do_not_depend_on_chunks_or_on_which_directions_come_along(hidden, kind):
    net = MLP([12, 8, 6, 4], hidden=hidden, output="softmax", l2=0.1)
    params = net.init(seed=3)
    X, Y = net.random_data(10, seed=4)
    layout, _ = Layout.from_params(params)
    directions = draw_directions(layout, 5, seed=9, kind=kind)
    full = _evaluate(net, params, X, Y, directions)
    tiny = _evaluate(net, params, X, Y, directions, max_memory=1)  # one direction per chunk
    alone = [_evaluate(net, params, X, Y, [d]) for d in directions]
    group_only = _evaluate(net, params, X, Y, [d for d in directions if d.group != GLOBAL])
    # the same directions and analytic sides, bit for bit; numeric sides to rounding (stacked
    # matrix products of different heights may round differently)
    for other in (tiny, group_only, *alone):
        at = [directions.index(d) for d in other.directions]
        assert np.array_equal(other.analytic, full.analytic[at])
        np.testing.assert_allclose(other.numeric, full.numeric[at], rtol=1e-12, atol=1e-15)
    rel = np.abs(full.numeric - full.analytic) / (np.abs(full.numeric) + np.abs(full.analytic))
    assert rel.max() < 1e-7  # a correct gradient


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_parameters_take_plain_steps_and_still_check(kind):
    net = MLP([6, 5, 3], hidden="tanh", output="softmax", l2=0.1)
    params = net.init(seed=0)
    params["b1"] = np.full((5, 1), 1e-20)  # far smaller than a step: no exact symmetric step exists
    params["W2"][1, 2] = 3e-25  # and one entry of a weight matrix: its sign directions take dense plain steps
    X, Y = net.random_data(8, seed=1)
    layout, theta = Layout.from_params(params)
    drawn = draw_directions(layout, 4, seed=0, overall=False, kind=kind)
    for name in ("b1", "W2"):
        tiny = [d for d in drawn if d.group == name]
        assert not direction_steps(theta, np.zeros_like(theta), tiny, EPS).symmetric.any()
    options = {"mode": "directions", "n_directions": 4, "distribution": kind}
    report = net.check(params, net.gradient(params, X, Y), X, Y, **options)
    assert report.passed and report.group("b1").verdict == "pass" and report.group("W2").verdict == "pass"
    for name, factor in (("b1", 1.1), ("W2", 1.01)):
        wrong = net.gradient(params, X, Y)
        wrong[f"d{name}"] = wrong[f"d{name}"] * factor
        assert net.check(params, wrong, X, Y, **options).failing_groups == [name]


def test_the_numpy_steps_are_the_kernel_steps_bit_for_bit():
    from fastcheck.core.directions import _symmetric_steps_numpy
    from fastcheck.core.steps_kernel import symmetric_steps

    rng = np.random.default_rng(11)
    base = np.concatenate([rng.standard_normal(300) * 0.05, [0.0, -0.0, 1e-300, 1e-20, 1.0, 2.0,
                                                              np.nextafter(1.0, 0.0), 0.5, -4.0]])
    raw = rng.standard_normal((6, base.size))
    scales = np.array([1e-7, 1e-2, 0.3, 1e-12, 1e-7, 5e-3]) / np.sqrt(np.einsum("ij,ij->i", raw, raw))
    out_k, out_n = raw.copy(), raw.copy()
    count_k, count_n = np.empty(6, dtype=np.int64), np.empty(6, dtype=np.int64)
    symmetric_steps(base, out_k, scales, out_k, count_k)
    _symmetric_steps_numpy(base, out_n, scales, count_n)
    assert np.array_equal(out_k, out_n) and np.array_equal(count_k, count_n)
    assert (count_k > 0).any()  # the tiny entries make some directions inexact


@pytest.mark.parametrize("kind", KINDS)
def test_directions_on_a_mid_sized_network_equal_full_evaluations(kind):
    """Network M: Gaussian draws by the numba kernel, sign steps factored, W1 and b1 through the linear maps,
    the directions over all of theta as odd and even parts; each against the reference engine's full cost
    evaluations."""
    from fastcheck.apps.networks import network

    net, params, X, Y = network("M")
    grads = net.gradient(params, X, Y)
    options = {"mode": "directions", "n_directions": 10, "seed": 3, "escalate": False, "distribution": kind}
    fast = net.check(params, grads, X, Y, **options)
    slow = net.check(params, grads, X, Y, engine="reference", **options)
    noise = 50 * np.spacing(net.cost(params, X, Y)) / EPS  # the reference's rounding, of order ulp(J) / eps
    assert len(fast.directions) == 70
    for f, s in zip(fast.directions, slow.directions):
        assert (f.group, f.number, f.analytic) == (s.group, s.number, s.analytic)
        assert abs(f.numeric - s.numeric) < noise
    assert fast.passed and fast.difference < 1e-9
