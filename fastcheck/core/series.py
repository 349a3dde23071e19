"""Where a short Taylor series is exact: :data:`SERIES_BELOW`, one bound for every series of the package.

A perturbation's change of ``exp``, ``log1p``, ``tanh`` or ``1 / tanh`` is computed without cancellation from
identities in ``expm1(d)``, ``log1p(u)``, ``tanh(d)``, ``1 / tanh(d)``. For the arguments of a central
difference (about the step, far below 1) their series, cut after a few terms, equal the functions to far below
float64's rounding, and they need no library call (a loop of them vectorizes), so they are used below this
bound: every term left out is below ``2**-64`` of the first. Each series says where it is used how many terms
it keeps, and what the first term left out is at most.
"""

from __future__ import annotations

__all__ = ["SERIES_BELOW"]

#: Below this |argument|, the short series of expm1, log1p, tanh and 1 / tanh are exact to float64 rounding.
SERIES_BELOW = 2.0**-16
