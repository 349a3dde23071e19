"""The finite-difference formula, the step rule, the metric and the verdict bands."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "DEFAULT_EPS",
    "EPS_RANGE",
    "DEFAULT_WARN",
    "DEFAULT_FAIL",
    "VERDICTS",
    "Bounds",
    "worst_verdict",
    "validate_eps",
    "central_difference",
    "coordinate_steps",
    "coordinate_gradient",
    "require_steps",
    "AUTO",
    "STENCILS",
    "STENCIL_ROUNDING",
    "AUTO_RELATIVE",
    "auto_steps",
    "step_at",
    "stencil_gradient",
    "relative_difference",
    "relative_errors",
]

#: The method's step: (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps).
DEFAULT_EPS = 1e-7
#: Steps outside this range are refused: below it float64 rounding swamps the
#: difference, above it the truncation error of the central difference does.
EPS_RANGE = (1e-12, 1e-1)
#: ``eps="auto"``: a step per coordinate from its magnitude (:func:`auto_steps`).
AUTO = "auto"
#: The stencils of the coordinate modes: 2 points (the central difference, O(eps^2)
#: truncation) or 4 (O(eps^4), :func:`stencil_gradient`).
STENCILS = (2, 4)
#: The auto step relative to ``max(1, |theta_i|)``, per stencil: ``2**-52`` to the power
#: ``1 / (order + 1)``, the step that balances truncation (``~ eps^order``) against rounding
#: (``~ 1 / eps``): 6.1e-6 for the central difference (SciPy's rule for its 3-point
#: scheme), 7.4e-4 for the 4-point stencil.
AUTO_RELATIVE = {2: float(np.finfo(np.float64).eps) ** (1 / 3), 4: float(np.finfo(np.float64).eps) ** (1 / 5)}
#: How far rounding moves a stencil's difference, in rounding scales of the central
#: difference at the same step (``|J| 2**-52 / eps``): ``(4 r + r / 2) / 3`` for the 4-point one.
STENCIL_ROUNDING = {2: 1.0, 4: 1.5}
#: The verdict bounds: ``pass`` below DEFAULT_WARN (the method's "great"), ``fail`` from
#: DEFAULT_FAIL on (the method's "worry").
DEFAULT_WARN = 1e-6
DEFAULT_FAIL = 1e-3
#: The verdicts, from best to worst.
VERDICTS = ("pass", "warn", "fail")


def _short(x: float) -> str:
    """``1e-12``, ``1e-1``: a power of ten as people write it."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


def validate_eps(eps, where: str = "`eps`") -> float | str:
    """Return ``eps`` as a float (or ``"auto"``); raise :class:`InputError` (naming ``where``) if out of range."""
    if isinstance(eps, str) and eps == AUTO:
        return AUTO
    lo, hi = EPS_RANGE
    ok = isinstance(eps, (int, float, np.integer, np.floating)) and not isinstance(eps, bool) \
        and math.isfinite(eps) and lo <= eps <= hi
    if not ok:
        raise InputError(f"{where}: expected a step in [{_short(lo)}, {_short(hi)}] (below it float64 rounding "
                         f"swamps the difference, above it truncation does; the method uses {DEFAULT_EPS:g}), "
                         f"or 'auto' (a step per coordinate from its magnitude), got {eps!r}")
    return float(eps)


@dataclass(frozen=True)
class Bounds:
    """Verdict bands: ``pass`` below ``warn``, ``warn`` below ``fail``, else ``fail``.

    The defaults are the method's (:data:`DEFAULT_WARN`, :data:`DEFAULT_FAIL`). This is the
    one place a difference becomes a verdict: the report, its HTML page and the benchmark
    table all ask :meth:`verdict`.
    """

    warn: float = DEFAULT_WARN
    fail: float = DEFAULT_FAIL

    def __post_init__(self):
        for name in ("warn", "fail"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"verdict bound `{name}`={value!r} must be a positive number")
        if not self.warn <= self.fail:
            raise InputError(f"verdict bounds need warn <= fail, got warn={self.warn:g}, fail={self.fail:g}")

    def verdict(self, difference: float) -> str:
        """The band of ``difference``: ``"pass"``, ``"warn"`` or ``"fail"`` (NaN fails)."""
        if not difference < self.fail:  # NaN fails too
            return "fail"
        return "pass" if difference < self.warn else "warn"


def worst_verdict(verdicts) -> str:
    """The worst of ``verdicts`` (``"fail"`` over ``"warn"`` over ``"pass"``); ``"pass"`` when empty.

    Examples
    --------
    >>> worst_verdict(["pass", "warn", "pass"])
    'warn'
    """
    return max(verdicts, key=VERDICTS.index, default="pass")


def central_difference(cost_plus, cost_minus, eps: float):
    """``(J+ - J-) / (2 eps)``, elementwise: the directions mode's difference.

    A direction's analytic side already takes the steps its rounded entries actually
    took (``u = (s+ + s-) / 2 eps``, see :mod:`fastcheck.core.directions`), so its
    numeric side divides by the nominal ``2 eps``. Coordinates divide by their own
    steps instead: :func:`coordinate_gradient`.
    """
    return (np.asarray(cost_plus) - np.asarray(cost_minus)) / (2.0 * eps)


def auto_steps(theta: np.ndarray, stencil: int = 2) -> np.ndarray:
    """``eps="auto"``: each coordinate's step, ``AUTO_RELATIVE[stencil] * max(1, |theta_i|)``.

    Parameters
    ----------
    theta : ndarray of float64, shape (n,)
    stencil : {2, 4}

    Returns
    -------
    ndarray of float64, shape (n,)

    Notes
    -----
    The rule of SciPy's ``approx_derivative`` (``scipy.optimize._numdiff``: the step
    ``EPS**(1/3) * max(1, |x0|)`` of its central 3-point scheme): the truncation error of
    the central difference is about ``eps^2 |J^(3)| / 6`` and its rounding error about
    ``|J| 2**-52 / eps``; with ``J^(3)`` of the order of ``J`` over the parameter's scale
    cubed, their sum is smallest near ``eps = (2**-52)^(1/3)`` times that scale, taken as
    ``max(1, |theta_i|)`` (relative for large parameters, absolute near 0). The cost's
    own scale cancels from that balance; it enters the rounding scale the report
    divides by each coordinate's step. The 4-point stencil truncates as ``eps^4``:
    ``(2**-52)^(1/5)``, by the same balance.

    Examples
    --------
    >>> auto_steps(np.array([0.5, -300.0]))
    array([6.05545445e-06, 1.81663634e-03])
    """
    return AUTO_RELATIVE[stencil] * np.maximum(1.0, np.abs(np.asarray(theta, dtype=np.float64)))


def step_at(eps, indices) -> float | np.ndarray:
    """The nominal steps of coordinates ``indices``: ``eps`` itself (one step for all), or
    ``eps[indices]`` (per-coordinate steps over all of theta, as ``eps="auto"`` gives)."""
    return eps if np.ndim(eps) == 0 else np.asarray(eps)[np.asarray(indices, dtype=np.int64)]


def coordinate_steps(values, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The steps the rounded perturbed coordinates take: ``h+ = fl(v + eps) - v``, ``h- = v - fl(v - eps)``.

    Parameters
    ----------
    values : ndarray of float64, shape (k,)
        The unperturbed coordinates ``theta[indices]``.
    eps : float or ndarray of float64, shape (k,)
        The nominal steps (one, or one per coordinate: see :func:`step_at`).

    Returns
    -------
    h_plus, h_minus : ndarray of float64, shape (k,)
        ``theta_i + h_plus`` and ``theta_i - h_minus`` are exactly the perturbed values
        ``fl(theta_i + eps)`` and ``fl(theta_i - eps)`` an engine sets (the subtraction
        of two floats this close is exact). Both are 0 where ``theta_i +- eps`` rounds
        back to ``theta_i``.
    """
    values = np.asarray(values, dtype=np.float64)
    return (values + eps) - values, values - (values - eps)


def coordinate_gradient(cost_plus, cost_minus, values, eps: float) -> np.ndarray:
    """Central differences of coordinates over the steps actually taken: ``(J+ - J-) / (h+ + h-)``.

    Every engine's coordinate modes compute their numeric gradient here.

    Parameters
    ----------
    cost_plus, cost_minus : ndarray of float64, shape (k,)
        J(theta + h+ e_i) and J(theta - h- e_i), or their changes from J(theta) (engines
        that compute changes pass those: only the difference matters).
    values : ndarray of float64, shape (k,)
        The unperturbed coordinates ``theta[indices]``.
    eps : float or ndarray of float64, shape (k,)
        The nominal step(s).

    Returns
    -------
    ndarray of float64, shape (k,)
        NaN where both steps vanish (``theta_i +- eps`` rounds back to ``theta_i``);
        checks refuse such coordinates beforehand (:func:`require_steps`).

    Notes
    -----
    Dividing by the nominal ``2 eps`` is off by the rounding of the perturbed values,
    about ``ulp(theta_i) / eps`` relative: 2% at ``|theta_i| = 1e7`` with ``eps = 1e-7``,
    enough to fail an exact gradient. The steps themselves are exact (see
    :func:`coordinate_steps`), and so is their sum, so the only error left is the
    truncation error of the central difference. Where ``theta_i`` is far below ``eps``
    (``theta_i + eps`` rounds to ``eps``), the steps round to ``eps`` too, as the
    perturbed values do.

    Examples
    --------
    >>> theta = np.array([1e7 + 0.25])
    >>> cost = lambda t: 0.5 * (t - 1e7) ** 2   # J'(theta) = 0.25; (J+ - J-) / 2 eps gives 0.2515
    >>> float(coordinate_gradient(cost(theta + 1e-7), cost(theta - 1e-7), theta, 1e-7)[0])
    0.25
    """
    h_plus, h_minus = coordinate_steps(values, eps)
    steps = h_plus + h_minus
    difference = np.asarray(cost_plus, dtype=np.float64) - np.asarray(cost_minus, dtype=np.float64)
    out = np.full(difference.shape, np.nan)
    np.divide(difference, steps, out=out, where=steps != 0.0)
    return out


def stencil_gradient(near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """The 4-point stencil from central differences at steps h and 2h: ``(4 D(h) - D(2h)) / 3``.

    With exact steps this is ``(-J(theta+2h) + 8 J(theta+h) - 8 J(theta-h) + J(theta-2h)) / 12h``,
    whose truncation error is O(h^4): the h^2 terms of the two central differences cancel.
    Each central difference divides by the steps it actually took
    (:func:`coordinate_gradient`), so a step rounded by ``theta_i`` costs no accuracy.

    Examples
    --------
    >>> theta, h, J = np.array([0.5]), 2.0**-6, np.exp
    >>> near = coordinate_gradient(J(theta + h), J(theta - h), theta, h)
    >>> far = coordinate_gradient(J(theta + 2 * h), J(theta - 2 * h), theta, 2 * h)
    >>> four = (-J(0.5 + 2 * h) + 8 * J(0.5 + h) - 8 * J(0.5 - h) + J(0.5 - 2 * h)) / (12 * h)
    >>> bool(np.isclose(stencil_gradient(near, far)[0], four, rtol=1e-14, atol=0))
    True
    """
    return (4.0 * np.asarray(near, dtype=np.float64) - np.asarray(far, dtype=np.float64)) / 3.0


def require_steps(theta: np.ndarray, eps, describe, where: str = "`eps`") -> None:
    """Raise :class:`InputError` if ``theta_i +- eps`` rounds back to ``theta_i`` for some entry.

    There no difference can be measured: such an entry would be checked against 0/0.
    ``describe(i)`` names entry i (``'W1[0, 3]'``); ``where`` names the setting. ``eps``
    is one step or one per coordinate (shape (n,)).
    """
    h_plus, h_minus = coordinate_steps(theta, eps)
    lost = np.flatnonzero(h_plus + h_minus == 0.0)
    if lost.size:
        i = int(lost[np.argmax(np.abs(theta[lost]))])
        others = f" (and {lost.size - 1} other entries)" if lost.size > 1 else ""
        first = int(lost[0])
        raise InputError(f"{where}: {float(step_at(eps, first)):g} is lost in rounding at {describe(first)} = "
                         f"{theta[first]:g}"
                         f"{others}: theta +- eps rounds back to theta, so no difference can be measured there; "
                         f"use eps >= {float(np.spacing(abs(theta[i]))):.2g} (the spacing of float64 at "
                         f"{abs(theta[i]):g}), or rescale the parameters")


def relative_difference(numeric: np.ndarray, analytic: np.ndarray) -> float:
    """``||numeric - analytic||_2 / (||numeric||_2 + ||analytic||_2)``, with 0/0 = 0."""
    numeric = np.asarray(numeric, dtype=np.float64)
    analytic = np.asarray(analytic, dtype=np.float64)
    largest = max(float(np.max(np.abs(numeric), initial=0.0)), float(np.max(np.abs(analytic), initial=0.0)))
    if 0.0 < largest < np.inf:
        # scaled by a power of two (exact) near 1: the squares inside the norms neither underflow (1e-160 squared
        # is subnormal, its digits lost) nor overflow; in between, the figure is bit for bit the unscaled one
        scale = np.ldexp(1.0, -int(np.frexp(largest)[1]))
        numeric, analytic = numeric * scale, analytic * scale
    denominator = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(numeric - analytic) / denominator)


def relative_errors(numeric: np.ndarray, analytic: np.ndarray) -> np.ndarray:
    """The same formula per entry: ``|n - a| / (|n| + |a|)``, with 0/0 = 0."""
    abs_error = np.abs(numeric - analytic)
    denominator = np.abs(numeric) + np.abs(analytic)
    out = np.zeros_like(abs_error)
    np.divide(abs_error, denominator, out=out, where=denominator > 0)
    return out
