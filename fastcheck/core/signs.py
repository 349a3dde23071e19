"""Random sign patterns from counter-based seeded streams: the default random directions' numbers.

A part of a direction over a block of ``rows * cols`` entries (a group, laid out as a
``rows``-by-``cols`` matrix: a weight matrix's rows, a vector's entries with ``cols`` 1)
is the outer product ``a b^T`` of two random sign vectors, ``a`` of ``rows`` entries and
``b`` of ``cols``: entries of ``+-1``, a matrix of rank one. Entry ``i`` of the stream
with key ``K`` is the sign of the top bit of the 64-bit word ``mix(K + (i + 1) G)``
(SplitMix64, as :mod:`fastcheck.core.gaussian`'s words), ``a`` the first ``rows``
entries, ``b`` the next ``cols``. Every entry depends only on its key and index.

Why this distribution: every entry of a part has the same magnitude, so a step ``h``
with few significant bits makes ``theta +- h`` exact in float64 for all but freak
values of theta, with no per-entry rounding to carry; and the rank one lets an engine
take ``h a b^T A`` as ``h a (b^T A)``, a product with one row instead of a whole matrix.
For an error ``E`` of the part, ``a^T E b`` has the second moment ``||E||_F^2`` of a
Gaussian direction's projection, and a single wrong entry moves it by exactly its
error (never by a small fraction of it, as a Gaussian entry near zero would).
"""

from __future__ import annotations

import math

import numpy as np

from .gaussian import _mix

__all__ = ["signs", "sign_factors", "sign_step", "STEP_BITS"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Significant bits of a sign direction's step ``h`` (``eps / sqrt(n)`` rounded to them): a sum
#: ``theta + h`` stays exact while theta's last bit is no finer than h's.
STEP_BITS = 4


def signs(key: int, n: int) -> np.ndarray:
    """The first ``n`` signs (``+-1.0``) of the stream ``key``."""
    index = np.arange(1, n + 1, dtype=np.uint64)
    words = _mix(np.uint64(key) + index * _GOLDEN)
    return 1.0 - 2.0 * (words >> np.uint64(63)).astype(np.float64)


def sign_factors(key: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the two sign vectors of the rank-one pattern ``a b^T`` of the stream ``key``."""
    both = signs(key, rows + cols)
    return both[:rows], both[rows:]


def sign_step(eps: float, n: int) -> float:
    """The step of each entry of a sign direction over ``n`` entries: ``eps / sqrt(n)`` to :data:`STEP_BITS` bits.

    The step's norm, ``h sqrt(n)``, is ``eps`` to within 1/16 (half a unit of the fourth bit).
    """
    mantissa, exponent = math.frexp(eps / math.sqrt(n))
    scale = 1 << STEP_BITS
    return math.ldexp(round(mantissa * scale) / scale, exponent)
