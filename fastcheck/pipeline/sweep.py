"""The step sweep: flagged entries re-evaluated at steps from 1e-3 to 1e-9, to tell noise from a bug.

Which groups are swept is ``sweep``'s rule (:data:`fastcheck.pipeline.options.SWEPT`): by
default those that warn. Of each, the :data:`SWEEP_ENTRIES` worst entries whose relative
error reaches the warn bound (a group that warns has one at least; kinks left out unless
included, NaN entries too: a NaN is no question of step), in at most
:data:`SWEEP_GROUPS` groups (the worst by difference), are evaluated at every step of
:data:`fastcheck.report.sweep.SWEEP_STEPS` by full evaluations of the real cost
(``Engine.full``: the reference loop on the objective the check uses, its time limit and
determinism checks included), and each entry's errors are classified by
:func:`fastcheck.report.sweep.classify`.

The sweep never changes a verdict. A warn is the band of a difference the check
measured at its own step; the sweep says where that difference comes from (rounding,
truncation, a bug) and which step would settle it, but a verdict taken from another
step than the one asked for would be a different check: the user re-runs with that
step (the sentence names it), and that check's verdict stands on its own.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..core.finite import step_at
from ..core.layout import Layout
from ..engines.base import Engine
from ..report import Report
from ..report.policy import one_sided, rounding_scale, ties
from ..report.rows import SweepRow
from ..report.sweep import SWEEP_STEPS, classify
from .options import SWEPT, CheckOptions

__all__ = ["sweep_report", "SWEEP_ENTRIES", "SWEEP_GROUPS"]

#: Entries swept per group, its worst by relative error ...
SWEEP_ENTRIES = 3
#: ... in at most this many groups, the worst by difference ...
SWEEP_GROUPS = 8
#: ... and as many of them (at least one) as the first step's timing says fit in this many seconds.
SWEEP_SECONDS = 30.0


def _flagged(report: Report, options: CheckOptions) -> np.ndarray:
    """The flat indices to sweep: the worst entries of the groups ``options.sweep`` asks for, round robin
    (every group's worst, then every group's second, ...), so that a cut keeps every group."""
    verdicts = SWEPT[options.sweep]
    rows = [g for g in report.groups if g.verdict in verdicts and g.method == "coordinates" and g.checked]
    rows = sorted(rows, key=lambda g: -np.nan_to_num(g.difference, nan=np.inf))[:SWEEP_GROUPS]
    include = report.settings.get("kinks") == "include"
    starts = dict(zip((g.name for g in report.groups), np.cumsum([0] + [g.size for g in report.groups])))
    chosen = []
    for g in rows:
        positions, rel, kink = report.entry_errors(g.name)
        use = np.isfinite(rel) & (rel >= options.warn) & (include | ~kink)  # a warn group has one at least
        order = np.argsort(-rel[use], kind="stable")[:SWEEP_ENTRIES]
        chosen.append(starts[g.name] + positions[use][order])
    robin = [c[k] for k in range(SWEEP_ENTRIES) for c in chosen if k < len(c)]
    return np.array(robin, dtype=np.int64)


def _kinks(report: Report, runs: list, cost: float, theta, analytic, indices, rounding) -> list[str]:
    """Per swept entry: ``"tie"`` where the report or a swept step's one-sided differences show a tie,
    ``"kink"`` where an engine saw it cross a kink, else ``""`` (:func:`fastcheck.report.sweep.classify`)."""
    tie = np.zeros(indices.size, dtype=bool)
    if np.isfinite(cost):
        for s, (ev, h) in enumerate(zip(runs, SWEEP_STEPS)):
            forward, backward = one_sided(theta[indices], cost, ev.cost_plus, ev.cost_minus, h)
            with np.errstate(invalid="ignore"):
                tie |= ties(analytic[indices], forward, backward, rounding[:, s])
    crossed = np.any([np.asarray(ev.kinks, dtype=bool) for ev in runs], axis=0)
    flags = report.entry_flags(indices)
    return ["tie" if t or f == "tie" else "kink" if c or f == "kink" else ""
            for t, c, f in zip(tie, crossed, flags)]


def _first(ev, k: int):
    """The first ``k`` coordinates of evaluations ``ev``."""
    return replace(ev, indices=ev.indices[:k], cost_plus=ev.cost_plus[:k], cost_minus=ev.cost_minus[:k],
                   numeric=ev.numeric[:k], kinks=ev.kinks[:k])


def _evaluate(engine: Engine, indices: np.ndarray) -> tuple[np.ndarray, list, int, bool]:
    """The sweep's evaluations of ``indices`` (cut to what fits in SWEEP_SECONDS after the first step):
    the indices kept, the evaluations per step, the cost evaluations spent, whether it was cut."""
    started = time.perf_counter()
    first = engine.full(indices, SWEEP_STEPS[0])
    spent = first.n_evaluations
    per_entry = (time.perf_counter() - started) / indices.size * len(SWEEP_STEPS)
    fit = max(1, int(SWEEP_SECONDS / per_entry)) if per_entry > 0 else indices.size
    cut = fit < indices.size
    if cut:  # a slow cost: the first entries of the round robin
        indices, first = indices[:fit], _first(first, fit)
    runs = [first] + [engine.full(indices, h) for h in SWEEP_STEPS[1:]]
    return indices, runs, spent + sum(ev.n_evaluations for ev in runs[1:]), cut


def sweep_report(report: Report, layout: Layout, engine: Engine, options: CheckOptions, theta: np.ndarray,  # noqa: PLR0913
                 analytic: np.ndarray, noise: np.ndarray | None = None) -> Report:
    """``report`` with the step sweep of its flagged entries (``report.sweeps``), if any.

    ``noise``: the cost's noise measured per coordinate (:mod:`fastcheck.pipeline.noise`), which
    the rounding scale of each swept step takes where it is known.

    The settings gain ``sweep``: the entries swept, the steps, the cost evaluations spent,
    the groups and the rule of the selection; the verdict is left as it is.
    """
    if options.sweep is False or engine.full is None or not report.has_entries:
        return report
    indices = _flagged(report, options)
    if not indices.size:
        return report
    started = time.perf_counter()
    indices, runs, spent, cut = _evaluate(engine, indices)
    numeric = np.array([ev.numeric for ev in runs]).T  # (entries, steps)
    sigma = 0.0 if noise is None else noise[indices]
    rounding = np.array([rounding_scale(ev.cost_plus, ev.cost_minus, h, noise=sigma)
                         for ev, h in zip(runs, SWEEP_STEPS)]).T
    errors = np.abs(numeric - analytic[indices][:, None])
    eps = np.broadcast_to(step_at(options.steps(theta), indices), indices.shape)
    kinks = _kinks(report, runs, engine.cost, theta, analytic, indices, rounding)
    rows = []
    for p, i in enumerate(indices):
        label = layout.describe(int(i))
        kind, sentence = classify(label, SWEEP_STEPS, errors[p], numeric[p], float(analytic[i]), rounding[p],
                                  float(eps[p]), options.warn, kinks[p], float(sigma[p]) if noise is not None else 0.0)
        rows.append(SweepRow(label, int(i), float(analytic[i]), SWEEP_STEPS, tuple(map(float, numeric[p])),
                             tuple(map(float, errors[p])), tuple(map(float, rounding[p])), float(eps[p]), kind,
                             sentence))
    report.sweeps = rows
    verdicts = " or ".join(v + "s" for v in SWEPT[options.sweep])  # "warns or fails"
    rule = (f"the {SWEEP_ENTRIES} worst entries (relative error >= {options.warn:g}) of each group that {verdicts} "
            f"(at most {SWEEP_GROUPS} groups" + (f"; the {len(rows)} that fit in {SWEEP_SECONDS:g} s" if cut else "")
            + ")")
    report.settings["sweep"] = {"entries": len(rows), "evaluations": spent, "steps": list(SWEEP_STEPS),
                                "groups": [layout.names[g] for g in np.unique(layout.group_ids(indices))],
                                "rule": rule}
    report.elapsed += time.perf_counter() - started
    return report
