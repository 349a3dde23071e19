"""Diagnoses of a wrong gradient's shape, from a failing group's analytic and numeric values.

Each diagnosis is a cheap, robust test of one pattern that hand-written backprop gets
wrong; it is stated only when the pattern explains the group's error almost entirely
(the residual after the explanation is at most ``EXPLAINED`` of the error).

- a constant factor (``analytic ~ c * numeric``; c = -1 is a sign flip; c = m, the
  number of examples, is a missing 1/m);
- an error proportional to the parameters themselves (``analytic - numeric ~ a * theta``):
  an L2 term missing (a = -l2/m), doubled (a = +l2/m) or wrongly scaled;
- the transpose of the right gradient, reshaped back to the group's shape;
- the same value in every entry (a sum over the wrong axis);
- only a few wrong entries, named.
"""

from __future__ import annotations

import numpy as np

__all__ = ["diagnose_group", "EXPLAINED"]

#: A pattern must leave at most this fraction of the error unexplained.
EXPLAINED = 0.05


def _fit_factor(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares c in y ~ c x, and the relative residual ||y - c x|| / ||y - x||."""
    denominator = float(x @ x)
    if denominator == 0.0:
        return np.nan, np.inf
    c = float(x @ y) / denominator
    error = np.linalg.norm(y - x)
    return c, float(np.linalg.norm(y - c * x) / error) if error > 0 else np.inf


def _describe_factor(c: float, m: int | None) -> str:
    if abs(c + 1) < 1e-3:
        return "the analytic gradient is the negative of the numeric one: a sign flip (A - Y vs Y - A?)"
    if m and abs(c - m) < 1e-3 * m:
        return f"the analytic gradient is {c:.4g} times the numeric one (= m, the number of examples): a missing 1/m"
    if m and abs(c - 1 / m) < 1e-3 / m:
        return f"the analytic gradient is 1/{m} of the numeric one: divided by m once too often"
    return f"the analytic gradient is {c:.4g} times the numeric one: a stray constant factor"


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
    """
    error = analytic - numeric
    if not np.any(error):
        return None
    c, residual = _fit_factor(numeric, analytic)
    if m and l2 and is_weight:  # the bug may scale the data term only, leaving (l2/m) W right
        decay = (l2 / m) * values
        c_data, residual_data = _fit_factor(numeric - decay, analytic - decay)
        if residual_data < residual:
            c, residual = c_data, residual_data
            if residual <= EXPLAINED and np.isfinite(c):
                return "apart from its (right) L2 term, " + _describe_factor(c, m)
    if residual <= EXPLAINED and np.isfinite(c):
        return _describe_factor(c, m)
    a, residual = _fit_factor(values, error + values)  # error ~ a * values  <=>  error + values ~ (1 + a) values
    a -= 1.0
    if residual <= EXPLAINED and np.isfinite(a) and a != 0:
        if m and l2:
            if abs(a + l2 / m) < 1e-3 * l2 / m:
                return f"the error is -(l2/m) * the parameters (l2/m = {l2 / m:.4g}): the L2 term is missing"
            if abs(a - l2 / m) < 1e-3 * l2 / m:
                return f"the error is +(l2/m) * the parameters (l2/m = {l2 / m:.4g}): the L2 term is counted twice"
        return (f"the error is {a:.4g} * the parameters themselves: "
                "an L2 (weight decay) term missing or wrongly scaled?")
    size = int(np.prod(shape)) if shape else 1
    if len(shape) == 2 and len(analytic) == size and shape[0] > 1 and shape[1] > 1:
        transposed = numeric.reshape(shape).T.reshape(-1)
        if np.linalg.norm(analytic - transposed) <= EXPLAINED * np.linalg.norm(error):
            return "the analytic gradient is the transpose of the right one, reshaped back to the shape"
    if len(analytic) > 2 and np.ptp(analytic) <= 1e-12 * max(np.abs(analytic).max(), 1e-300) and np.ptp(numeric) > 0:
        return ("every entry of the analytic gradient has the same value: a sum over the wrong axis "
                "(np.sum without axis=1, keepdims=True)?")
    count = int(wrong.sum())
    if 0 < count <= 5 and count < len(analytic) / 10:
        names = ", ".join(labels(np.flatnonzero(wrong)))
        return f"only {count} of {len(analytic)} checked entries are wrong: {names}"
    return None
