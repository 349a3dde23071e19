"""From an engine's evaluations to a :class:`~fastcheck.report.model.Report`: the per-group
rows, the diagnoses and notes, and the verdict policy.

The policy: a group's verdict is its difference's band (:meth:`fastcheck.core.finite.Bounds.verdict`),
except that one entry wrong beyond any rounding fails its group, and a group whose gradient
is zero to rounding passes (the rules of single entries are in :mod:`fastcheck.report.policy`);
the overall verdict is the worst of the groups', the overall difference's and the global
directions' (:func:`fastcheck.core.finite.worst_verdict`).
"""

from __future__ import annotations

import datetime
import functools
import os
import platform

import numpy as np

from ..core.directions import GLOBAL
from ..core.finite import Bounds, relative_difference, relative_errors, step_at, worst_verdict
from ..core.layout import Layout
from .diagnose import diagnose_group
from .layers import LAYERS, neighbour_gradient, where_error_enters
from .model import DirectionRow, GroupRow, Report
from .policy import (
    MEDIAN_FACTOR,
    NOISE_FACTOR,
    ZERO_FACTOR,
    entry_relative_errors,
    one_sided,
    rounding_scale,
    ties,
    wrong_entries,
    zero_to_rounding,
)

__all__ = ["build_report", "NOISE_FACTOR", "MEDIAN_FACTOR"]


@functools.cache
def _version() -> str:
    # the installed distribution's, read once: the report layer does not import the package's face
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastcheck")
    except PackageNotFoundError:
        return "unknown"


def produced() -> dict:
    """What a report records of where it comes from: fastcheck's version, the date, the machine."""
    uname = platform.uname()
    return {"fastcheck": _version(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{uname.node} ({uname.system} {uname.machine}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}, numpy {np.__version__})"}


# the verdict policy in one readable pass; splitting it is on the list (see the closing note)
def build_report(layout: Layout, analytic: np.ndarray, evaluations=None, *, bounds: Bounds, settings: dict,  # noqa: C901, PLR0913
                 elapsed: float, directions=None, escalated=(), theta: np.ndarray | None = None,
                 context: dict | None = None, cost: float | None = None, steps=None) -> Report:
    """Compare ``analytic`` (flat, all of theta) with an engine's central differences.

    ``evaluations`` holds coordinate results (any subset of theta), ``directions``
    directional ones. A group with coordinate results gets a coordinate row, otherwise
    a directions row.

    A coordinate row's verdict is its difference's band, except that

    - a group with an entry wrong beyond rounding fails: an entry whose relative error is
      at least the fail bound (or NaN) and whose absolute error exceeds both
      ``NOISE_FACTOR`` times the rounding scale of its central difference and
      ``MEDIAN_FACTOR`` times its group's median absolute error. Without it one wrong
      entry of a large group (W2[3, 7] off by 10%) would be diluted by the norm into a
      ``warn``;
    - a group whose every entry, analytic and numeric, is within ``ZERO_FACTOR`` rounding
      scales of zero passes, with a note: its gradient is zero to rounding, where the
      relative difference of two roundings is meaningless.

    Kinks are left out of the differences unless ``settings["kinks"] == "include"``; NaN
    entries never are. With ``theta`` and ``cost`` (J(theta)) an entry off by the fail
    bound whose one-sided differences show a tie the analytic gradient takes one side of
    is a kink too, if the engine did not flag it already (:func:`fastcheck.report.policy.ties`).

    With ``theta`` every coordinate group with wrong entries gets a diagnosis of the
    error's shape when one fits (:mod:`fastcheck.report.diagnose`, :mod:`fastcheck.report.layers`);
    ``context`` may give ``m`` and ``l2`` to name a missing 1/m or L2 term.

    ``steps`` are the coordinates' nominal steps (a float, or one per coordinate of theta
    with ``eps="auto"``; default ``settings["eps"]``): the rounding scale of each entry is
    its own step's (and its stencil's, ``settings["stencil"]``).
    """
    include = settings.get("kinks") == "include"
    steps = settings["eps"] if steps is None else steps
    if evaluations is None:
        idx = np.zeros(0, dtype=np.int64)
        numeric = cost_plus = cost_minus = np.zeros(0)
        kinks = np.zeros(0, dtype=bool)
        n_evaluations = 0
    else:
        idx = np.asarray(evaluations.indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        idx = idx[order]
        numeric = np.asarray(evaluations.numeric)[order]
        kinks = np.asarray(evaluations.kinks, dtype=bool)[order]
        cost_plus = np.asarray(evaluations.cost_plus)[order]
        cost_minus = np.asarray(evaluations.cost_minus)[order]
        n_evaluations = evaluations.n_evaluations
    an = analytic[idx]
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, which the rules below treat as wrong
        abs_error = np.abs(numeric - an)
    rel = entry_relative_errors(numeric, an)
    not_finite = np.isnan(rel)
    eps = step_at(steps, idx)  # each entry's nominal step
    rounding = rounding_scale(cost_plus, cost_minus, eps, settings.get("stencil", 2))
    wrong_band = wrong_entries(rel, abs_error, rounding, bounds)
    tie = np.zeros_like(kinks)
    if theta is not None and cost is not None and np.isfinite(cost):
        at = np.flatnonzero(wrong_band & ~not_finite)  # the engine's kinks too: a tie says why it is no bug
        forward, backward = one_sided(theta[idx[at]], cost, cost_plus[at], cost_minus[at], step_at(eps, at))
        tie[at] = ties(an[at], forward, backward, rounding[at])
        # a kink excuses a wrong entry only when the analytic gradient is one side's derivative: a
        # gradient that is wrong on both sides of the kink (a 2x bug in a bias at ReLU's 0) still counts
        kinks = kinks & ~(wrong_band & ~not_finite & ~tie)
    kinks = kinks | tie
    counted = (np.ones_like(kinks) if include else ~kinks) | not_finite
    suspect = counted & wrong_band

    direction_rows, direction_groups = [], np.zeros(0, dtype=object)
    if directions is not None:
        n_evaluations += directions.n_evaluations
        d_abs = np.abs(directions.numeric - directions.analytic)
        d_rel = relative_errors(directions.numeric, directions.analytic)
        direction_rows = [DirectionRow(d.group, d.number, float(a), float(n), float(e), float(r), bool(k))
                          for d, a, n, e, r, k in zip(directions.directions, directions.analytic,
                                                      directions.numeric, d_abs, d_rel, directions.kinks)]
        direction_groups = np.array([d.group for d in directions.directions], dtype=object)
        d_counted = np.ones(len(direction_rows), dtype=bool) if include else ~directions.kinks

    def directions_row(name, shape, size):
        mine = direction_groups == name
        use = mine & d_counted
        d = relative_difference(directions.numeric[use], directions.analytic[use])
        return GroupRow(name, shape, size, int(mine.sum()), int((mine & directions.kinks).sum()), d,
                        bounds.verdict(d), 0, "directions")

    def labels(positions):
        return [layout.describe(int(i)) for i in positions]

    groups, diagnoses, notes, whole = [], {}, {}, {}
    bounds_of = np.searchsorted(idx, [[g.start, g.start + g.size] for g in layout.groups])  # idx is sorted
    for g, (lo, hi) in zip(layout.groups, bounds_of):
        at, checked = slice(lo, hi), int(hi - lo)  # the group's entries, in order
        if not checked and directions is not None:
            groups.append(directions_row(g.name, g.shape, g.size))
            continue
        use = counted[at]
        a, n, r = an[at][use], numeric[at][use], rounding[at][use]
        d = relative_difference(n, a)
        mine_suspect, mine_nan = suspect[at], not_finite[at]
        wrong = int(mine_suspect.sum())
        nan = bool(mine_nan.any())
        verdict = bounds.verdict(d) if checked else "pass"
        if wrong:
            median = np.median(abs_error[at][use & ~mine_nan]) if (use & ~mine_nan).any() else 0.0
            if (mine_suspect & (mine_nan | (abs_error[at] > MEDIAN_FACTOR * median))).any():
                verdict = "fail"
        # zero to rounding: only a question when the band is not pass, or both gradients are exactly equal
        zero = (use.any() and not wrong and (verdict != "pass" or d == 0.0)
                and bool(zero_to_rounding(a, n, r).all()))
        if zero:
            verdict = "pass"
            notes[g.name] = _zero_note(a, n, r)
        partial = checked < g.size and directions is not None and (direction_groups == g.name).any()
        if partial:  # escalated in part after its directions: what they found stands until its entries are named
            cheap = directions_row(g.name, g.shape, g.size)
            if worst_verdict([cheap.verdict, verdict]) != verdict:
                verdict = cheap.verdict
                diagnoses[g.name] = (
                    f"its {cheap.checked} directions differ by {cheap.difference:.2e} ({cheap.verdict}), but the "
                    f"{checked:,} of {g.size:,} entries re-checked one by one are right: the wrong ones are "
                    f"among the {g.size - checked:,} not re-checked (check {g.name} in full, or give the "
                    "escalation more time)")
        n_ties = int(tie[at].sum())
        if n_ties:
            note = _tie_note(lo + np.flatnonzero(tie[at]), idx, an, numeric, theta, cost, cost_plus, cost_minus, eps,
                             include, labels)
            notes[g.name] = f"{notes[g.name]}; {note}" if g.name in notes else note
        groups.append(GroupRow(g.name, g.shape, g.size, checked, int(kinks[at].sum()), d, verdict,
                               wrong, "coordinates", g.name in escalated, n_ties, bool(zero)))
        if checked == g.size and not nan:
            whole[g.name] = (at, bool(use.all()))
        if nan:
            diagnoses[g.name] = _nan_sentence(lo + np.flatnonzero(mine_nan), idx, an, numeric, labels)
        elif verdict != "pass" and wrong and theta is not None and g.name not in diagnoses:
            where = lo + np.flatnonzero(use)
            sentence = diagnose_group(g.shape, theta[idx[where]], an[where], numeric[where], suspect[where],
                                      lambda p, where=where: labels(idx[where[p]]),
                                      is_weight=g.name.startswith("W"), **(context or {}))
            if sentence:
                diagnoses[g.name] = sentence

    if theta is not None:
        _across_groups(groups, diagnoses, whole, an, numeric)

    overall = None
    if directions is not None:
        if (direction_groups == GLOBAL).any():
            overall = directions_row(GLOBAL, (layout.n_params,), layout.n_params)
        difference = relative_difference(directions.numeric[d_counted], directions.analytic[d_counted])
    else:
        difference = relative_difference(numeric[counted], an[counted])
    coordinate_rows = [g for g in groups if g.method == "coordinates" and g.checked]
    all_zero = bool(coordinate_rows) and overall is None and all(g.zero_to_rounding for g in coordinate_rows)
    band = "pass" if all_zero else bounds.verdict(difference)  # nothing but rounding to compare
    verdicts = [g.verdict for g in groups] + [band] + ([overall.verdict] if overall else [])
    settings = {**settings, "warn": bounds.warn, "fail": bounds.fail}
    return Report(difference=difference, verdict=worst_verdict(verdicts), groups=groups,
                  entries=(idx, an, numeric, kinks, rounding, tie), settings=settings, n_params=layout.n_params,
                  n_checked=len(idx), n_evaluations=n_evaluations, elapsed=elapsed, directions=direction_rows,
                  overall_directions=overall, diagnoses=diagnoses, notes=notes, produced=produced(), rel=rel)


def _across_groups(groups, diagnoses, whole, an, numeric) -> None:
    """The diagnoses that compare groups: another group's gradient returned, where the error enters."""
    others = {name: numeric[positions] for name, (positions, counted) in whole.items() if counted}
    for g in groups:
        if g.verdict == "fail" and g.wrong_entries and g.name in others:
            positions = whole[g.name][0]
            sentence = neighbour_gradient(g.name, an[positions], numeric[positions], others)
            if sentence:
                diagnoses[g.name] = sentence
    all_zero = {g.name for g in groups if g.verdict == "fail" and g.name in whole and not an[whole[g.name][0]].any()}
    sentence = where_error_enters(groups, all_zero)
    if sentence:
        diagnoses[LAYERS] = sentence


def _zero_note(an, numeric, rounding) -> str:
    return (f"its gradient is zero to rounding: every entry, analytic (at most {np.abs(an).max():.1e}) and numeric "
            f"(at most {np.abs(numeric).max():.1e}), is within {ZERO_FACTOR:g} x the rounding scale of a central "
            f"difference (|J| 2^-52 / eps = {rounding.max():.1e}) of zero, so it passes whatever its difference "
            "(a bias before a batch norm, or a parameter the cost does not use?)")


# one group's arrays, passed as they are sliced (no state object for one call)
def _tie_note(at, idx, an, numeric, theta, cost, cost_plus, cost_minus, eps, include, labels) -> str:  # noqa: PLR0913
    p = at[0]
    forward, backward = one_sided(theta[idx[p:p + 1]], cost, cost_plus[p:p + 1], cost_minus[p:p + 1],
                                  eps[p:p + 1] if np.ndim(eps) else eps)
    policy = "included in" if include else "left out of"
    return (f"{len(at)} entr{'y is' if len(at) == 1 else 'ies are'} at a tie, where the analytic gradient equals one "
            f"of the one-sided differences (J(theta+eps)-J(theta))/eps and (J(theta)-J(theta-eps))/eps "
            f"(e.g. {labels(idx[p:p + 1])[0]}: analytic {an[p]:.6e}, one-sided {forward[0]:.6e} and "
            f"{backward[0]:.6e}, central {numeric[p]:.6e}): a tie in a max or a ReLU at 0, a subgradient, not a "
            f"bug; counted as kinks ({policy} the verdict)")


def _nan_sentence(at, idx, an, numeric, labels) -> str:
    shown = ", ".join(f"{name} (analytic {an[p]:.3g}, numeric {numeric[p]:.3g})"
                      for name, p in zip(labels(idx[at[:3]]), at[:3]))
    more = f" and {len(at) - 3} more" if len(at) > 3 else ""
    return (f"{len(at)} entr{'y is' if len(at) == 1 else 'ies are'} not finite: {shown}{more}; a NaN is never a "
            "pass: an overflow in the cost or the engine, or a NaN in the backprop?")
