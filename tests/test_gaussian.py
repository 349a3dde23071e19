"""The directions' standard normals: the numba kernel and the numpy twin agree bit for bit,
streams do not depend on how they are cut, and the draws are standard normal."""

import math

import numpy as np
import pytest

from fastcheck.core import gaussian
from fastcheck.core.gaussian import ZIGGURAT, standard_normal, stream_key
from fastcheck.core.gaussian_kernel import PIECE, fill_streams


def _kernel(key: int, n: int) -> np.ndarray:
    out = np.empty((1, n))
    fill_streams(out, *gaussian._task(key, 0, 0, n), ZIGGURAT)
    return out[0]


@pytest.mark.parametrize("seed", [(0, 1, 0), (7, 3, 12), (2**40, 1, 5)])
def test_the_numpy_twin_draws_the_kernels_bits(seed):
    key = stream_key(seed)
    n = 3 * PIECE + 1234  # several pieces, about 1,500 rejected words, a few dozen in the tail
    twin = np.empty(n)
    gaussian._fill_numpy(key, twin)
    kernel = _kernel(key, n)
    assert np.array_equal(twin, kernel)
    assert (np.abs(kernel) > ZIGGURAT[3]).sum() > 10  # the tail beyond r was drawn, both ways


def test_a_stream_does_not_depend_on_how_it_is_cut_or_where_it_is_written():
    key, n = stream_key((3, 2, 1)), 2 * PIECE + 17
    whole = _kernel(key, n)
    out = np.zeros((3, n + 5))
    fill_streams(out, np.array([key, key], dtype=np.uint64), np.array([2, 0]), np.array([5, 0]),
                 np.array([n + 5, 100]), ZIGGURAT)
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
