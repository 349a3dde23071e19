"""The cost's own noise, measured where a verdict rests on it: :func:`noise_report`.

The rounding scale of a central difference assumes a cost computed to a few ulps of
``|J|`` (:func:`fastcheck.report.policy.rounding_scale`). A cost that loses precision (a
``log(1 - AL)`` of a sigmoid saturated to ``1 - 5e-10``, a difference of nearly equal
numbers) is noisier by orders of magnitude, and a correct gradient then looks wrong at
``eps = 1e-7``. So in each group that does not pass, the worst :data:`NOISE_ENTRIES` entries
off by the warn bound are measured: J at ``theta + (k / NOISE_POINTS) s h e_i`` for ``k =
-NOISE_POINTS .. NOISE_POINTS`` (``h`` the entry's step, ``s`` a span of :data:`SPANS`), a
cubic fitted by least squares with a slope that may jump once in the inner half (a kink, a
tie at theta included, is no noise), and the spread of the values about it (their RMS) is
the entry's noise. Over ``2 h`` a smooth cost is such a curve to far below float64's
rounding, and what is left is the cost's rounding; where a coarse step leaves truncation
instead, the spread over twice the span tells (it grows as the span^4, rounding does not:
:data:`TRUNCATION_RATIO`). The wide span is for a cost that is a staircase at the step's
scale: a saturated sigmoid moves ``1 - AL`` one ulp at a time, so ``log(1 - AL)`` is flat
between jumps, and over the step alone a line sees a smooth curve of the wrong slope, or
one jump at its end (which a kink near the end would fit: hence the inner half). J's
rounding is J's whichever entry moves it, the height of its steps: every flagged entry of
the group takes the largest noise measured.

A noise that large could hide a bug, so the group keeps it only when a larger step
confirms it (:func:`_confirmed`): at 1e-4 (or 10 times a step of 1e-4 or more), where the
noise of a central difference is 10x to 1000x smaller, the 4-point stencil's median
relative error over up to :data:`CONFIRM_ENTRIES` of its flagged entries is below the fail
bound. A correct gradient's errors fall with the noise; a bug's stay (a 10% bug of a
group: 5e-2), and a refuted group is judged by the rounding of ``|J|`` alone. The larger
step is taken first: a group it refutes (a bug, the common case) has nothing to measure.
An engine that computes its values otherwise than by calls of the cost (traced, batched:
``Engine.at``, exact at any step) evaluates it; the noise itself is the cost's, measured by
full evaluations.

The report is then built again with the noise (:func:`fastcheck.report.build.build_report`);
the noise only widens the scale of the flagged entries, so it can turn a ``fail`` into a
``warn`` (with a note that says why) where every flagged entry is within it, never into a
``pass``; an entry well beyond it still fails its group.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.finite import stencil_gradient, step_at
from ..engines.base import Engine
from ..report import Report
from ..report.policy import entry_relative_errors, larger_step
from .options import CheckOptions

__all__ = ["noise_report", "measure_noise", "NOISE_ENTRIES", "NOISE_POINTS", "SPANS", "CONFIRM_ENTRIES",
           "NOISE_SECONDS"]

#: Entries measured per group, its worst ...
NOISE_ENTRIES = 8
#: ... at theta + (k / NOISE_POINTS) h e_i, k = -NOISE_POINTS .. NOISE_POINTS ...
NOISE_POINTS = 4
#: ... with a kink allowed at one of these offsets (in points): a kink is no noise. Only in the inner half: a
#: kink beyond it leaves one or two points free (a slope that jumps between the last two points fits any value
#: of the last one), and the outer points are the check's own J+ and J-, where a jump in J spoils its difference.
KINK_AT = tuple(np.arange(-NOISE_POINTS / 2, NOISE_POINTS / 2 + 0.125, 0.25))
#: The spans (in steps, each measured with its double for the truncation test): the check's own, and a wide one,
#: where a cost that is a staircase at the step's scale (a saturated sigmoid's 1 - AL moving by one ulp at a time:
#: flat between jumps, so a fit over the step alone sees a smooth curve of the wrong slope) shows its jumps.
SPANS = (1.0, 16.0)
#: The spread over twice the step, beyond 1 / this fraction of the spread over the step, is truncation (it
#: grows as span^4: 16x), not rounding (which does not grow, or grows as its jumps get more frequent: 2x).
TRUNCATION_RATIO = 1 / 8
#: Flagged entries of a group re-evaluated at the larger step to confirm its noise (evenly spread over them).
CONFIRM_ENTRIES = 64
#: ... group after group (the worst first) until this many seconds have gone by.
NOISE_SECONDS = 10.0


def _flagged(report: Report, options: CheckOptions) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per group that does not pass: its name, its entries off by the warn bound (flat indices; kinks the engine saw
    left out unless included: a kink is no noise), and the worst :data:`NOISE_ENTRIES` of them to measure."""
    include = report.settings.get("kinks") == "include"
    starts = dict(zip((g.name for g in report.groups), np.cumsum([0] + [g.size for g in report.groups])))
    chosen = []
    for g in report.groups:
        if g.verdict == "pass" or g.method != "coordinates" or not g.checked:
            continue
        positions, rel, kink = report.entry_errors(g.name)
        # the ties the report found are measured too: noise can fake the one-sided jump of a tie
        tie = np.array([f == "tie" for f in report.entry_flags(starts[g.name] + positions)], dtype=bool)
        use = np.flatnonzero(np.isfinite(rel) & (rel >= options.warn) & (include | ~kink | tie))
        if use.size:
            worst = use[np.argsort(-rel[use], kind="stable")[:NOISE_ENTRIES]]
            chosen.append((g.name, starts[g.name] + positions[use], starts[g.name] + positions[worst]))
    return chosen


def _spread(x: np.ndarray, y: np.ndarray) -> float:
    """The RMS of ``y`` about the best cubic with one kink (a slope that jumps at one of KINK_AT)."""
    best = np.inf
    for b in (None, *KINK_AT):
        columns = [np.ones_like(x), x, x ** 2, x ** 3] + ([] if b is None else [np.maximum(x - b, 0.0)])
        a = np.array(columns).T
        residuals = y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
        best = min(best, float(np.sum(residuals ** 2)))
    return float(np.sqrt(best / (x.size - 5)))


def _spreads(engine: Engine, theta: np.ndarray, indices: np.ndarray, steps,
             span: float) -> tuple[np.ndarray, int]:
    """The spread of J about a cubic with one kink along each of ``indices``, over ``span`` times each
    one's step on either side of theta (``2 NOISE_POINTS + 1`` points), and the evaluations spent."""
    values, offsets, spent = [np.full(indices.size, engine.cost)], [np.zeros(indices.size)], 0
    for k in range(1, NOISE_POINTS + 1):
        scaled = (span * k / NOISE_POINTS) * (np.asarray(steps) if np.ndim(steps) else steps)
        ev = engine.full(indices, scaled)
        spent += ev.n_evaluations
        h = step_at(scaled, indices)
        values = [ev.cost_minus] + values + [ev.cost_plus]
        offsets = [(theta[indices] - h) - theta[indices]] + offsets + [(theta[indices] + h) - theta[indices]]
    x = np.array(offsets).T / (step_at(steps, indices) * np.ones(indices.size))[:, None]  # about -span .. span
    y = np.array(values).T - engine.cost
    return np.array([_spread(x[p] * (NOISE_POINTS / span), y[p]) for p in range(indices.size)]), spent


def measure_noise(engine: Engine, theta: np.ndarray, indices: np.ndarray, steps) -> tuple[np.ndarray, int]:
    """The noise ``sigma`` of J along each of ``indices`` (see the module's note), by ``engine.full``.

    ``steps``: the check's nominal steps (a float, or one per coordinate of theta).
    Returns sigma per index, shape ``(len(indices),)`` (0 where the spread is truncation), and the
    evaluations of the cost spent.
    """
    sigma, spent = np.zeros(indices.size), 0
    for span in SPANS:
        (own, n_own), (wide, n_wide) = (_spreads(engine, theta, indices, steps, s) for s in (span, 2 * span))
        spent += n_own + n_wide
        # rounding does not grow with the span (or grows as its jumps get more frequent, ~ the span); what a cubic
        # leaves of a smooth cost (a coarse step) grows as span^4: that is no noise
        sigma = np.maximum(sigma, np.where(wide <= own / TRUNCATION_RATIO, own, 0.0))
    return sigma, spent


def _own_values(engine: Engine, steps) -> bool:
    """Whether the larger step is taken by the engine's own values (``Engine.at``, exact at any step): an engine
    that computes them otherwise than by calls of the cost, with one step for all of theta."""
    return engine.at is not None and np.ndim(steps) == 0


def _confirmed(engine: Engine, theta: np.ndarray, analytic: np.ndarray, flagged: np.ndarray, steps,
               options: CheckOptions) -> tuple[bool, float, int]:
    """Whether a group's errors are the noise: at the larger step (:func:`~fastcheck.report.policy.larger_step`,
    where the noise is 10x to 1000x smaller) and the 4-point stencil, the median relative error of up to
    :data:`CONFIRM_ENTRIES` of its flagged entries is below the fail bound. A wrong gradient stays wrong at every
    step (a 10% bug: 5e-2); noise falls as 1/eps. Returns the answer, that median and the evaluations spent (by
    the engine's own values, ``Engine.at``, where it has them: its perturbed costs, with the calls of the cost
    that verified a trace at that step)."""
    sample = flagged[np.unique(np.linspace(0, flagged.size - 1, min(flagged.size, CONFIRM_ENTRIES)).astype(int))]
    larger = larger_step(steps)
    own = _own_values(engine, steps)
    near, far = ((engine.at(sample, larger / steps), engine.at(sample, 2 * larger / steps)) if own
                 else (engine.full(sample, larger), engine.full(sample, 2 * larger)))
    numeric = stencil_gradient(near.numeric, far.numeric)
    median = float(np.median(entry_relative_errors(numeric, analytic[sample])))  # NaN: not confirmed
    return bool(median < options.fail), median, near.n_evaluations + far.n_evaluations


def noise_report(report: Report, engine: Engine, options: CheckOptions, theta: np.ndarray, analytic: np.ndarray,
                 rebuild) -> tuple[Report, np.ndarray | None]:
    """``report`` built again by ``rebuild(noise)`` with the cost's noise at its flagged entries, if any,
    and that noise (sigma of J per coordinate of theta, 0 where not measured; None: nothing measured).

    ``analytic`` (flat, all of theta): a group's noise is kept only where the larger step confirms it
    (:func:`_confirmed`); a group it refutes keeps the rounding of ``|J|`` alone, and its wrong entries.
    The settings gain ``noise``: the entries measured, the evaluations spent (the measure's and the larger
    step's), the largest noise found, the groups refuted, and what took the larger step and what it spent
    (``larger_step``); the
    report stays as it was when nothing was flagged or the cost has no ``full`` evaluation.
    """
    if engine.full is None or not report.has_entries or not np.isfinite(engine.cost):
        return report, None
    chosen = _flagged(report, options)
    if not chosen:
        return report, None
    started = time.perf_counter()
    steps = options.steps(theta)
    noise, measured, evaluations, refuted = np.zeros(theta.size), 0, 0, []
    larger = 0  # what the larger step spent (the engine's own values, or full evaluations)
    for name, flagged, sample in chosen:  # a slow cost: the groups that fit, worst first
        ok, median, spent = _confirmed(engine, theta, analytic, flagged, steps, options)
        larger += spent
        evaluations += spent
        if not ok:  # the errors stay at the larger step: no noise of the cost explains them
            refuted.append({"group": name, "median_rel_error_at_larger_step": median})
        else:
            sigma, spent = measure_noise(engine, theta, sample, steps)
            measured += sample.size
            evaluations += spent
            # J's rounding is J's, whichever entry moves it: the height of its steps, the largest measured (only
            # a noise above J's rounding widens any scale)
            noise[flagged] = sigma.max()
        if time.perf_counter() - started > NOISE_SECONDS:
            break
    elapsed = time.perf_counter() - started
    rebuilt = rebuild(noise)
    by = engine.name if _own_values(engine, steps) else "full evaluations"
    rebuilt.settings["noise"] = {"entries": measured, "evaluations": evaluations, "largest": float(noise.max()),
                                 "points": 2 * NOISE_POINTS + 1, "refuted": refuted,
                                 "larger_step": {"by": by, "evaluations": larger}}
    rebuilt.elapsed += elapsed
    return rebuilt, noise
