"""Costs that misbehave only at perturbed points: a value that changes now and then, a write into
the parameters only when perturbed. The checks at theta cannot see them, and a correct gradient
would be reported FAILED; each is refused, saying which it was and where."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

RNG = np.random.default_rng(11)
THETA = RNG.standard_normal(24)
A = RNG.standard_normal(24)


def _cost(t):
    return float(np.sum(np.sin(t) * A) + 0.5 * t @ t)


GRAD = np.cos(THETA) * A + THETA


# --------------------------------------------------------------------- module level: they pickle for workers
class Flaky:
    """Every ``period``-th call is off by 1e-9 relative: as a cache, a threaded sum or a timer might be."""

    def __init__(self, period=4):
        self.period, self.calls = period, 0

    def __call__(self, t):
        self.calls += 1
        value = _cost(t)
        return value * (1 + 1e-9) if self.calls % self.period == 0 else value


class WritesWhenPerturbed:
    """Writes into theta[7] when theta[3] is perturbed (+eps): through ``.base``, or after making that writable."""

    def __init__(self, how):
        self.how = how

    def __call__(self, t):
        if t[3] > THETA[3]:
            if self.how == "base":
                t.base[7] += 1e-3
            elif self.how == "flags":
                t.base.flags.writeable = True
                t.base[7] += 1e-3
            else:  # a swap keeps the sum (and any sum-like checksum) unchanged
                t.base.flags.writeable = True
                t.base[[7, 8]] = t.base[[8, 7]]
        return _cost(t)


def _batch(thetas):
    return np.sum(np.sin(thetas) * A, axis=1) + 0.5 * np.einsum("ij,ij->i", thetas, thetas)


def writing_batch(thetas):
    if len(thetas) > 1:  # a stack of perturbed thetas (the check at theta passes a single row)
        thetas.base.flags.writeable = True
        thetas.base[:, 7] += 1e-3
    return _batch(thetas)


def drifting_batch(thetas):
    out = _batch(thetas)
    out[1::2] *= 1 + 1e-9  # the rows of theta - eps: what cost gives at theta, but not there
    return out


# --------------------------------------------------------------------- nondeterminism
#: The reference loop in this process, the black-box engine's workers, the directions loop.
IN_PROCESS, WORKERS = {"engine": "reference"}, {"n_jobs": 2, "chunk_size": 6}


@pytest.mark.parametrize("kw", [IN_PROCESS, WORKERS, {"mode": "directions", "n_directions": 4, **IN_PROCESS}])
def test_a_cost_that_changes_now_and_then_is_refused_not_failed(kw):
    with pytest.raises(fc.NondeterministicCostError, match=r"at (theta\[\d+\]|direction \d+ of \S+) .?[+-].?eps"
                                                           r".* and then .* when evaluated there again"):
        fc.check(Flaky(), THETA, GRAD, **kw)


def test_a_deterministic_cost_is_never_refused():
    for kw in (IN_PROCESS, WORKERS, {"batch_cost": _batch}, {"mode": "directions", **IN_PROCESS}):
        assert fc.check(_cost, THETA, GRAD, **kw).verdict == "pass"


def test_a_batch_cost_that_drifts_at_perturbed_points_is_refused():
    with pytest.raises(fc.CostError, match=r"`batch_cost` gives .* but `cost` gives .* at theta\[\d+\] - eps"):
        fc.check(_cost, THETA, GRAD, batch_cost=drifting_batch)


# --------------------------------------------------------------------- mutation
@pytest.mark.parametrize("how", ["base", "flags", "swap"])
@pytest.mark.parametrize("kw", [IN_PROCESS, WORKERS])
def test_a_write_only_when_perturbed_is_refused_naming_the_coordinate(how, kw):
    with pytest.raises(fc.MutationError, match=r"theta\[3\] \+ eps"):
        fc.check(WritesWhenPerturbed(how), THETA, GRAD, **kw)


def test_a_write_during_the_directions_loop_is_refused():
    with pytest.raises(fc.MutationError, match=r"while evaluating direction \d+ of \(all\) \([+-]eps\)"):
        fc.check(WritesWhenPerturbed("flags"), THETA, GRAD, mode="directions", n_directions=2, **IN_PROCESS)


def test_a_batch_cost_writing_into_its_stack_is_refused():
    with pytest.raises(fc.MutationError, match=r"`batch_cost` modified the stack .*theta\[0\] \+ eps"):
        fc.check(_cost, THETA, GRAD, batch_cost=writing_batch)
