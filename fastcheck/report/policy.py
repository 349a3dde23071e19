"""What one entry's numbers mean: the rounding scale of a central difference, an entry wrong
beyond rounding, a gradient zero to rounding, an entry at a tie of the cost.

Every rule that reads a single entry lives here, so the verdicts
(:mod:`fastcheck.report.build`) and the colours of the HTML page
(:mod:`fastcheck.report.html`) never disagree.

A central difference ``(J+ - J-) / 2 eps`` of a cost computed to a few ulps of ``|J|`` is
uncertain by about its *rounding scale* ``max(|J+|, |J-|) * 2**-52 / eps``. An error many
times larger is a real difference; an entry whose analytic and numeric values are both
within a few rounding scales of zero is a zero gradient as far as float64 can tell (a
bias before a batch norm, whose true gradient the mean subtraction cancels).
"""

from __future__ import annotations

import numpy as np

from ..core.finite import STENCIL_ROUNDING, Bounds, relative_errors

__all__ = ["NOISE_FACTOR", "MEDIAN_FACTOR", "MEASURED_FACTOR", "ZERO_FACTOR", "TIE_MATCH", "rounding_scale",
           "entry_relative_errors", "beyond_rounding", "within_rounding", "larger_step", "cost_rounding",
           "wrong_entries", "entry_bands", "zero_to_rounding", "one_sided", "ties"]

#: An entry is wrong beyond rounding when its absolute error exceeds this many times the
#: rounding scale of its central difference ...
NOISE_FACTOR = 1000.0
#: ... and (for the entry to fail its group) this many times the median absolute error of its group.
MEDIAN_FACTOR = 100.0
#: A gradient is zero to rounding when its analytic and numeric values are within this many
#: rounding scales of zero (measured: a batch-norm network's biases reach 0.6 of one).
ZERO_FACTOR = 10.0
#: At a tie the analytic gradient equals a one-sided difference to within this fraction of
#: the jump between the two one-sided differences.
TIE_MATCH = 1e-2


#: A cost's noise measured by real evaluations (the spread of its values about a smooth fit,
#: :mod:`fastcheck.pipeline.noise`) is known, not assumed as the ``NOISE_FACTOR`` ulps of the
#: rounding scale are: an error beyond this many times it is beyond the noise (a central
#: difference's noise is about ``sigma / eps``; the largest of thousands about 5 times that).
MEASURED_FACTOR = 30.0


def rounding_scale(cost_plus: np.ndarray, cost_minus: np.ndarray, eps, stencil: int = 2,
                   noise=0.0) -> np.ndarray:
    """``max(|J+|, |J-|) * 2**-52 / eps`` per entry: how far rounding alone moves a central difference.

    ``eps`` is the step, or each entry's (``eps="auto"``); the 4-point stencil's difference
    moves ``STENCIL_ROUNDING[4]`` times as far at the same step. ``noise`` is the cost's own
    noise where it was measured (sigma of J, 0 where not): the scale is at least
    ``sigma * MEASURED_FACTOR / NOISE_FACTOR / eps``, so that ``NOISE_FACTOR`` rounding scales
    are never less than ``MEASURED_FACTOR`` measured noises.
    """
    ulps = np.maximum(np.abs(cost_plus), np.abs(cost_minus)) * np.finfo(np.float64).eps
    scale = np.maximum(ulps, np.asarray(noise) * (MEASURED_FACTOR / NOISE_FACTOR)) / eps
    return scale * STENCIL_ROUNDING[stencil] if stencil != 2 else scale


def cost_rounding(cost) -> float:
    """float64's rounding of J, ``|J| 2**-52``: a measured noise above it is the cost's own (inf for no finite J)."""
    return abs(cost) * np.finfo(np.float64).eps if cost is not None and np.isfinite(cost) else np.inf


def larger_step(eps):
    """The larger step a report suggests against a cost's rounding or noise, and at which the noise rule
    confirms it (:mod:`fastcheck.pipeline.noise`): 1e-4, or ten times a step of 1e-4 or more (elementwise)."""
    eps = np.asarray(eps, dtype=np.float64)
    larger = np.where(eps < 1e-4, 1e-4, 10 * eps)
    return float(larger) if larger.ndim == 0 else larger


def entry_relative_errors(numeric: np.ndarray, analytic: np.ndarray) -> np.ndarray:
    """``|n - a| / (|n| + |a|)`` per entry (0/0 = 0), NaN where either value is not finite:
    a NaN is never a small error."""
    with np.errstate(invalid="ignore"):  # inf - inf and inf / inf: NaN, set below anyway
        rel = relative_errors(numeric, analytic)
    rel[~(np.isfinite(numeric) & np.isfinite(analytic))] = np.nan
    return rel


def beyond_rounding(abs_error: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """True where ``abs_error`` exceeds ``NOISE_FACTOR`` rounding scales (NaN errors and an
    unknown (NaN) scale count as beyond)."""
    return ~(abs_error <= NOISE_FACTOR * rounding)


def within_rounding(abs_error: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """True where ``abs_error`` is within ``ZERO_FACTOR`` rounding scales: what rounding alone gives a central
    difference (the J+ and J- of a cost of 1e5 are rounded to 1.5e-11 each, an error of ~0.3 rounding scale),
    so such an error is no evidence of a bug, whatever its relative size. A NaN error or scale is not within."""
    return abs_error <= ZERO_FACTOR * rounding


def wrong_entries(rel: np.ndarray, abs_error: np.ndarray, rounding: np.ndarray, bounds: Bounds) -> np.ndarray:
    """True where an entry is wrong beyond any rounding: its relative error is at least the
    fail bound (or NaN) and its error exceeds ``NOISE_FACTOR`` rounding scales."""
    return (~(rel < bounds.fail)) & beyond_rounding(abs_error, rounding)


def entry_bands(rel: np.ndarray, abs_error: np.ndarray, rounding: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Each entry's band for the eye: its relative error's band, except that an error within
    ``ZERO_FACTOR`` rounding scales is ``"pass"`` (rounding noise on a tiny gradient is no
    warning). Every wrong entry (:func:`wrong_entries`) is ``"fail"``; so is an entry off by
    the fail bound beyond noise but short of the wrong entries' margin of certainty.

    Entries whose rounding scale is unknown (NaN: a report read from an older JSON) are
    banded by their relative error alone.
    """
    band = np.where(~(rel < bounds.fail), "fail", np.where(rel >= bounds.warn, "warn", "pass"))
    return np.where(within_rounding(abs_error, rounding), "pass", band)


def zero_to_rounding(analytic: np.ndarray, numeric: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """True where both gradients are within ``ZERO_FACTOR`` rounding scales of zero."""
    limit = ZERO_FACTOR * rounding
    return (np.abs(analytic) <= limit) & (np.abs(numeric) <= limit)


def one_sided(theta: np.ndarray, cost: float, cost_plus: np.ndarray, cost_minus: np.ndarray,
              eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The forward and backward differences ``(J+ - J) / h+`` and ``(J - J-) / h-``, with the
    steps ``h+ = (theta + eps) - theta`` and ``h- = theta - (theta - eps)`` as float64 takes them."""
    h_plus = (theta + eps) - theta
    h_minus = theta - (theta - eps)
    return (cost_plus - cost) / h_plus, (cost - cost_minus) / h_minus


def ties(analytic: np.ndarray, forward: np.ndarray, backward: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """True where the cost has a kink or tie the analytic gradient sits on one side of.

    The one-sided differences disagree by more than ``NOISE_FACTOR`` rounding scales (a
    smooth cost makes them differ by ``eps * J''`` only), and the analytic gradient equals
    one of them to within ``TIE_MATCH`` of their jump: a tie in a max or a ReLU at 0, where
    the backward took one side's derivative (a subgradient), and the central difference
    the average of both. Meant for entries off by the warn bound at least: on those a
    smooth cost's curvature would have to match the analytic error by coincidence (a correct
    gradient of a smooth cost sits half way between the two, never on one).
    """
    jump = np.abs(forward - backward)
    near = np.minimum(np.abs(analytic - forward), np.abs(analytic - backward))
    return (jump > NOISE_FACTOR * rounding) & (near <= TIE_MATCH * jump + ZERO_FACTOR * rounding)
