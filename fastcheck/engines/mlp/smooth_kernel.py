"""The Numba kernel of the smooth shortcut (:mod:`fastcheck.engines.mlp.smooth`): loops only."""

from __future__ import annotations

import numba
import numpy as np

from ...core.jit import JIT_OPTIONS

__all__ = ["polynomial_sums"]

#: Coordinates per parallel task (each task allocates its buffers once).
BLOCK = 64


@numba.njit(parallel=True, **JIT_OPTIONS)
def polynomial_sums(coefs, ain, rows, cols, d_plus, d_minus, sum_plus, sum_minus):
    """``sums[p] = sum_e t_e (c_1 + t_e (c_2 + ... t_e c_N))``, ``t_e = d_p ain[k_p, e]``, both signs.

    coefs (n_l, N, m): the Taylor coefficients of each example's loss change in the change
    of row j of Z_l (zero for the examples left to the general path); ain (n_{l-1} + 1, m):
    ``[A_{l-1}; 1]``; rows, cols (P,) int64: j and k of each coordinate; d_plus, d_minus
    (P,): the steps taken. Writes sum_plus, sum_minus (P,), each summed in example order.
    """
    n_coefs, m = coefs.shape[1], coefs.shape[2]
    n_blocks = (rows.size + BLOCK - 1) // BLOCK
    for b in numba.prange(n_blocks):
        t = np.empty(m)
        acc = np.empty(m)
        for p in range(b * BLOCK, min(rows.size, (b + 1) * BLOCK)):
            c, x = coefs[rows[p]], ain[cols[p]]
            for sign in range(2):
                d = d_plus[p] if sign == 0 else d_minus[p]
                for e in range(m):
                    t[e] = d * x[e]
                    acc[e] = c[n_coefs - 1, e]
                for n in range(n_coefs - 2, -1, -1):
                    cn = c[n]
                    for e in range(m):
                        acc[e] = cn[e] + t[e] * acc[e]
                total = 0.0
                for e in range(m):
                    total += t[e] * acc[e]
                if sign == 0:
                    sum_plus[p] = total
                else:
                    sum_minus[p] = total
