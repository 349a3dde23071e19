"""Sign directions: the streams of signs, the step h, the rank-one steps carried factored through
the built-in network (against dense steps and full forward passes), and the fallback to dense
plain steps where theta +- h would round."""

from fractions import Fraction

import numpy as np
import pytest
from full_passes import full_change as _full_change

from fastcheck.core.directions import GLOBAL, SIGNS, direction_steps, draw_directions, sign_steps
from fastcheck.core.layout import Layout
from fastcheck.core.signs import (
    MAGNITUDES,
    STEP_BITS,
    exactly_shifted,
    sign_entries,
    sign_factors,
    sign_step,
    step_binade,
)
from fastcheck.engines.mlp.directions import _factored_views, _group_views
from fastcheck.engines.mlp.rankone import RankOne, both_signs, l2_parts
from fastcheck.engines.mlp.stacked import BaseState, symmetric_cost_changes
from fastcheck.mlp.functions import HIDDEN, OUTPUTS
from fastcheck.mlp.model import MLP

EPS = 1e-7


def test_a_stream_of_signed_magnitudes_is_balanced_and_each_entry_depends_on_its_index_only():
    s = sign_entries(12345, 200_000)
    assert set(np.unique(np.abs(s)).tolist()) == set(MAGNITUDES.tolist())
    assert abs(np.mean(np.sign(s))) < 5 / np.sqrt(s.size)
    counts = np.unique(np.abs(s), return_counts=True)[1]
    assert counts.min() > 0.9 * s.size / 16 and counts.max() < 1.1 * s.size / 16  # the magnitudes uniform
    assert abs(np.mean(s[1:] * s[:-1])) < 5 * 2.25 / np.sqrt(s.size)  # neighbours uncorrelated
    assert np.array_equal(sign_entries(12345, 1000), s[:1000])
    a, b = sign_factors(12345, 30, 7)
    assert np.array_equal(np.concatenate([a, b]), s[:37])
    assert not np.array_equal(sign_entries(12346, 1000), s[:1000])


@pytest.mark.parametrize("n", [1, 2, 7, 100, 401_408, 10**9])
def test_the_step_has_few_bits_and_a_norm_near_eps_and_shifts_typical_weights_exactly(n):
    a, b = sign_factors(n, min(n, 1000), 1)
    norm = float(np.linalg.norm(a)) * np.sqrt(n / a.size)
    h = sign_step(EPS, norm)
    mantissa, _ = np.frexp(h)
    assert (mantissa * 2 ** STEP_BITS) == int(mantissa * 2 ** STEP_BITS)  # STEP_BITS significant bits
    assert abs(h * norm / EPS - 1) <= 1 / 16
    weights = np.random.default_rng(n % 97).standard_normal(10_000) * 0.05
    assert exactly_shifted(weights, step_binade(h))
    for m in (MAGNITUDES[0] ** 2, MAGNITUDES[7] * MAGNITUDES[11], MAGNITUDES[-1] ** 2):  # typical weights: exact
        s = np.full_like(weights, h * m)
        assert np.array_equal((weights + s) - weights, s) and np.array_equal(weights - (weights - s), s)


def test_exactly_shifted_is_never_wrong_when_it_says_exact():
    """Its rule is sufficient: on values of every kind, each sum it vouches for is exact in rational arithmetic."""
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.standard_normal(200) * 0.05, rng.standard_normal(50) * 300, [0.0, -0.0, 1e-30,
                             3e-12, 1.0, 2.0, np.nextafter(2.0, 0.0), 255.99999999, 511.0, -1024.0]])
    for h in (sign_step(EPS, 633.0), sign_step(EPS, 3.0), sign_step(1e-2, 7.0)):  # steps of STEP_BITS bits
        a, b = sign_factors(7, values.size, 1)
        steps = h * a * b[0]
        for t, s in zip(values, steps):
            if exactly_shifted(np.array([t]), step_binade(h)):
                assert Fraction(float(t + s)) == Fraction(float(t)) + Fraction(float(s))
                assert Fraction(float(t - s)) == Fraction(float(t)) - Fraction(float(s))
    h = sign_step(EPS, 633.0)
    assert not exactly_shifted(np.array([1e-30]), step_binade(h))  # far below the step
    assert not exactly_shifted(np.array([5e3]), step_binade(h))  # too large for the step's finest bit
    assert not exactly_shifted(np.array([np.nextafter(0.0625, 0.0)]), step_binade(h))  # its last bit at the top
    assert exactly_shifted(np.array([0.0625 - 2 ** -40, 0.0, -0.0]), step_binade(h))


def test_rank_one_steps_act_as_their_dense_matrices():
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((5, 6)) * 1e-3, rng.choice([-1.0, 1.0], (5, 4))
    step, dense = RankOne(left, right), left[:, :, None] * right[:, None, :]
    A, stacked, W = rng.standard_normal((4, 9)), rng.standard_normal((5, 4, 9)), rng.standard_normal((6, 4))
    assert step.shape == dense.shape
    np.testing.assert_allclose(step @ A, dense @ A, rtol=1e-13, atol=1e-20)
    np.testing.assert_allclose(step @ stacked, dense @ stacked, rtol=1e-13, atol=1e-20)
    np.testing.assert_allclose(step.inputs_times(A), np.matmul(A.T, dense.reshape(-1, 4).T).reshape(9, 5, 6),
                               rtol=1e-13, atol=1e-20)
    np.testing.assert_array_equal((-step[[1, 3]]) @ A, -(step[[1, 3]] @ A))
    np.testing.assert_allclose(both_signs(step) @ A, both_signs(dense) @ A, rtol=1e-13, atol=1e-20)
    for got, want in zip(l2_parts(step, W), l2_parts(dense, W)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-24)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("hidden", sorted(HIDDEN))
def test_factored_sign_steps_equal_dense_steps_and_full_forward_passes(hidden, output):
    net = MLP([7, 6, 5, 3], hidden=hidden, output=output, l2=0.3)
    params = net.init(seed=1)
    X, Y = net.random_data(9, seed=2)
    layout, theta = Layout.from_params(params)
    grad = layout.flatten_grads(net.gradient(params, X, Y))
    base = BaseState(net, params, X, Y)
    directions = draw_directions(layout, 6, seed=4)
    scale = 32 * np.spacing(net.cost(params, X, Y))  # a few roundings of a full evaluation of J
    for group in {d.group for d in directions}:
        chosen = [d for d in directions if d.group == group]
        span = (chosen[0].start, chosen[0].stop)
        factored = sign_steps(theta, grad, chosen, EPS)
        views = _factored_views(factored, layout)
        assert len(views) == (len(layout.groups) if group == GLOBAL else 1)
        assert any(isinstance(v, RankOne) for v in views.values()) == any(
            g.shape[1] > 1 for g in layout.groups if g.name in views)
        dense = direction_steps(theta, grad, chosen, EPS)
        assert dense.symmetric.all()
        assert np.array_equal(dense.analytic, factored.analytic)  # u . grad: one rule, bit for bit
        groups = [g for g in layout.groups if g.name in views]
        plus, minus, crossed = symmetric_cost_changes(base, views)
        d_plus, d_minus, d_crossed = symmetric_cost_changes(base, _group_views(dense.plus, slice(None), groups,
                                                                               span[0]))
        np.testing.assert_allclose(plus, d_plus, rtol=1e-11, atol=1e-18)
        np.testing.assert_allclose(minus, d_minus, rtol=1e-11, atol=1e-18)
        assert np.array_equal(crossed, d_crossed)
        for j in range(len(chosen)):  # each the change of a full forward pass at theta +- S_j
            one = {g.name: dense.plus[j, g.start - span[0]:g.stop - span[0]].reshape(g.shape) for g in groups}
            assert abs(plus[j] - _full_change(net, params, X, Y, one, +1)) <= scale
            assert abs(minus[j] - _full_change(net, params, X, Y, one, -1)) <= scale


def test_a_weight_where_theta_plus_a_step_may_round_sends_its_directions_to_dense_plain_steps():
    net = MLP([6, 5, 3], hidden="relu", output="softmax")
    params = net.init(seed=0)
    params["W1"][2, 3] = 1e-30  # theta + h needs more than 53 bits
    layout, theta = Layout.from_params(params)
    grad = layout.flatten_grads(net.gradient(params, *net.random_data(4, seed=1)))
    w1 = [d for d in draw_directions(layout, 3, seed=0) if d.group == "W1"]
    assert sign_steps(theta, grad, w1, EPS) is None
    steps = direction_steps(theta, grad, w1, EPS)
    assert not steps.symmetric.any() and w1[0].kind == SIGNS
    base = theta[w1[0].start:w1[0].stop]  # the plain rounded steps, exact as taken
    for j, d in enumerate(w1):
        rounded = d.step(EPS) * d.draw()
        assert np.array_equal(steps.plus[j], (base + rounded) - base)
        assert np.array_equal(steps.minus[j], base - (base - rounded))
    w2 = [d for d in draw_directions(layout, 3, seed=0) if d.group == "W2"]
    assert sign_steps(theta, grad, w2, EPS) is not None  # the other groups keep the factored steps
