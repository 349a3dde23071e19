"""From an engine's evaluations to a :class:`~fastcheck.report.model.Report`: the per-group
rows, the diagnoses, and the verdict policy.

The policy: a group's verdict is its difference's band (:meth:`fastcheck.core.finite.Bounds.verdict`),
except that one entry wrong beyond any rounding fails its group (see :func:`build_report`
and the two factors below); the overall verdict is the worst of the groups', the overall
difference's and the global directions' (:func:`fastcheck.core.finite.worst_verdict`).
"""

from __future__ import annotations

import numpy as np

from ..core.directions import GLOBAL
from ..core.finite import Bounds, relative_difference, relative_errors, worst_verdict
from ..core.layout import Layout
from .diagnose import diagnose_group
from .model import DirectionRow, GroupRow, Report

__all__ = ["build_report", "NOISE_FACTOR", "MEDIAN_FACTOR"]

#: An entry is wrong beyond rounding when its absolute error exceeds this many times the
#: rounding scale of a central difference, max(|J+|, |J-|) * 2**-52 / eps ...
NOISE_FACTOR = 1000.0
#: ... and this many times the median absolute error of its group.
MEDIAN_FACTOR = 100.0


def build_report(layout: Layout, analytic: np.ndarray, evaluations=None, *, bounds: Bounds, settings: dict,
                 elapsed: float, directions=None, escalated=(), theta: np.ndarray | None = None,
                 context: dict | None = None) -> Report:
    """Compare ``analytic`` (flat, all of theta) with an engine's central differences.

    ``evaluations`` holds coordinate results (any subset of theta), ``directions``
    directional ones. A group with coordinate results gets a coordinate row, otherwise
    a directions row.

    A coordinate row's verdict is its difference's band, except that a group with an
    entry wrong beyond rounding fails: an entry whose relative error is at least the
    fail bound and whose absolute error exceeds both ``NOISE_FACTOR`` times the
    rounding scale of its central difference and ``MEDIAN_FACTOR`` times its group's
    median absolute error. Without it one wrong entry of a large group (W2[3, 7] off by
    10%) would be diluted by the norm into a ``warn``. Kinks are left out of the
    differences unless ``settings["kinks"] == "include"``.

    With ``theta`` (the parameter values) every coordinate group that is not ``pass``
    gets a diagnosis of the error's shape when one fits (:mod:`fastcheck.report.diagnose`);
    ``context`` may give ``m`` and ``l2`` to name a missing 1/m or L2 term.
    """
    include = settings.get("kinks") == "include"
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
    counted = np.ones_like(kinks) if include else ~kinks
    gid = layout.group_ids(idx)
    abs_error = np.abs(numeric - an)
    rounding = np.maximum(np.abs(cost_plus), np.abs(cost_minus)) * np.finfo(np.float64).eps / settings["eps"]
    suspect = counted & (relative_errors(numeric, an) >= bounds.fail) & (abs_error > NOISE_FACTOR * rounding)

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

    groups, diagnoses = [], {}
    for position, g in enumerate(layout.groups):
        mine = gid == position
        if not mine.any() and directions is not None:
            groups.append(directions_row(g.name, g.shape, g.size))
            continue
        use = mine & counted
        d = relative_difference(numeric[use], an[use])
        wrong = int((suspect & mine).sum())
        outlier = wrong > 0 and (suspect & mine & (abs_error > MEDIAN_FACTOR * np.median(abs_error[use]))).any()
        verdict = "fail" if outlier else bounds.verdict(d) if mine.any() else "pass"
        partial = mine.sum() < g.size and directions is not None and (direction_groups == g.name).any()
        if partial:  # escalated in part after its directions: what they found stands until its entries are named
            cheap = directions_row(g.name, g.shape, g.size)
            if worst_verdict([cheap.verdict, verdict]) != verdict:
                verdict = cheap.verdict
                diagnoses[g.name] = (
                    f"its {cheap.checked} directions differ by {cheap.difference:.2e} ({cheap.verdict}), but the "
                    f"{int(mine.sum()):,} of {g.size:,} entries re-checked one by one are right: the wrong ones are "
                    f"among the {g.size - int(mine.sum()):,} not re-checked (check {g.name} in full, or give the "
                    "escalation more time)")
        groups.append(GroupRow(g.name, g.shape, g.size, int(mine.sum()), int((mine & kinks).sum()), d, verdict,
                               wrong, "coordinates", g.name in escalated))
        if verdict != "pass" and theta is not None and g.name not in diagnoses:
            where = np.flatnonzero(use)

            def labels(positions, where=where):
                return [layout.describe(int(idx[where[p]])) for p in positions]

            sentence = diagnose_group(g.shape, theta[idx[where]], an[where], numeric[where], suspect[where], labels,
                                      is_weight=g.name.startswith("W"), **(context or {}))
            if sentence:
                diagnoses[g.name] = sentence

    overall = None
    if directions is not None:
        if (direction_groups == GLOBAL).any():
            overall = directions_row(GLOBAL, (layout.n_params,), layout.n_params)
        difference = relative_difference(directions.numeric[d_counted], directions.analytic[d_counted])
    else:
        difference = relative_difference(numeric[counted], an[counted])
    verdicts = [g.verdict for g in groups] + [bounds.verdict(difference)] + ([overall.verdict] if overall else [])
    settings = {**settings, "warn": bounds.warn, "fail": bounds.fail}
    return Report(difference=difference, verdict=worst_verdict(verdicts), groups=groups,
                  entries=(idx, an, numeric, kinks), settings=settings, n_params=layout.n_params,
                  n_checked=len(idx), n_evaluations=n_evaluations, elapsed=elapsed, directions=direction_rows,
                  overall_directions=overall, diagnoses=diagnoses)
