"""Standard normal draws from counter-based seeded streams: the random directions' numbers.

Entry ``i`` of the stream with key ``K`` starts from the 64-bit word ``mix(K + (i + 1) G)``
(SplitMix64: the golden-ratio increment ``G`` and its finaliser ``mix``) and turns it
into a standard normal by Marsaglia and Tsang's ziggurat (256 layers, 52-bit, as
numpy's): 99% of the words are accepted at once; a rejected one seeds a stream of its
own, ``mix(word) + G, + 2G, ...``, for the ziggurat's further draws. Every entry
depends only on its key and index, so a stream can be filled in any order, by
ranges, on threads. The numba kernel (:mod:`fastcheck.core.gaussian_kernel`, for large
draws) and the numpy twin here (small ones: no numba loaded) compute the same bits:
integer arithmetic, one float product per accepted entry, and the same ``math.exp`` /
``math.log1p`` of the C library for the rare rejections.

A stream's key is its seed (a tuple of integers) hashed by numpy's ``SeedSequence``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["stream_key", "standard_normal", "fill_streams", "ZIGGURAT", "NUMBA_DRAWS"]

#: Threshold of the tail, area of each layer (Marsaglia and Tsang's 256-layer constants).
_R, _V = 3.6541528853610088, 0.00492867323399
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
#: Above this many entries, the numba kernel fills a stream (fewer: numpy, without loading numba).
NUMBA_DRAWS = 200_000


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ziggurat's layers: ``ki`` (uint64 acceptance bounds), ``wi`` (widths per 2^-52), ``fi`` (densities)."""
    scale = 2.0 ** 52
    ki, wi, fi = np.zeros(256, dtype=np.uint64), np.zeros(256), np.zeros(256)
    dn = tn = _R
    q = _V / math.exp(-0.5 * dn * dn)
    ki[0], wi[0], wi[255] = int(dn / q * scale), q / scale, dn / scale
    fi[0], fi[255] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = int(dn / tn * scale)
        tn = dn
        fi[i], wi[i] = math.exp(-0.5 * dn * dn), dn / scale
    return ki, wi, fi


#: ``(ki, wi, fi, r, 1 / r)``, shared with the numba kernel.
ZIGGURAT = (*_tables(), _R, 1.0 / _R)


@functools.lru_cache(maxsize=65536)
def stream_key(seed) -> int:
    """The 64-bit key of the stream seeded by ``seed`` (an integer or a tuple of them; kept: hashing is slow)."""
    return int(np.random.SeedSequence(list(np.atleast_1d(seed))).generate_state(1, np.uint64)[0])


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, on uint64 arrays (wrapping as the kernel's)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(state: np.ndarray) -> np.ndarray:
    """The uniform in [0, 1) of each state's word (53 bits)."""
    return (_mix(state) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _libm(f, x: np.ndarray) -> np.ndarray:
    """``f`` (``math.exp``, ``math.log1p``: the C library's, as the kernel calls) entry by entry."""
    return np.array([f(v) for v in x.tolist()], dtype=np.float64)


def _tail(state: np.ndarray, rabs: np.ndarray) -> np.ndarray:
    """Normals beyond ``r`` for the entries at the ziggurat's base layer (their streams at ``state``)."""
    _, _, _, r, inv_r = ZIGGURAT
    out, todo = np.empty(state.size), np.arange(state.size)
    while todo.size:
        state[todo] += np.uint64(_GOLDEN)
        xx = -inv_r * _libm(math.log1p, -_uniform(state[todo]))
        state[todo] += np.uint64(_GOLDEN)
        yy = -_libm(math.log1p, -_uniform(state[todo]))
        ok = yy + yy > xx * xx
        done = todo[ok]
        out[done] = np.where((rabs[done] >> np.uint64(8)) & np.uint64(1), -(r + xx[ok]), r + xx[ok])
        todo = todo[~ok]
    return out


def _layer(word: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ziggurat's layer, magnitude bits, candidate normal and acceptance of each word."""
    ki, wi, _, _, _ = ZIGGURAT
    idx = (word & np.uint64(0xFF)).astype(np.intp)
    rabs = (word >> np.uint64(9)) & np.uint64(0x000FFFFFFFFFFFFF)
    x = rabs.astype(np.float64) * wi[idx]
    np.negative(x, out=x, where=((word >> np.uint64(8)) & np.uint64(1)).astype(bool))
    return idx, rabs, x, rabs < ki[idx]


def _fill_numpy(keys: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """The first ``counts[t]`` entries of each stream ``keys[t]``, one after the other into the 1-D ``out``.

    The kernel's steps, on all entries at once.
    """
    fi = ZIGGURAT[2]
    first = np.repeat(np.cumsum(counts) - counts, counts)  # where each entry's stream starts in ``out``
    index = np.arange(out.size, dtype=np.uint64) - first.astype(np.uint64) + np.uint64(1)
    words = _mix(np.repeat(keys.astype(np.uint64), counts) + index * np.uint64(_GOLDEN))
    idx, rabs, out[:], ok = _layer(words)
    todo = np.flatnonzero(~ok)  # the rejected entries, each with a stream of its own seeded by its word
    idx, rabs, x, state = idx[todo], rabs[todo], out[todo], _mix(words[todo])
    while todo.size:
        base = idx == 0
        if base.any():  # the tail beyond r
            out[todo[base]] = _tail(state[base], rabs[base])
            todo, idx, x, state = todo[~base], idx[~base], x[~base], state[~base]
        state += np.uint64(_GOLDEN)
        ok = (fi[idx - 1] - fi[idx]) * _uniform(state) + fi[idx] < _libm(math.exp, -0.5 * x * x)
        out[todo[ok]] = x[ok]
        todo, state = todo[~ok], state[~ok]
        state += np.uint64(_GOLDEN)
        idx, rabs, x, ok = _layer(_mix(state))
        out[todo[ok]] = x[ok]
        todo, idx, rabs, x, state = todo[~ok], idx[~ok], rabs[~ok], x[~ok], state[~ok]


def fill_streams(out: np.ndarray, keys: np.ndarray, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> None:
    """Fill ``out[rows[t], starts[t]:stops[t]]`` with the first entries of the stream ``keys[t]``, for each task t.

    ``out`` (k, n) C-contiguous float64; ``keys`` uint64, the others int64. More than
    :data:`NUMBA_DRAWS` entries in all are drawn by the numba kernel
    (:func:`fastcheck.core.gaussian_kernel.fill_streams`), fewer by its numpy twin.
    """
    if out.size > NUMBA_DRAWS:
        from .gaussian_kernel import fill_streams as kernel  # lazy: numba loads only for large draws

        kernel(out, keys, rows, starts, stops, ZIGGURAT)
        return
    counts = stops - starts
    values = np.empty(int(counts.sum()))
    _fill_numpy(keys, counts, values)
    offsets = np.repeat(rows * out.shape[1] + starts - (np.cumsum(counts) - counts), counts)
    out.reshape(-1)[offsets + np.arange(values.size)] = values


def standard_normal(key: int, out: np.ndarray) -> np.ndarray:
    """Fill the 1-D ``out`` with the first ``out.size`` standard normals of the stream ``key``, and return it."""
    flat = out if out.flags.c_contiguous else np.empty(out.size)
    one = [np.array([v], dtype=np.int64) for v in (0, 0, out.size)]
    fill_streams(flat.reshape(1, -1), np.array([key], dtype=np.uint64), *one)
    if flat is not out:
        out[...] = flat
    return out
