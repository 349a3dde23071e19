"""What a directions check finds and misses, for both distributions of directions (rank-one signs, Gaussian).

Each claim is one that ``benchmarks/directions_study.py`` measured over many seeds
(docs/directions.md), asserted here on a few seeds with margin: the directions' own
verdicts (``escalate=False``) on network S with bugs, single wrong entries, errors
spread over a group near the bounds, errors a sign pattern can cancel, and correct
gradients.
"""

import numpy as np
import pytest

from fastcheck.apps.bugs import BUGS, buggy_gradient
from fastcheck.apps.networks import network
from fastcheck.core.directions import KINDS, draw_directions
from fastcheck.core.finite import DEFAULT_EPS
from fastcheck.core.layout import Layout


@pytest.fixture(scope="module")
def net_s():
    net, params, X, Y = network("S")
    return net, params, X, Y, net.gradient(params, X, Y)


def _directions(net_s, grads, kind, seed, n=16):
    net, params, X, Y, _ = net_s
    return net.check(params, grads, X, Y, mode="directions", n_directions=n, distribution=kind, seed=seed,
                     escalate=False)


def _planted(grads, name, error):
    bad = {k: v.copy() for k, v in grads.items()}
    bad[f"d{name}"] = bad[f"d{name}"] + error
    return bad


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_correct_gradient_never_warns(kind, hidden):
    net, params, X, Y = network("S", hidden=hidden)
    grads = net.gradient(params, X, Y)
    for seed in range(8):
        report = net.check(params, grads, X, Y, mode="directions", n_directions=16, distribution=kind, seed=seed,
                           escalate=False)
        rows = [*report.groups, report.overall_directions]
        assert {row.verdict for row in rows} == {"pass"}
        assert max(row.difference for row in rows) < 1e-13  # the study's largest: 2e-15


@pytest.mark.parametrize("kind", KINDS)
def test_every_bug_fails_its_origin_groups_and_no_group_it_does_not_touch_warns(net_s, kind):
    net, params, X, Y, _ = net_s
    for name, bug in BUGS.items():
        grads = buggy_gradient(net, name, params, X, Y)
        for seed in range(4):
            report = _directions(net_s, grads, kind, seed)
            assert set(bug.origin(net)) <= set(report.failing_groups), (name, seed)
            assert {g.name for g in report.groups if g.verdict != "pass"} <= set(bug.touches(net)), (name, seed)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "where"), [("W1", (0, 0)), ("W1", (31, 63)), ("b2", (7, 0))])
def test_a_single_wrong_entry_is_flagged(net_s, kind, name, where):
    """Off by 1e-2 of ||G|| (exhaustive 5e-3): fails with 4 directions; off by 1e-3 (5e-4): never passes."""
    *_, grads = net_s
    norm = np.linalg.norm(grads[f"d{name}"])
    for size, n, allowed in ((1e-2, 4, {"fail"}), (1e-3, 16, {"warn", "fail"})):
        error = np.zeros_like(grads[f"d{name}"])
        error[where] = size * norm
        for seed in range(6):
            assert _directions(net_s, _planted(grads, name, error), kind, seed, n).group(name).verdict in allowed


def test_a_sign_direction_sees_a_single_wrong_entry_whole(net_s):
    """Every sign direction of the group moves by the entry's error times h a_i b_j / eps (|a_i b_j| in [1, 4):
    never a small fraction of it); a Gaussian one by v_i, which can be near 0."""
    net, params, X, Y, grads = net_s
    delta = 1e-3
    error = np.zeros_like(grads["dW1"])
    error[5, 9] = delta
    moved = {}
    for kind in KINDS:
        good, bad = (_directions(net_s, g, kind, 3) for g in (grads, _planted(grads, "W1", error)))
        moved[kind] = np.array([b.analytic - a.analytic for a, b in zip(good.directions, bad.directions)
                                if a.group == "W1"])
    layout, _ = Layout.from_params(params)
    drawn = [d for d in draw_directions(layout, 16, seed=3) if d.group == "W1"]
    expected = [d.step(DEFAULT_EPS) * d.factors()[0][2][5] * d.factors()[0][3][9] * delta / DEFAULT_EPS
                for d in drawn]
    np.testing.assert_allclose(moved["signs"], expected, rtol=1e-6)
    lowest = min(d.step(DEFAULT_EPS) for d in drawn) * delta / DEFAULT_EPS
    assert np.abs(moved["signs"]).min() >= lowest * (1 - 1e-9)
    assert np.abs(moved["gaussian"]).min() < 0.5 * np.abs(moved["gaussian"]).max()  # a Gaussian entry varies


def test_two_swapped_entries_are_not_cancelled_by_sign_directions(net_s):
    """Signs alone cancel a swap one time in two per direction (13 of 200 seeds passed with 4 directions); with
    the magnitudes a direction cancels it only when sign and magnitude both agree, one time in 32."""
    *_, grads = net_s
    bad = {k: v.copy() for k, v in grads.items()}
    bad["db3"][[0, 3]] = bad["db3"][[3, 0]]
    for seed in range(200):
        assert _directions(net_s, bad, "signs", seed, n=4).group("b3").verdict == "fail", seed


def _spread_patterns(G, rng):
    return {"gaussian": rng.standard_normal(G.shape), "constant": np.ones(G.shape),
            "one row": np.where(np.arange(G.shape[0])[:, None] == 1, G, 0.0),
            "rank one": np.outer(rng.standard_normal(G.shape[0]), rng.standard_normal(G.shape[1])),
            "transpose": np.ascontiguousarray(G.T).reshape(G.shape) - G}


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_spread_over_a_group_gets_the_band_of_its_exhaustive_difference(net_s, kind):
    """At 10x from a bound the directions agree with the full check (the study: 16 directions come within
    0.37x to 2.5x of the exhaustive difference, whatever the pattern)."""
    net, params, X, Y, grads = net_s
    G = grads["dW1"]
    for pattern, P in _spread_patterns(G, np.random.default_rng(0)).items():
        for target, band in ((1e-7, "pass"), (1e-5, "warn"), (1e-4, "warn"), (1e-2, "fail")):
            bad = _planted(grads, "W1", 2 * target * np.linalg.norm(G) / np.linalg.norm(P) * P)
            exhaustive = net.check(params, bad, X, Y, escalate=False).group("W1")
            assert 0.5 * target < exhaustive.difference < 2 * target
            for seed in range(3):
                assert _directions(net_s, bad, kind, seed).group("W1").verdict == band, (pattern, target, seed)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["W3", "b3"])
def test_errors_a_sign_pattern_can_cancel_fail_with_16_directions(net_s, kind, name):
    """Two entries swapped, two entries off by the same amount, a stray constant: signs alone would see each as
    exactly 0 with probability 1/2 (the constant: (sum a)(sum b)); with the magnitudes far less often, and 16
    directions all miss it with a probability below 2^-16; on these seeds each fails."""
    *_, grads = net_s
    G = grads[f"d{name}"]
    i, j = np.unravel_index(0, G.shape), np.unravel_index(G.size - 1, G.shape)
    swap, pair = np.zeros(G.shape), np.zeros(G.shape)
    swap[i], swap[j] = G[j] - G[i], G[i] - G[j]
    pair[i] = pair[j] = 1.0
    for P in (swap, pair, np.ones(G.shape)):
        bad = _planted(grads, name, 2e-2 * np.linalg.norm(G) / np.linalg.norm(P) * P)
        for seed in range(8):
            assert _directions(net_s, bad, kind, seed).group(name).verdict == "fail"
