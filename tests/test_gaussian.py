"""The directions' standard normals: the numba kernel and the numpy twin agree bit for bit,
streams do not depend on how they are cut, and the draws are standard normal."""

import math

import numpy as np
import pytest

from fastcheck.core import gaussian
from fastcheck.core.gaussian import NUMBA_DRAWS, ZIGGURAT, standard_normal, stream_key
from fastcheck.core.gaussian_kernel import PIECE, fill_streams


def _tasks(*tasks):
    """``(key, row, start, stop)`` tasks as fill_streams' arrays."""
    keys, rows, starts, stops = zip(*tasks)
    return np.array(keys, dtype=np.uint64), *(np.array(v, dtype=np.int64) for v in (rows, starts, stops))


def _kernel(key: int, n: int) -> np.ndarray:
    out = np.empty((1, n))
    fill_streams(out, *_tasks((key, 0, 0, n)), ZIGGURAT)
    return out[0]


@pytest.mark.parametrize("seed", [(0, 1, 0), (7, 3, 12), (2**40, 1, 5)])
def test_the_numpy_twin_draws_the_kernels_bits(seed):
    key = stream_key(seed)
    n = 3 * PIECE + 1234  # several pieces, about 1,500 rejected words, a few dozen in the tail
    twin = np.empty(n)
    gaussian._fill_numpy(np.array([key], dtype=np.uint64), np.array([n]), twin)
    kernel = _kernel(key, n)
    assert np.array_equal(twin, kernel)
    other = stream_key((1, 1, 1))  # several streams at once, as the directions draw them: the same bits
    tasks = _tasks((other, 1, 3, 1003), (key, 0, 0, 5000), (other, 0, 6000, 6100))
    small, large = np.zeros((2, 6100)), np.zeros((2, NUMBA_DRAWS + 1))
    gaussian.fill_streams(small, *tasks)
    fill_streams(large, *tasks, ZIGGURAT)
    assert np.array_equal(small, large[:, :6100]) and np.array_equal(small[0, :5000], kernel[:5000])
    assert np.array_equal(small[1, 3:1003], _kernel(other, 1000)) and np.array_equal(small[0, 6000:], small[1, 3:103])
    assert (np.abs(kernel) > ZIGGURAT[3]).sum() > 10  # the tail beyond r was drawn, both ways


def test_a_stream_does_not_depend_on_how_it_is_cut_or_where_it_is_written():
    key, n = stream_key((3, 2, 1)), 2 * PIECE + 17
    whole = _kernel(key, n)
    out = np.zeros((3, n + 5))
    fill_streams(out, *_tasks((key, 2, 5, n + 5), (key, 0, 0, 100)), ZIGGURAT)
    assert np.array_equal(out[2, 5:], whole) and np.array_equal(out[0, :100], whole[:100])
    assert not out[1].any() and not out[0, 100:].any()
    assert np.array_equal(standard_normal(key, np.empty(100)), whole[:100])  # the twin's path
    assert np.array_equal(standard_normal(key, np.empty(n)), whole)  # the kernel's path
    assert not np.array_equal(_kernel(stream_key((3, 2, 2)), 100), whole[:100])


def test_the_draws_are_standard_normal():
    n = 2_000_000
    x = _kernel(stream_key((0, 0, 0)), n)
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((x ** 4).mean() - 3) < 5 * math.sqrt(96 / n)
    edges = np.concatenate([[-np.inf], np.linspace(-4.5, 4.5, 37), [np.inf]])
    counts, _ = np.histogram(x, edges)
    expected = np.diff([0.5 * math.erfc(-e / math.sqrt(2)) for e in edges]) * n
    assert np.max(np.abs(counts - expected) / np.sqrt(expected)) < 5  # every bin, the tails included
    tail = 2 * 0.5 * math.erfc(ZIGGURAT[3] / math.sqrt(2)) * n
    assert abs((np.abs(x) > ZIGGURAT[3]).sum() - tail) < 5 * math.sqrt(tail)
