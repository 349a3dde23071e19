"""The numba kernel of the directions' standard normals (:mod:`fastcheck.core.gaussian`).

Imported only for large draws; smaller ones take the numpy twin, which computes the same bits.
"""

import math

import numba
import numpy as np

from .jit import JIT_OPTIONS
from .threads import in_chunks

__all__ = ["fill_streams"]

#: Streams are filled in pieces of at most this many entries, a few per thread.
PIECE = 1 << 16


def fill_streams(out: np.ndarray, keys: np.ndarray, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                 ziggurat: tuple) -> None:
    """Fill ``out[rows[t], starts[t]:stops[t]]`` with the first entries of the stream ``keys[t]``, for each task t.

    ``out`` (k, n) C-contiguous float64; ``keys`` uint64, ``rows``, ``starts``, ``stops``
    int64, one per task; ``ziggurat`` the tables, :data:`fastcheck.core.gaussian.ZIGGURAT`.
    The tasks are cut into pieces of at most :data:`PIECE` entries, run in ranges on
    numba's number of threads (:func:`fastcheck.core.threads.in_chunks`).
    """
    pieces = [(t, row, start, lo, min(lo + PIECE, stop - start))
              for t, (row, start, stop) in enumerate(zip(rows.tolist(), starts.tolist(), stops.tolist()))
              for lo in range(0, stop - start, PIECE)]
    table = np.array([p[1:] for p in pieces], dtype=np.int64).reshape(-1, 4)
    piece_keys = keys[np.array([p[0] for p in pieces], dtype=np.intp)]
    ki, wi, fi, r, inv_r = ziggurat
    in_chunks(len(pieces), numba.get_num_threads(),
              lambda first, last: _fill(out, piece_keys, table, first, last, ki, wi, fi, r, inv_r))


@numba.njit(**JIT_OPTIONS)
def _mix(z):
    """SplitMix64's finaliser."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(**JIT_OPTIONS)
def _rejected(word, ki, wi, fi, r, inv_r):
    """The standard normal of an entry whose first word ``word`` the ziggurat rejected."""
    golden, unit = np.uint64(0x9E3779B97F4A7C15), 1.0 / 9007199254740992.0
    state = np.uint64(0)
    seeded = False
    while True:
        idx = word & np.uint64(0xFF)
        rabs = (word >> np.uint64(9)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = rabs * wi[idx]
        if (word >> np.uint64(8)) & np.uint64(1):
            x = -x
        if rabs < ki[idx]:
            return x
        if not seeded:  # a rejected first word seeds the entry's own stream
            state, seeded = _mix(word), True
        if idx == 0:  # the tail beyond r
            while True:
                state += golden
                xx = -inv_r * math.log1p(-((_mix(state) >> np.uint64(11)) * unit))
                state += golden
                yy = -math.log1p(-((_mix(state) >> np.uint64(11)) * unit))
                if yy + yy > xx * xx:
                    return -(r + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else r + xx
        state += golden
        u = (_mix(state) >> np.uint64(11)) * unit
        if (fi[idx - 1] - fi[idx]) * u + fi[idx] < math.exp(-0.5 * x * x):
            return x
        state += golden
        word = _mix(state)


@numba.njit(**JIT_OPTIONS)
def _fill(out, keys, table, first, last, ki, wi, fi, r, inv_r):
    """Pieces ``first <= p < last``: entries ``lo <= i < hi`` of the stream ``keys[p]`` into ``out[row, start + i]``.

    ``table[p]`` is ``(row, start, lo, hi)``.
    """
    golden = np.uint64(0x9E3779B97F4A7C15)
    for p in range(first, last):
        row, start, lo, hi = table[p, 0], table[p, 1], table[p, 2], table[p, 3]
        key = keys[p]
        for i in range(lo, hi):
            word = _mix(key + np.uint64(i + 1) * golden)
            idx = word & np.uint64(0xFF)
            rabs = (word >> np.uint64(9)) & np.uint64(0x000FFFFFFFFFFFFF)
            if rabs < ki[idx]:  # 99% of the entries
                x = np.int64(rabs) * wi[idx]
                out[row, start + i] = -x if (word >> np.uint64(8)) & np.uint64(1) else x
            else:
                out[row, start + i] = _rejected(word, ki, wi, fi, r, inv_r)
