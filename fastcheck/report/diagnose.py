"""Diagnoses of a wrong gradient's shape, from one group's analytic and numeric values.

Each diagnosis is a cheap, robust test of one pattern that hand-written backprop gets
wrong; it is stated only when the pattern explains the group's error almost entirely:
the *residual*, ``||analytic - explained|| / ||analytic - numeric||``, is at most
``EXPLAINED``, and the sentence gives it. The patterns, tried in this order:

- an all-zero analytic gradient (not computed, or not returned);
- a constant factor (``analytic ~ c * numeric``; c = -1 is a sign flip; c = m, the
  number of examples, is a missing 1/m);
- an error proportional to the parameters themselves (``analytic - numeric ~ a * theta``):
  an L2 term missing (a = -l2/m), doubled (a = +l2/m) or wrongly scaled;
- the same value in every entry (a sum over the wrong axis);
- the right gradient flipped along some of its axes (a convolution kernel: correlation
  vs convolution);
- the right gradient with its axes permuted and reshaped back (a transpose; NCHW vs NHWC);
- an error constant along one axis (a missing mean or sum over that axis: a centering term);
- a constant factor on the wrong entries only, the others right (a derivative mask);
- only a few wrong entries, named.

The shapes that rearrange entries (flips, permutations, constant along an axis) need the
whole group checked. Which group's gradient was returned in another's place is a question
across groups: see :mod:`fastcheck.report.layers`.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["diagnose_group", "explained_by", "EXPLAINED", "MAX_PERMUTED_AXES"]

#: A pattern must leave at most this fraction of the error unexplained.
EXPLAINED = 0.05
#: Permutations of axes are tried for groups of at most this many axes (5! = 120 orders).
MAX_PERMUTED_AXES = 5
#: "A few" wrong entries: at most this many, and fewer than a tenth of those checked.
FEW = 5


def _fit_factor(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares c in y ~ c x, and the relative residual ||y - c x|| / ||y - x||."""
    denominator = float(x @ x)
    if denominator == 0.0:
        return np.nan, np.inf
    c = float(x @ y) / denominator
    error = np.linalg.norm(y - x)
    return c, float(np.linalg.norm(y - c * x) / error) if error > 0 else np.inf


def explained_by(analytic: np.ndarray, explained: np.ndarray, numeric: np.ndarray) -> float:
    """The residual of an explanation: ``||analytic - explained|| / ||analytic - numeric||``."""
    error = np.linalg.norm(analytic - numeric)
    return float(np.linalg.norm(analytic - explained) / error) if error > 0 else np.inf


def _fit(residual: float) -> str:
    return f" (fit residual {residual:.1e})"


def _describe_factor(c: float, m: int | None, residual: float) -> str:
    fit = _fit(residual)
    if abs(c) < 1e-3:
        return (f"the analytic gradient is nearly zero ({c:.3g} times the numeric one){fit}: not computed, or not "
                "returned?")
    if abs(c + 1) < 1e-3:
        return f"the analytic gradient is the negative of the numeric one{fit}: a sign flip (A - Y vs Y - A?)"
    if m and abs(c - m) < 1e-3 * m:
        return (f"the analytic gradient is {c:.4g} times the numeric one (= m, the number of examples){fit}: "
                "a missing 1/m")
    if m and abs(c - 1 / m) < 1e-3 / m:
        return f"the analytic gradient is 1/{m} of the numeric one{fit}: divided by m once too often"
    k = _whole(abs(c))
    if k:  # a user's cost does not tell the batch size: a whole factor is the likeliest one
        return (f"the analytic gradient is {c:.4g} times the numeric one (= {'-' * (c < 0)}{k}){fit}: a missing "
                f"1/{k} (a sum where the cost takes a mean over {k} examples?)")
    k = _whole(1 / abs(c))
    if k:
        return (f"the analytic gradient is {c:.4g} times the numeric one (= {'-' * (c < 0)}1/{k}){fit}: divided by "
                f"{k} once too often (a mean over {k} examples where the cost takes a sum?)")
    return f"the analytic gradient is {c:.4g} times the numeric one{fit}: a stray constant factor"


def _whole(x: float) -> int | None:
    """``x`` as a whole number from 3 to 100,000 to within 1e-3 of itself (the factor rule's
    tolerance), else None; 2 is too common a slip (a squared term's 1/2) to name a cause for."""
    k = round(x)
    return k if 3 <= k <= 100_000 and abs(x - k) < 1e-3 * k else None


def _zeros(numeric, labels) -> str:
    top = int(np.argmax(np.abs(numeric)))
    return (f"the analytic gradient is all zeros where the numeric one is not (it reaches {numeric[top]:.3e} at "
            f"{labels([top])[0]}): not computed, or not returned?")


def _factor(values, analytic, numeric, m, l2, is_weight) -> str | None:
    c, residual = _fit_factor(numeric, analytic)
    if m and l2 and is_weight:  # the bug may scale the data term only, leaving (l2/m) W right
        decay = (l2 / m) * values
        c_data, residual_data = _fit_factor(numeric - decay, analytic - decay)
        if residual_data < residual:
            c, residual = c_data, residual_data
            if residual <= EXPLAINED and np.isfinite(c):
                return "apart from its (right) L2 term, " + _describe_factor(c, m, residual)
    if residual <= EXPLAINED and np.isfinite(c):
        return _describe_factor(c, m, residual)
    return None


def _decay(values, analytic, numeric, m, l2) -> str | None:
    error = analytic - numeric
    a, residual = _fit_factor(values, error + values)  # error ~ a * values  <=>  error + values ~ (1 + a) values
    a -= 1.0
    if not (residual <= EXPLAINED and np.isfinite(a) and a != 0):
        return None
    if m and l2:
        if abs(a + l2 / m) < 1e-3 * l2 / m:
            return (f"the error is -(l2/m) * the parameters (l2/m = {l2 / m:.4g}){_fit(residual)}: the L2 term is "
                    "missing")
        if abs(a - l2 / m) < 1e-3 * l2 / m:
            return (f"the error is +(l2/m) * the parameters (l2/m = {l2 / m:.4g}){_fit(residual)}: the L2 term is "
                    "counted twice")
    return (f"the error is {a:.4g} * the parameters themselves{_fit(residual)}: an L2 (weight decay) term missing or "
            "wrongly scaled?")


def _same_value(analytic, numeric) -> str | None:
    if len(analytic) > 2 and np.ptp(analytic) <= 1e-12 * max(np.abs(analytic).max(), 1e-300) and np.ptp(numeric) > 0:
        return (f"every entry of the analytic gradient has the same value ({analytic[0]:.4g}; the numeric ones span "
                f"{numeric.min():.3g} to {numeric.max():.3g}): a sum over the wrong axis "
                "(np.sum without axis=1, keepdims=True)?")
    return None


def _axes(axes) -> str:
    return f"axis {axes[0]}" if len(axes) == 1 else "axes " + ", ".join(map(str, axes))


def _flip(shape, analytic, numeric) -> str | None:
    """The best flip along a subset of the axes longer than one, if it explains the error."""
    long = [k for k, n in enumerate(shape) if n > 1]
    positions = np.arange(len(numeric)).reshape(shape)
    best = (np.inf, ())
    for r in range(1, len(long) + 1):
        for axes in itertools.combinations(long, r):
            residual = explained_by(analytic, numeric[np.flip(positions, axes).reshape(-1)], numeric)
            best = min(best, (residual, axes))
    residual, axes = best
    if residual > EXPLAINED:
        return None
    if len(shape) >= 3 and axes == tuple(range(len(shape) - 2, len(shape))):
        why = ": the kernel rotated by 180 degrees, correlation vs convolution?"
    elif len(shape) == 1:
        why = ": the entries in reverse order?"
    else:
        why = ": an index running the wrong way?"
    return f"the analytic gradient is the right one flipped along {_axes(axes)}{_fit(residual)}{why}"


def _permutation(shape, analytic, numeric) -> str | None:
    """The right gradient transposed to another order of axes and reshaped back to the shape."""
    long = [k for k, n in enumerate(shape) if n > 1]  # moving axes of length one changes nothing
    if len(long) > MAX_PERMUTED_AXES or len(long) < 2:
        return None
    right = numeric.reshape(shape)
    units = [k for k in range(len(shape)) if k not in long]
    best = (np.inf, ())
    for moved_long in itertools.permutations(long):
        if list(moved_long) == long:
            continue
        order = tuple(moved_long) + tuple(units)
        moved = np.ascontiguousarray(right.transpose(order)).reshape(-1)
        best = min(best, (explained_by(analytic, moved, numeric), order))
    residual, order = best
    if residual > EXPLAINED:
        return None
    if len(shape) == 2:
        return f"the analytic gradient is the transpose of the right one, reshaped back to the shape{_fit(residual)}"
    return (f"the analytic gradient is the right one with its axes in the order {order}, reshaped back to the "
            f"shape{_fit(residual)}: a layout mix-up (NCHW vs NHWC)?")


def _constant_along(shape, analytic, numeric) -> str | None:
    """The error the same along one axis (varying along the others): a missing mean or sum."""
    error = (analytic - numeric).reshape(shape)
    best = (np.inf, -1)
    for k, n in enumerate(shape):
        if n > 1:
            spread = error - error.mean(axis=k, keepdims=True)
            best = min(best, (float(np.linalg.norm(spread) / np.linalg.norm(error)), k))
    residual, k = best
    if residual > EXPLAINED:
        return None
    everywhere = float(np.linalg.norm(error - error.mean()) / np.linalg.norm(error))
    if sum(n > 1 for n in shape) == 1 or everywhere <= EXPLAINED:  # constant along every axis, not just one
        return (f"the error is the same in every entry ({float(error.mean()):.3e}){_fit(max(residual, everywhere))}: "
                "a missing constant term (a mean or a sum)?")
    return (f"the error is constant along axis {k} (length {shape[k]}){_fit(residual)}: a missing mean or sum over "
            "that axis (a centering term, like batch norm's -mean(dxhat))?")


def _masked_factor(analytic, numeric, wrong) -> str | None:
    """A constant factor on the wrong entries, the others right: a mask applied, or missing
    (the analytic gradient nonzero where the numeric one is zero)."""
    count = int(wrong.sum())
    if count <= FEW or count == len(analytic):
        return None
    how = f"{count} of {len(analytic)} entries"
    error = np.linalg.norm(analytic - numeric)
    off = np.linalg.norm(analytic[~wrong] - numeric[~wrong])  # what the pattern leaves outside the wrong entries
    c, _ = _fit_factor(numeric[wrong], analytic[wrong])
    fits = [(float(np.hypot(off, np.linalg.norm(numeric[wrong])) / error),
             f"the analytic gradient is nonzero on {how} where the numeric one is zero")]
    if np.isfinite(c):
        fits.append((float(np.hypot(off, np.linalg.norm(analytic[wrong] - c * numeric[wrong])) / error),
                     f"the analytic gradient is zero on {how} where the numeric one is not" if abs(c) < 1e-3 else
                     f"on {how} the analytic gradient is {c:.4g} times the numeric one"))
    residual, what = min(fits)
    if not residual <= EXPLAINED:
        return None
    return (f"{what}, and the others are right{_fit(residual)}: a derivative mask applied where it should not be, "
            "or missing (only the positive pre-activations?)")


def diagnose_group(shape: tuple[int, ...], values: np.ndarray, analytic: np.ndarray, numeric: np.ndarray,
                   wrong: np.ndarray, labels, *, m: int | None = None, l2: float | None = None,
                   is_weight: bool = False) -> str | None:
    """One sentence on what is wrong with a failing group, or None when no pattern fits.

    Parameters
    ----------
    shape : tuple of int
        The group's shape.
    values, analytic, numeric : ndarray of shape (k,)
        Parameter values and the two gradients at the checked entries (flat, C order;
        all of the group when ``k`` equals its size).
    wrong : ndarray of bool, shape (k,)
        The entries counted as wrong.
    labels : callable ``labels(positions) -> list of str``
        Names of the entries at the given positions.
    m, l2 : optional
        Number of examples and L2 strength, when known (the built-in MLP).
    is_weight : bool
        The group carries the L2 term (a weight matrix of the built-in MLP).

    Returns
    -------
    str or None
        The pattern, its evidence (the fit's residual, or the values) and the likely line.
    """
    if not np.any(analytic - numeric):
        return None
    if not np.any(analytic):
        return _zeros(numeric, labels)
    whole = len(analytic) == (int(np.prod(shape)) if shape else 1)
    tests = [lambda: _factor(values, analytic, numeric, m, l2, is_weight),
             lambda: _decay(values, analytic, numeric, m, l2), lambda: _same_value(analytic, numeric)]
    if whole:
        tests += [lambda: _flip(shape, analytic, numeric), lambda: _permutation(shape, analytic, numeric),
                  lambda: _constant_along(shape, analytic, numeric)]
    tests.append(lambda: _masked_factor(analytic, numeric, wrong))
    for test in tests:
        sentence = test()
        if sentence:
            return sentence
    count = int(wrong.sum())
    if 0 < count <= FEW and count < len(analytic) / 10:
        names = ", ".join(labels(np.flatnonzero(wrong)))
        return f"only {count} of {len(analytic)} checked entries {'is' if count == 1 else 'are'} wrong: {names}"
    return None
