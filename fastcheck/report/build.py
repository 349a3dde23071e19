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
from dataclasses import dataclass, field

import numpy as np

from ..core.directions import GLOBAL
from ..core.finite import Bounds, relative_difference, relative_errors, step_at, worst_verdict
from ..core.layout import Layout
from .diagnose import diagnose_group
from .layers import LAYERS, neighbour_gradient, where_error_enters
from .model import Report
from .policy import (
    MEDIAN_FACTOR,
    NOISE_FACTOR,
    ZERO_FACTOR,
    beyond_rounding,
    cost_rounding,
    entry_relative_errors,
    larger_step,
    one_sided,
    rounding_scale,
    ties,
    within_rounding,
    wrong_entries,
    zero_to_rounding,
)
from .rows import DirectionRow, GroupRow
from .text import entries

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


@dataclass
class _Entries:
    """The coordinate results, sorted by index, with what the policy decides per entry."""

    idx: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    cost_plus: np.ndarray
    cost_minus: np.ndarray
    eps: float | np.ndarray  # each entry's nominal step (one for all, or one each)
    n_evaluations: int
    kinks: np.ndarray = None
    tie: np.ndarray = None
    abs_error: np.ndarray = None
    rel: np.ndarray = None
    rounding: np.ndarray = None
    not_finite: np.ndarray = None
    counted: np.ndarray = None  # in the differences (kinks left out unless included; NaN always in)
    suspect: np.ndarray = None  # counted and wrong beyond rounding


def _entries(evaluations, analytic, steps, settings, bounds, theta, cost, noise) -> _Entries:
    """The entries of ``evaluations`` and the policy's decisions on each (wrong, kink, tie, counted)."""
    if evaluations is None:
        empty, idx = np.zeros(0), np.zeros(0, dtype=np.int64)
        e = _Entries(idx, empty, empty, empty, empty, step_at(steps, idx), 0)
        kinks = np.zeros(0, dtype=bool)
    else:
        idx = np.asarray(evaluations.indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        idx = idx[order]
        e = _Entries(idx, analytic[idx], np.asarray(evaluations.numeric)[order],
                     np.asarray(evaluations.cost_plus)[order], np.asarray(evaluations.cost_minus)[order],
                     step_at(steps, idx), evaluations.n_evaluations)
        kinks = np.asarray(evaluations.kinks, dtype=bool)[order]
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, which the rules below treat as wrong
        e.abs_error = np.abs(e.numeric - e.analytic)
    e.rel = entry_relative_errors(e.numeric, e.analytic)
    e.not_finite = np.isnan(e.rel)
    e.rounding = rounding_scale(e.cost_plus, e.cost_minus, e.eps, settings.get("stencil", 2), noise[e.idx])
    wrong_band = wrong_entries(e.rel, e.abs_error, e.rounding, bounds)
    e.tie = np.zeros_like(kinks)
    if theta is not None and cost is not None and np.isfinite(cost):
        # every entry the verdict or the sweep reads (off by the warn bound: a tie's error is half its jump, any
        # size), the engine's kinks too: a tie says why it is no bug
        at = np.flatnonzero((e.rel >= bounds.warn) & ~e.not_finite)
        forward, backward = one_sided(theta[e.idx[at]], cost, e.cost_plus[at], e.cost_minus[at], step_at(e.eps, at))
        e.tie[at] = ties(e.analytic[at], forward, backward, e.rounding[at])
        # a kink excuses a wrong entry only when the analytic gradient is one side's derivative: a
        # gradient that is wrong on both sides of the kink (a 2x bug in a bias at ReLU's 0) still counts
        kinks = kinks & ~(wrong_band & ~e.not_finite & ~e.tie)
    e.kinks = kinks | e.tie
    include = settings.get("kinks") == "include"
    e.counted = (np.ones_like(e.kinks) if include else ~e.kinks) | e.not_finite
    e.suspect = e.counted & wrong_band
    return e


class _Directions:
    """The directional results (none: ``directions is None``) and the rows they give."""

    def __init__(self, directions, include: bool):
        self.results = directions
        self.rows, self.groups = [], np.zeros(0, dtype=object)
        if directions is None:
            return
        d_abs = np.abs(directions.numeric - directions.analytic)
        d_rel = relative_errors(directions.numeric, directions.analytic)
        self.rows = [DirectionRow(d.group, d.number, float(a), float(n), float(e), float(r), bool(k))
                     for d, a, n, e, r, k in zip(directions.directions, directions.analytic, directions.numeric,
                                                 d_abs, d_rel, directions.kinks)]
        self.groups = np.array([d.group for d in directions.directions], dtype=object)
        self.counted = np.ones(len(self.rows), dtype=bool) if include else ~directions.kinks

    def has(self, name: str) -> bool:
        return self.results is not None and bool((self.groups == name).any())

    def row(self, name, shape, size, bounds: Bounds, whole: bool = False) -> GroupRow:
        """The row of group ``name`` from its directions; a group that is ``whole`` of theta (a flat theta)
        and has none of its own takes those over all of theta, which are its own."""
        mine = self.groups == name
        if whole and not mine.any():
            mine = self.groups == GLOBAL
        use = mine & self.counted
        d = relative_difference(self.results.numeric[use], self.results.analytic[use])
        return GroupRow(name, shape, size, int(mine.sum()), int((mine & self.results.kinks).sum()), d,
                        bounds.verdict(d), 0, "directions")


@dataclass
class _Findings:
    """What the groups' rows say beyond their numbers, by group name."""

    diagnoses: dict = field(default_factory=dict)
    sigma: np.ndarray = None  # the cost's measured noise, per coordinate of theta (0: not measured)
    noisy: set = field(default_factory=set)  # the groups where it exceeds the rounding of |J|
    capped: set = field(default_factory=set)  # groups that warn, not fail, because their errors are that noise
    notes: dict = field(default_factory=dict)
    whole: dict = field(default_factory=dict)  # groups checked in full, no NaN: (positions, every entry counted)

    def note(self, name: str, note: str) -> None:
        self.notes[name] = f"{self.notes[name]}; {note}" if name in self.notes else note


def _coordinate_verdict(e: _Entries, at: slice, use: np.ndarray, d: float, bounds: Bounds) -> tuple[str, int]:
    """A group's verdict from its band and its wrong entries (``at``: its entries), and how many are wrong."""
    wrong = int(e.suspect[at].sum())
    verdict = bounds.verdict(d) if e.idx[at].size else "pass"
    if wrong:
        nan = e.not_finite[at]
        median = np.median(e.abs_error[at][use & ~nan]) if (use & ~nan).any() else 0.0
        if (e.suspect[at] & (nan | (e.abs_error[at] > MEDIAN_FACTOR * median))).any():
            verdict = "fail"
    return verdict, wrong


def _coordinate_row(g, lo: int, hi: int, e: _Entries, dirs: _Directions, found: _Findings, labels,  # noqa: PLR0913
                    bounds: Bounds, include: bool, escalated, theta, cost, context) -> GroupRow:
    """The row of group ``g`` from its entries ``lo:hi``, its notes and diagnosis in ``found``."""
    at, checked = slice(lo, hi), int(hi - lo)  # the group's entries, in order
    use = e.counted[at]
    a, n, r = e.analytic[at][use], e.numeric[at][use], e.rounding[at][use]
    d = relative_difference(n, a)
    verdict, wrong = _coordinate_verdict(e, at, use, d, bounds)
    nan = bool(e.not_finite[at].any())
    # zero to rounding: only a question when the band is not pass, or both gradients are exactly equal
    noisy = g.name in found.noisy
    zero = (use.any() and not wrong and not noisy and (verdict != "pass" or d == 0.0)
            and bool(zero_to_rounding(a, n, r).all()))
    if zero:
        verdict = "pass"
        found.note(g.name, _zero_note(a, n, r))
    if checked < g.size and dirs.has(g.name):
        # escalated in part after its directions: what they found stands until its entries are named
        cheap = dirs.row(g.name, g.shape, g.size, bounds)
        if worst_verdict([cheap.verdict, verdict]) != verdict:
            verdict = cheap.verdict
            found.diagnoses[g.name] = (
                f"its {cheap.checked} directions differ by {cheap.difference:.2e} ({cheap.verdict}), but the "
                f"{checked:,} of {entries(g.size)} re-checked one by one {'is' if checked == 1 else 'are'} right: "
                "the wrong ones are "
                f"among the {g.size - checked:,} not re-checked (check {g.name} in full, or give the "
                "escalation more time)")
    if noisy and verdict != "pass" and not wrong:
        flagged = use & (e.rel[at] >= bounds.warn)
        if not beyond_rounding(e.abs_error[at][flagged], e.rounding[at][flagged]).any():
            verdict = "warn"
            found.capped.add(g.name)
            found.note(g.name, _noise_note(cost, e, lo + np.flatnonzero(flagged), found.sigma, labels))
    if verdict != "pass" and not wrong:
        verdict = _within_rounding_verdict(g.name, verdict, e, at, use, bounds, found, cost, labels)
    n_ties = int(e.tie[at].sum())
    if n_ties:
        found.note(g.name, _tie_note(lo + np.flatnonzero(e.tie[at]), e, theta, cost, include, labels))
    if checked == g.size and not nan:
        found.whole[g.name] = (at, bool(use.all()))
    if nan:
        found.diagnoses[g.name] = _nan_sentence(lo + np.flatnonzero(e.not_finite[at]), e.idx, e.analytic, e.numeric,
                                                labels)
    elif verdict != "pass" and wrong and theta is not None and g.name not in found.diagnoses:
        where = lo + np.flatnonzero(use)
        sentence = diagnose_group(g.shape, theta[e.idx[where]], e.analytic[where], e.numeric[where], e.suspect[where],
                                  lambda p, where=where: labels(e.idx[where[p]]),
                                  is_weight=g.name.startswith("W"), **(context or {}))
        if sentence:
            found.diagnoses[g.name] = sentence
    return GroupRow(g.name, g.shape, g.size, checked, int(e.kinks[at].sum()), d, verdict, wrong, "coordinates",
                    g.name in escalated, n_ties, bool(zero))


def _within_rounding_verdict(name, verdict, e: _Entries, at: slice, use, bounds: Bounds, found: _Findings, cost,
                             labels) -> str:
    """The verdict of a group that is not ``pass`` and has no wrong entry: ``warn``, with a note, when every
    entry off by the warn bound is within rounding (:func:`~fastcheck.report.policy.within_rounding`): no bug
    shown, and no pass (nothing below the rounding was checked). A group that still fails is explained by the
    text report (:func:`fastcheck.report.text.unwrong_line`)."""
    flagged = use & (e.rel[at] >= bounds.warn)
    if name in found.capped or not flagged.any() or not within_rounding(e.abs_error[at][flagged],
                                                                       e.rounding[at][flagged]).all():
        return verdict
    found.capped.add(name)
    found.note(name, _rounding_note(cost, e, e.idx[at][flagged], e.rounding[at][flagged], labels))
    return "warn"


def build_report(layout: Layout, analytic: np.ndarray, evaluations=None, *, bounds: Bounds, settings: dict,  # noqa: PLR0913
                 elapsed: float, directions=None, escalated=(), theta: np.ndarray | None = None,
                 context: dict | None = None, cost: float | None = None, steps=None, noise=None) -> Report:
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
    entries never are. With ``theta`` and ``cost`` (J(theta)) an entry off by the warn
    bound whose one-sided differences show a tie the analytic gradient takes one side of
    is a kink too, if the engine did not flag it already (:func:`fastcheck.report.policy.ties`).

    With ``theta`` every coordinate group with wrong entries gets a diagnosis of the
    error's shape when one fits (:mod:`fastcheck.report.diagnose`, :mod:`fastcheck.report.layers`);
    ``context`` may give ``m`` and ``l2`` to name a missing 1/m or L2 term.

    ``steps`` are the coordinates' nominal steps (a float, or one per coordinate of theta
    with ``eps="auto"``; default ``settings["eps"]``): the rounding scale of each entry is
    its own step's (and its stencil's, ``settings["stencil"]``).

    ``noise`` is the cost's own noise measured at some coordinates (sigma of J, one per
    coordinate of theta, 0 where not measured: :mod:`fastcheck.pipeline.noise`): their rounding
    scales take it (:func:`fastcheck.report.policy.rounding_scale`), and a group whose every
    entry off by the warn bound is within its noise warns at most, with a note saying so:
    noise is no bug, and no pass either (nothing below the noise was checked).
    """
    include = settings.get("kinks") == "include"
    sigma = np.zeros(layout.n_params) if noise is None else noise  # 0: not measured
    e = _entries(evaluations, analytic, settings["eps"] if steps is None else steps, settings, bounds, theta, cost,
                 sigma)
    dirs = _Directions(directions, include)

    def labels(positions):
        return [layout.describe(int(i)) for i in positions]

    ulp = cost_rounding(cost)
    groups, found = [], _Findings(sigma=sigma, noisy={g.name for g in layout.groups
                                                      if (sigma[g.start:g.stop] > ulp).any()})
    bounds_of = np.searchsorted(e.idx, [[g.start, g.start + g.size] for g in layout.groups])  # idx is sorted
    for g, (lo, hi) in zip(layout.groups, bounds_of):
        if hi == lo and directions is not None:
            groups.append(dirs.row(g.name, g.shape, g.size, bounds, whole=g.size == layout.n_params))
        else:
            groups.append(_coordinate_row(g, lo, hi, e, dirs, found, labels, bounds, include, escalated, theta, cost,
                                          context))
    if theta is not None:
        _across_groups(groups, found.diagnoses, found.whole, e.analytic, e.numeric)

    overall, n_evaluations = None, e.n_evaluations
    if directions is not None:
        n_evaluations += directions.n_evaluations
        if dirs.has(GLOBAL):
            overall = dirs.row(GLOBAL, (layout.n_params,), layout.n_params, bounds)
        difference = relative_difference(directions.numeric[dirs.counted], directions.analytic[dirs.counted])
    else:
        difference = relative_difference(e.numeric[e.counted], e.analytic[e.counted])
    coordinate_rows = [g for g in groups if g.method == "coordinates" and g.checked]
    all_zero = bool(coordinate_rows) and overall is None and all(g.zero_to_rounding for g in coordinate_rows)
    band = "pass" if all_zero else bounds.verdict(difference)  # nothing but rounding to compare
    if found.capped and all(g.verdict != "fail" for g in groups) and band == "fail":
        band = "warn"  # the overall difference is the noise of the groups that have it: no bug, and no pass
    verdicts = [g.verdict for g in groups] + [band] + ([overall.verdict] if overall else [])
    settings = {**settings, "warn": bounds.warn, "fail": bounds.fail}
    return Report(difference=difference, verdict=worst_verdict(verdicts), groups=groups,
                  entries=(e.idx, e.analytic, e.numeric, e.kinks, e.rounding, e.tie), settings=settings,
                  n_params=layout.n_params, n_checked=len(e.idx), n_evaluations=n_evaluations, elapsed=elapsed,
                  directions=dirs.rows, overall_directions=overall, diagnoses=found.diagnoses, notes=found.notes,
                  produced=produced(), rel=e.rel)


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


def _rounding_note(cost, e: _Entries, where: np.ndarray, rounding: np.ndarray, labels) -> str:
    h = float(np.max(e.eps)) if np.ndim(e.eps) else float(e.eps)
    shown = ", ".join(labels(where[:3])) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
    larger = larger_step(h)
    size = f", |J| = {abs(cost):.3g}" if cost is not None and np.isfinite(cost) else ""
    return (f"rounding, no bug shown: its {entries(len(where))} off by the warn bound ({shown}) "
            f"{'is' if len(where) == 1 else 'are'} within "
            f"{ZERO_FACTOR:g} x their rounding scale |J| 2^-52 / eps (up to {rounding.max():.1e}{size}), what "
            "rounding alone gives: it warns, it cannot pass. A cost large against its changes (a constant added to "
            f"it?) rounds them away: subtract the constant, or check with a larger eps (at eps = {larger:.0e} the "
            f"rounding scale is ~{rounding.max() * h / larger:.1e})")


def _noise_note(cost: float, e: _Entries, within: np.ndarray, noise: np.ndarray, labels) -> str:
    top = float(noise[e.idx[within]].max())
    h = float(np.max(e.eps)) if np.ndim(e.eps) else float(e.eps)
    shown = ", ".join(labels(e.idx[within[:3]])) + (f" and {len(within) - 3} more" if len(within) > 3 else "")
    larger = larger_step(h)
    return (f"the cost loses precision: its own noise, measured around theta along its worst entries, is {top:.1e} "
            f"({top / cost_rounding(cost):.2g}x float64's rounding of |J| = {abs(cost):.3g}); at "
            f"eps = {h:.0e} its central differences are noisy to ~{top / h:.1e}, and the {entries(len(within))} off by "
            f"the warn bound ({shown}) {'is' if len(within) == 1 else 'are'} within that noise: it warns, it cannot "
            "pass (nothing below the noise was checked). Compute the cost stably (a log(1 - AL) of a saturated "
            "sigmoid: np.log1p(-AL), or from the "
            f"logits) or check with a larger eps (at eps = {larger:.0e} the noise is ~{top / larger:.1e})")


def _tie_note(at, e: _Entries, theta, cost, include: bool, labels) -> str:
    p = at[0]
    idx, an, numeric = e.idx, e.analytic, e.numeric
    forward, backward = one_sided(theta[idx[p:p + 1]], cost, e.cost_plus[p:p + 1], e.cost_minus[p:p + 1],
                                  e.eps[p:p + 1] if np.ndim(e.eps) else e.eps)
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
