"""What a step sweep says about an entry: a bug, rounding noise, or truncation.

An entry's error ``|numeric(eps) - analytic|`` at steps eps from 1e-3 to 1e-9 has three
possible sources, and each has its own slope on a log-log plot of the error against eps:
the truncation error of the central difference falls as eps^2 (slope 2), rounding grows
as 1/eps (slope -1: the rounding scale ``|J| 2**-52 / eps`` of
:func:`fastcheck.report.policy.rounding_scale`), and a wrong analytic gradient stays
flat (slope 0) wherever the other two are smaller than it.

:func:`classify` reads the sweep of one entry:

- ``"truncation"`` or ``"rounding"``: at some step the error is small (its relative error
  below the warn bound, or both gradients zero to rounding at the largest step:
  :func:`fastcheck.report.policy.zero_to_rounding`), so the gradient
  is right; the check's own step lies above that best step (truncation: a smaller eps, or
  ``stencil=4``, fixes it) or below it (rounding: a larger eps does);
- ``"bug"``: at no step is the error small, and it stays within ``FLAT_FACTOR`` of its least
  value over at least ``FLAT_STEPS`` consecutive steps: a real error of the analytic gradient;
- ``"unresolved"``: at no step is the error small, but it is not flat either (truncation and
  rounding overlap: a cost of large curvature and large value), or it is flat but smaller
  than the error the check flagged at its own step (that one is noise), which a sweep cannot settle;
- ``"kink"``: the entry is at a kink of the cost (the engine saw it cross one, or its one-sided
  differences show a tie at some swept step): a kink's error is flat too (half the jump of
  the one-sided differences, at every step larger than the kink's distance), so a flat error
  there is no sign of a bug; it is never called one.

The sweep never changes a verdict: it is evaluated only for entries the verdict already
flagged, and says why (see :mod:`fastcheck.pipeline.sweep`).
"""

from __future__ import annotations

import numpy as np

from .policy import MEASURED_FACTOR, zero_to_rounding

__all__ = ["SWEEP_STEPS", "FLAT_FACTOR", "FLAT_STEPS", "KINDS", "classify"]

#: The steps of a sweep, from large to small.
SWEEP_STEPS = tuple(10.0 ** -k for k in range(3, 10))
#: A flat error stays within this factor of its least value ...
FLAT_FACTOR = 3.0
#: ... over at least this many consecutive steps (two decades) to count as a bug.
FLAT_STEPS = 3
#: The kinds of sweep, as :func:`classify` names them.
KINDS = ("bug", "rounding", "truncation", "unresolved", "kink")


def _eps(h: float) -> str:
    return f"{h:.0e}".replace("e-0", "e-")


def _slope(steps: np.ndarray, errors: np.ndarray, least: float) -> float | None:
    """The least-squares slope of log(error) against log(step) on one arm of the sweep, over the
    points clearly above its floor (``FLAT_FACTOR`` times the ``least`` error) when there are two,
    else over all of them; None with fewer than 2 usable points."""
    use = np.isfinite(errors) & (errors > 0)
    if (use & (errors > FLAT_FACTOR * least)).sum() >= 2:
        use &= errors > FLAT_FACTOR * least
    if use.sum() < 2:
        return None
    return float(np.polyfit(np.log10(steps[use]), np.log10(errors[use]), 1)[0])


def _flat_run(errors: np.ndarray, best: int) -> tuple[int, int]:
    """The steps ``lo..hi`` (inclusive) around ``best`` whose errors stay within FLAT_FACTOR of the least."""
    limit = FLAT_FACTOR * errors[best]
    lo = hi = best
    while lo > 0 and errors[lo - 1] <= limit:
        lo -= 1
    while hi < len(errors) - 1 and errors[hi + 1] <= limit:
        hi += 1
    return lo, hi


# one entry's sweep, as the report holds it (no state object for one call)
def classify(label: str, steps, errors, numeric, analytic: float, rounding, eps: float,  # noqa: PLR0913
             warn: float, kink: str = "", noise: float = 0.0) -> tuple[str, str]:
    """The kind of an entry's sweep, and the sentence that says it with its numbers.

    Parameters
    ----------
    label : str
        The entry, as the report names it (``"W2[3, 7]"``).
    steps : sequence of float, shape (s,)
        The steps swept, from large to small.
    errors, numeric, rounding : sequence of float, shape (s,)
        At each step: ``|numeric - analytic|``, the central difference and its rounding scale
        (NaN where the step is lost in rounding at this coordinate).
    analytic : float
    eps : float
        The check's own (nominal) step at this entry.
    warn : float
        The warn bound: a relative error below it is small.
    kink : {"", "kink", "tie"}
        Whether the entry is at a kink the engine saw it cross (``"kink"``) or at a tie its
        one-sided differences show (``"tie"``): its flat error is then no bug.
    noise : float
        The cost's own noise (sigma of J) measured at this entry (:mod:`fastcheck.pipeline.noise`),
        0 where not measured: an error at the check's own step within ``MEASURED_FACTOR`` times
        ``noise / eps`` is that noise, whatever its slope.

    Returns
    -------
    kind : {"bug", "rounding", "truncation", "unresolved", "kink"}
    sentence : str

    Examples
    --------
    >>> steps = np.array([1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9])
    >>> classify("W2[3, 7]", steps, np.full(7, 4e-2), np.full(7, 1.04), 1.0, 1e-16 / steps, 1e-7, 1e-6)[1]
    'W2[3, 7]: the error is flat at 4.0e-02 from eps = 1e-3 to 1e-9: a real bug'
    """
    steps, errors = np.asarray(steps, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    numeric, rounding = np.asarray(numeric, dtype=np.float64), np.asarray(rounding, dtype=np.float64)
    known = np.isfinite(errors)
    if not known.any():
        return "unresolved", f"{label}: every swept step is lost in rounding at this coordinate"
    best = int(np.nanargmin(np.where(known, errors, np.nan)))
    with np.errstate(invalid="ignore"):
        small = known & (errors < warn * (np.abs(numeric) + abs(analytic)))
        # zero to rounding, judged at the largest step (the least rounding): at tiny steps anything is
        small[0] |= bool(known[0] and zero_to_rounding(np.array([analytic]), numeric[:1], rounding[:1])[0])
    gives = f"eps = {_eps(steps[best])} gives {errors[best]:.1e}"
    if small.any():
        if eps > steps[best]:
            slope = _slope(steps[:best + 1], errors[:best + 1], errors[best])
            shown = f", slope {slope:.1f} above eps = {_eps(steps[best])}" if slope is not None else ""
            return "truncation", (f"{label}: the error follows truncation (\u221d eps\u00b2{shown}); {gives}: "
                                  "a smaller eps (or stencil=4) fixes it, not a bug")
        if eps < steps[best]:
            slope = _slope(steps[best:], errors[best:], errors[best])
            shown = f", slope {slope:.1f} below eps = {_eps(steps[best])}" if slope is not None else ""
            return "rounding", f"{label}: the error follows rounding (\u221d 1/eps{shown}); {gives}: not a bug"
        return "rounding", (f"{label}: the error is smallest at the check's own step ({gives}), within "
                            "rounding: not a bug")
    run = _flat_run(np.where(known, errors, np.inf), best)
    own = int(np.argmin(np.abs(np.log(steps / eps))))  # the swept step nearest the check's own
    if kink:
        return "kink", _kink_sentence(label, kink, steps, errors, run, gives)
    if run[1] - run[0] + 1 >= FLAT_STEPS:
        level = float(np.median(errors[run[0]:run[1] + 1]))
        flat = f"the error is flat at {level:.1e} from eps = {_eps(steps[run[0]])} to {_eps(steps[run[1]])}"
        if known[own] and errors[own] > FLAT_FACTOR * level:
            return "unresolved", (f"{label}: {flat}, but at the check's own step it is {errors[own]:.1e} (eps = "
                                  f"{_eps(steps[own])}): the error flagged there is the cost's noise, over a flat "
                                  "error that a bug of that size or a kink near theta would give")
        if not _within_noise(errors[own], noise, steps[own]):
            return "bug", f"{label}: {flat}: a real bug"
    if _within_noise(errors[own], noise, steps[own]):
        least = errors[best] / (abs(numeric[best]) + abs(analytic))
        return "rounding", (f"{label}: at eps = {_eps(steps[own])} the error ({errors[own]:.1e}) is within the cost's "
                            f"own noise, measured at {noise:.1e} (~{noise / steps[own]:.1e} in a central difference "
                            f"there); no swept step brings its relative error below the warn bound (the least, "
                            f"{gives}, is {least:.1e} relative): the cost's rounding, no bug shown (compute the cost "
                            "stably, or check with a larger eps)")
    return "unresolved", (f"{label}: the error is never small (least {errors[best]:.1e}, at eps = "
                          f"{_eps(steps[best])}) and not flat: truncation and rounding overlap (try stencil=4), or a "
                          "bug of that size")


def _within_noise(error: float, noise: float, h: float) -> bool:
    return bool(noise > 0 and error <= MEASURED_FACTOR * noise / h)


def _kink_sentence(label: str, kink: str, steps, errors, run: tuple[int, int], gives: str) -> str:
    span = (f"flat at {np.median(errors[run[0]:run[1] + 1]):.1e} from eps = {_eps(steps[run[0]])} to "
            f"{_eps(steps[run[1]])}" if run[1] > run[0] else f"least where {gives}")
    if kink == "tie":
        return (f"{label}: at a tie, where the analytic gradient is one side's derivative (a subgradient) and the "
                f"central difference the average of both sides; its error ({span}) is the kink's, which no step "
                "removes: not a bug")
    return (f"{label}: at a kink the perturbation crosses; its error ({span}) is what a kink gives at every step "
            "larger than its distance, so the sweep tells no bug from it (the verdict's tie test does: a gradient "
            "wrong on both sides of a kink still fails)")
