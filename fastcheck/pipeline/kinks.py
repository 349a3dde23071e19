"""Kinks at theta, decided from the values alone, the same way for every engine: :func:`with_kinks_at_theta`.

An entry is at a kink when the cost's derivative along it jumps at theta, so that the central difference
averages two one-sided derivatives. The reference loop and the black-box engine see only values. They find a
kink the analytic gradient takes one side of by the report's tie test (:func:`fastcheck.report.policy.ties`),
but not one where the analytic gradient is the average of the two sides (``|v|`` at ``v = 0`` with
``sign(0) = 0``), which J(theta) and J(theta +- eps) cannot tell from a stationary point of a smooth cost. A
second pair of evaluations can: at half the step, a kink's one-sided differences stay what they were (each
side of it a smooth piece), a smooth cost's move by a quarter of their jump ``eps J''``. So each entry whose
one-sided differences differ by at least half their size (:data:`JUMP_SHARE`; the gradient changes sign or
triples across the step, which a smooth cost does only at its stationary points) and beyond rounding is
evaluated at half its step, and is a kink when its one-sided differences stay (:data:`KINK_MATCH`).

The traced and batched engines also flag the perturbations that change a branch of the cost (a mask ``x > 0``
that flips, a max whose winner changes: the brute-force definition their own tests hold them to). A branch
that changes is no kink where the cost is smooth across it: a stable softmax's shift ``z - z.max(axis=0)``
(the loss does not depend on the shift), a stable softplus ``max(z, 0) + log1p(exp(-|z|))``. So the report
takes no engine's flags as they are: every entry, flagged or not, is decided by the rule above, and every
engine reports the same kinks at theta. What is left out on the way costs no verdict: an entry flagged for a
crossing away from theta is within rounding, or its error is a tie (the analytic gradient one side's
derivative), or it is wrong on both sides, which the report counts whatever flags it has. A kink flag never
hides a wrong entry: the report drops it from an entry wrong beyond rounding that is no tie.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.finite import step_at
from ..core.results import Evaluations
from ..engines.base import Engine
from ..report.policy import NOISE_FACTOR, one_sided, rounding_scale

__all__ = ["with_kinks_at_theta", "JUMP_SHARE", "KINK_MATCH"]

#: An entry is a candidate when its one-sided differences differ by this share of their sizes' sum ...
JUMP_SHARE = 0.5
#: ... and a kink when, at half the step, each moves by at most this share of the jump (a smooth cost's: 0.25).
KINK_MATCH = 0.1


def with_kinks_at_theta(evaluations: Evaluations | None, engine: Engine, theta: np.ndarray,
                        steps, decided: dict | None = None) -> Evaluations | None:
    """``evaluations`` with the kinks at theta that a second pair at half the step shows, in place of the
    engine's own flags (see the module's note).

    ``steps``: the check's nominal steps (a float, or one per coordinate of theta); ``decided``: flat index ->
    kink or not, the decisions of an earlier report of the same check (filled here). The evaluations spent are
    added to ``n_evaluations``; without ``engine.full`` (or a finite J(theta)) they are returned as they are.
    """
    if evaluations is None or engine.full is None or not np.isfinite(engine.cost) or not len(evaluations.indices):
        return evaluations
    idx = np.asarray(evaluations.indices, dtype=np.int64)
    h = step_at(steps, idx)
    plus, minus = np.asarray(evaluations.cost_plus), np.asarray(evaluations.cost_minus)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, no candidate
        forward, backward = one_sided(theta[idx], engine.cost, plus, minus, h)
        jump = np.abs(forward - backward)
        candidate = ((jump > NOISE_FACTOR * rounding_scale(plus, minus, h))
                     & (jump >= JUMP_SHARE * (np.abs(forward) + np.abs(backward))))
    decided = {} if decided is None else decided  # kept across a check's rebuilds
    kinks = np.zeros(idx.size, dtype=bool)
    if decided and candidate.any():  # examined for an earlier report of this check: its decision, not new evaluations
        again = np.flatnonzero(candidate)
        known = np.array([i in decided for i in idx[again].tolist()], dtype=bool)
        kinks[again[known]] = [decided[i] for i in idx[again[known]].tolist()]
        candidate[again[known]] = False
    if not candidate.any():
        return replace(evaluations, kinks=kinks)
    at = np.flatnonzero(candidate)
    half = 0.5 * (np.asarray(steps) if np.ndim(steps) else steps)
    ev = engine.full(idx[at], half)
    forward_half, backward_half = one_sided(theta[idx[at]], engine.cost, ev.cost_plus, ev.cost_minus,
                                            step_at(half, idx[at]))
    # each side a line to within KINK_MATCH of the jump: a kink between two smooth pieces (a smooth cost's one-sided
    # differences move by a quarter of its jump; a noisy cost's, by anything)
    kinks[at] = (np.maximum(np.abs(forward_half - forward[at]), np.abs(backward_half - backward[at]))
                 <= KINK_MATCH * jump[at])
    decided.update(zip(idx[at].tolist(), kinks[at].tolist()))
    return replace(evaluations, kinks=kinks, n_evaluations=evaluations.n_evaluations + ev.n_evaluations)
