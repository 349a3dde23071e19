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
    "relative_difference",
    "relative_errors",
]

#: The method's step: (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps).
DEFAULT_EPS = 1e-7
#: Steps outside this range are refused: below it float64 rounding swamps the
#: difference, above it the truncation error of the central difference does.
EPS_RANGE = (1e-12, 1e-1)
#: The verdict bounds: ``pass`` below DEFAULT_WARN (the method's "great"), ``fail`` from
#: DEFAULT_FAIL on (the method's "worry").
DEFAULT_WARN = 1e-6
DEFAULT_FAIL = 1e-3
#: The verdicts, from best to worst.
VERDICTS = ("pass", "warn", "fail")


def _short(x: float) -> str:
    """``1e-12``, ``1e-1``: a power of ten as people write it."""
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


def validate_eps(eps, where: str = "`eps`") -> float:
    """Return ``eps`` as a float, or raise :class:`InputError` (naming ``where``) if it is out of range."""
    lo, hi = EPS_RANGE
    ok = isinstance(eps, (int, float, np.integer, np.floating)) and not isinstance(eps, bool) \
        and math.isfinite(eps) and lo <= eps <= hi
    if not ok:
        raise InputError(f"{where}: expected a step in [{_short(lo)}, {_short(hi)}] (below it float64 rounding "
                         f"swamps the difference, above it truncation does; the method uses {DEFAULT_EPS:g}), "
                         f"got {eps!r}")
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
    """``(J+ - J-) / (2 eps)``, elementwise."""
    return (np.asarray(cost_plus) - np.asarray(cost_minus)) / (2.0 * eps)


def relative_difference(numeric: np.ndarray, analytic: np.ndarray) -> float:
    """``||numeric - analytic||_2 / (||numeric||_2 + ||analytic||_2)``, with 0/0 = 0."""
    numeric = np.asarray(numeric, dtype=np.float64)
    analytic = np.asarray(analytic, dtype=np.float64)
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
