"""Random signed magnitudes from counter-based seeded streams: the default random directions' numbers.

A part of a direction over a block of ``rows * cols`` entries (a group, laid out as a
``rows``-by-``cols`` matrix: a weight matrix's rows, a vector's entries with ``cols`` 1)
is the outer product ``a b^T`` of two random vectors, ``a`` of ``rows`` entries and ``b``
of ``cols``, each entry a random sign times a random magnitude of :data:`MAGNITUDES`
(1 to 2 in sixteenths): a matrix of rank one. Entry ``i`` of the stream with key ``K``
comes from the 64-bit word ``mix(K + (i + 1) G)`` (SplitMix64, as
:mod:`fastcheck.core.gaussian`'s words): its top bit is the sign, the next four the
magnitude; ``a`` is the first ``rows`` entries, ``b`` the next ``cols``. Every entry
depends only on its key and index.

Why this distribution: every entry of a pattern has at most 10 significant bits, so a
step ``h`` with :data:`STEP_BITS` bits gives entries of at most 14, and ``theta +- h a_i
b_j`` is exact in float64 for all but freak values of theta (:func:`exactly_shifted`, |theta| of a few
hundred or more, or far below the step), with
no per-entry rounding to carry; and the rank one lets an engine take ``h a b^T A`` as ``h a
(b^T A)``, a product with one row instead of a whole matrix. For an error ``E`` of the part,
``a^T E b`` has the second moment of a Gaussian direction's projection up to the
magnitudes' mean square, and a single wrong entry moves it by between 1 and 4 times its
error (never by a small fraction of it, as a Gaussian entry near zero would). The
magnitudes are there for errors of equal size that signs alone cancel exactly half the
time (two entries swapped: ``a_i - a_k`` is 0 when the signs agree); with 16 magnitudes
they cancel when sign and magnitude both agree, one time in 32.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .gaussian import _mix

__all__ = ["sign_entries", "sign_factors", "sign_step", "step_binade", "exactly_shifted", "STEP_BITS", "MAGNITUDES"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Significant bits of a sign direction's step ``h`` (``eps`` over the pattern's norm, rounded to them).
STEP_BITS = 4
#: The magnitudes of a pattern's entries: 1, 1 + 1/16, ..., 1 + 15/16 (5 significant bits each).
MAGNITUDES = 1.0 + np.arange(16) / 16.0
#: The finest bit of an entry of a pattern ``h a_i b_j``, over h's finest bit (a product of two sixteenths).
_PATTERN_LOW = 2.0 ** -8
#: The largest entry of a pattern over ``h`` (just under 2 squared).
_PATTERN_HIGH = MAGNITUDES[-1] ** 2


def sign_entries(key: int, n: int) -> np.ndarray:
    """The first ``n`` entries (a random sign times a random magnitude of :data:`MAGNITUDES`) of the stream ``key``."""
    index = np.arange(1, n + 1, dtype=np.uint64)
    words = _mix(np.uint64(key) + index * _GOLDEN)
    sign = 1.0 - 2.0 * (words >> np.uint64(63)).astype(np.float64)
    return sign * MAGNITUDES[((words >> np.uint64(59)) & np.uint64(15)).astype(np.intp)]


@functools.lru_cache(maxsize=4096)
def sign_factors(key: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the two vectors of the rank-one pattern ``a b^T`` of the stream ``key`` (read-only).

    Kept for later calls: a direction over all of theta is made of the groups' patterns
    of the same number, and a check asks for a pattern's norm, steps and analytic side.
    """
    both = sign_entries(key, rows + cols)
    both.setflags(write=False)
    return both[:rows], both[rows:]


def sign_step(eps: float, norm: float) -> float:
    """The step ``h`` of a sign direction whose pattern has the norm ``norm``: ``eps / norm`` to :data:`STEP_BITS` bits.

    The step's norm, ``h * norm``, is ``eps`` to within 1/16 (half a unit of the fourth bit).
    """
    mantissa, exponent = math.frexp(eps / norm)
    scale = 1 << STEP_BITS
    return math.ldexp(round(mantissa * scale) / scale, exponent)


def step_binade(h: float) -> int:
    """The binade of a step, ``h < 2**binade``: what :func:`exactly_shifted` decides by (one pass per binade)."""
    return math.frexp(h)[1]


def exactly_shifted(base: np.ndarray, binade: int, top: int | None = None) -> bool:
    """Whether ``base + s`` and ``base - s`` are exact in float64 for every step ``s = h a_i b_j`` of every
    pattern, for any step ``h`` of :data:`STEP_BITS` bits in the binades ``binade`` to ``top`` (default:
    ``binade`` alone), below ``2**top``.

    Decided from ``base`` and the binade alone (whatever the patterns and steps): a
    nonzero entry ``t`` is an integer times its ``u = spacing(t)``; a step whose finest bit
    is no finer than ``u`` is an integer times ``u`` too, and any integer of magnitude
    below ``2**53`` times ``u`` is a float64, so ``t +- s`` is exact when ``|t| + max |s| <
    2**53 u``. The few entries within ``max |s|`` of the top of their binade (a sum there may
    need one bit more) are checked by TwoSum against every step the binade allows. A zero
    entry shifts exactly by any step; an entry far smaller than the step (whose finest bit
    is finer than the step's) is not vouched for.
    """
    top = binade if top is None else top
    finest = math.ldexp(_PATTERN_LOW, binade - STEP_BITS)  # the finest bit of any h a_i b_j with h >= 2**(binade-1)
    largest = math.ldexp(_PATTERN_HIGH, top)  # and a bound on its magnitude, h < 2**top
    magnitude = np.abs(base)
    if np.any(magnitude >= math.ldexp(finest, 53)):  # spacing(t) > finest: t is coarser than the step
        return False
    # |t| + max |s| < 2**53 spacing(t): the sum stays in t's binade (its exponent bits unchanged; a sum rounded
    # up to the next power of two counts as leaving it)
    near_top = (magnitude.view(np.int64) >> 52) != ((magnitude + largest).view(np.int64) >> 52)
    near_top &= base != 0.0
    if not near_top.any():
        return True
    if near_top.sum() > _NEAR_TOP_CHECKED:
        return False
    t = base[near_top][:, None]
    s = np.concatenate([_binade_steps(b) for b in range(binade, top + 1)])[None, :]
    return all(not (((t - ((t + v) - ((t + v) - t))) + (v - ((t + v) - t))) != 0.0).any() for v in (s, -s))


#: Entries near the top of their binade checked one by one (more: the group is not vouched for).
_NEAR_TOP_CHECKED = 64


def _binade_steps(binade: int) -> np.ndarray:
    """Every step ``h a_i b_j`` magnitude with ``h`` of :data:`STEP_BITS` bits in ``[2**(binade - 1), 2**binade)``."""
    scale = 1 << STEP_BITS
    hs = np.ldexp(np.arange(scale // 2, scale, dtype=np.float64) / scale, binade)
    products = np.unique(np.outer(MAGNITUDES, MAGNITUDES))
    return np.unique(np.outer(hs, products))
