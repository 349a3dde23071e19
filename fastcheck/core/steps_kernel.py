"""The numba kernel of exact symmetric direction steps (:func:`fastcheck.core.directions.direction_steps`).

Imported only for large sets of directions; smaller ones take the same arithmetic in
numpy, so a small check does not load numba.
"""

import numba

from .jit import JIT_OPTIONS
from .threads import in_chunks

__all__ = ["symmetric_steps"]


def symmetric_steps(base, raw, scales, out, inexact):
    """The steps the rounded perturbed parameters take, and whether they are symmetric.

    base (n,), raw (k, n) Gaussian draws, scales (k,) eps over their norms, out (k, n)
    (may be ``raw`` itself), inexact (k,) int64. Direction j's step is ``s_i = fl(base_i +
    raw_ji scales_j) - base_i``; ``inexact[j]`` counts the entries where TwoSum shows that
    ``base_i + s_i`` or ``base_i - s_i`` is not exact in float64 (an entry next to a power
    of two, or much smaller than its step). Directions run in ranges on numba's number of
    threads (:func:`fastcheck.core.threads.in_chunks`).
    """
    in_chunks(raw.shape[0], numba.get_num_threads(),
              lambda first, last: _symmetric_steps(base, raw, scales, out, inexact, first, last))


@numba.njit(**JIT_OPTIONS)
def _symmetric_steps(base, raw, scales, out, inexact, first, last):
    """:func:`symmetric_steps` for directions ``first <= j < last`` (serial: the caller runs ranges on threads)."""
    n = raw.shape[1]
    for j in range(first, last):
        scale = scales[j]
        count = 0
        for i in range(n):
            b = base[i]
            s = (b + raw[j, i] * scale) - b
            p = b + s
            p_b = p - b
            q = b - s
            q_b = q - b
            count += ((b - (p - p_b)) + (s - p_b) != 0.0) | ((b - (q - q_b)) + (-s - q_b) != 0.0)
            out[j, i] = s
        inexact[j] = count
