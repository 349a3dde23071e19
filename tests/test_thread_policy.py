"""A check's numbers do not depend on where the cost runs: the cost gets one BLAS (and numba)
thread in this process and in every worker, so a threaded BLAS, which splits a long product
differently with another thread count, cannot change its rounding between n_jobs=1 and 2,
threads, processes, a Dask cluster or batch_cost. (On a machine whose BLAS runs one thread, or
rounds these products alike with several, the bit-for-bit tests below hold trivially.)"""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.core.threads import blas_limited, in_chunks, numba_threads, single_threaded
from fastcheck.engines.blackbox import blackbox_engine
from fastcheck.engines.reference import reference_engine

EPS = 1e-7
RNG = np.random.default_rng(11)
# (128, 400) @ (400, 64): long enough that a two-thread BLAS rounds it differently here
X = RNG.standard_normal((128, 400))
B = RNG.standard_normal((400, 64)) / 20
PARAMS = {"w": RNG.standard_normal(400)}


def cost(p):
    return float(np.sum(np.tanh(X @ (B * p["w"][:, None]))))


def grads(p):
    return {"w": np.sum(B * (X.T @ (1 - np.tanh(X @ (B * p["w"][:, None])) ** 2)), axis=1)}


def batch_cost(thetas):
    """``cost`` row by row: the same products, so the same rounding."""
    return np.array([cost({"w": theta}) for theta in thetas])


def _objective():
    layout, theta = Layout.from_params(PARAMS)
    objective = CostObjective(cost, layout)
    objective.base(theta)
    return objective, theta, np.arange(layout.n_params, dtype=np.int64)


def _blas_threads() -> int:
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)


@pytest.fixture(scope="module")
def serial():
    objective, theta, indices = _objective()
    return reference_engine(objective, theta, indices, EPS)


@pytest.mark.parametrize("kw", [dict(n_jobs=2, chunk_size=50), dict(n_jobs=2, backend="threading", chunk_size=50),
                                dict(n_jobs=1, batch_cost=batch_cost), dict(n_jobs=2, batch_cost=batch_cost,
                                                                             chunk_size=50)])
def test_every_path_gives_the_serial_numbers_bit_for_bit(serial, kw):
    objective, theta, indices = _objective()
    comp = blackbox_engine(objective, theta, indices, EPS, **kw)
    np.testing.assert_array_equal(comp.cost_plus, serial.cost_plus)
    np.testing.assert_array_equal(comp.cost_minus, serial.cost_minus)


def test_a_dask_cluster_gives_the_serial_numbers_bit_for_bit(dask_client, serial):
    objective, theta, indices = _objective()
    comp = blackbox_engine(objective, theta, indices, EPS, backend="dask", chunk_size=50)
    np.testing.assert_array_equal(comp.numeric, serial.numeric)


def test_check_reports_the_same_difference_whatever_n_jobs():
    report = fc.check(cost, PARAMS, grads(PARAMS), engine="reference")  # the per-coordinate loop
    assert report.passed
    for kw in (dict(n_jobs=2, chunk_size=40), dict(n_jobs=2, backend="threading", chunk_size=40)):
        assert fc.check(cost, PARAMS, grads(PARAMS), **kw).difference == report.difference


def test_the_cap_is_restored_after_the_check():
    before = [lib["num_threads"] for lib in threadpool_info()]
    with single_threaded():
        assert all(lib["num_threads"] == 1 for lib in threadpool_info())
    objective, theta, indices = _objective()
    reference_engine(objective, theta, indices[:3], EPS)
    blackbox_engine(objective, theta, indices[:3], EPS, n_jobs=1, batch_cost=batch_cost)
    assert [lib["num_threads"] for lib in threadpool_info()] == before


def test_numba_threads_are_capped_and_restored():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with numba_threads(1) as n:
        assert n == numba.get_num_threads() == 1
    with numba_threads(10_000) as n:  # clipped to what numba has
        assert n == numba.config.NUMBA_NUM_THREADS
    with numba_threads(None) as n:
        assert n == before
    assert numba.get_num_threads() == before


@pytest.mark.parametrize(("n", "threads"), [(0, 2), (1, 2), (7, 1), (7, 2), (7, 16), (1000, 3)])
def test_in_chunks_covers_every_task_once(n, threads):
    seen = np.zeros(n, dtype=int)
    calls = []

    def run(first, last):
        calls.append((first, last))
        seen[first:last] += 1

    in_chunks(n, threads, run)
    np.testing.assert_array_equal(seen, np.ones(n, dtype=int))
    assert all(first < last for first, last in calls)  # no empty range is handed to a kernel
    if threads == 1 and n:
        assert calls == [(0, n)]


def test_in_chunks_raises_what_a_chunk_raised():
    def run(first, last):
        if first <= 5 < last:
            raise ValueError("chunk with task 5")

    with pytest.raises(ValueError, match="task 5"):
        in_chunks(10, 2, run)


def test_blas_limited_caps_blas_only():
    with blas_limited(1):
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")


def test_threads_side_by_side_keep_the_cap_until_the_last_leaves():
    """Tasks in the threads of one worker: the first to finish must not lift the others' cap."""
    import threading

    before = _blas_threads()
    if before < 2:
        pytest.skip("BLAS runs one thread here")
    first_in, first_out, seen = threading.Event(), threading.Event(), []

    def first():
        with single_threaded():
            first_in.set()
            first_out.wait(5)

    def second():
        first_in.wait(5)
        with single_threaded():
            first_out.set()
            time.sleep(0.05)  # the first thread leaves its block meanwhile
            seen.append(_blas_threads())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [1]
    assert _blas_threads() == before
