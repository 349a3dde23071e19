"""Benchmarks of the black-box engine (any user cost): workers, vectorized costs, overhead.

Run ``pytest benchmarks/test_bench_blackbox.py --benchmark-columns=median,rounds``.
Groups:

- ``blackbox-workers``: a CPU-bound ~1 ms cost (200,000 tanh, no BLAS) over
  2,000 parameters, checked exhaustively with ``n_jobs=1`` (the reference loop) and
  ``n_jobs=2``. 2,000 rather than 20,000 parameters keeps a round at seconds, not a
  minute; the per-task work, hence the speed-up, does not depend on n.
  ``extra_info["speedup"]`` on the n_jobs=2 row: serial median / parallel median.
- ``blackbox-batch``: a user-style numpy MLP 784-128-64-10 (m=64, softmax
  cross-entropy, L2) written with a batch axis as ``batch_cost``, against the
  per-coordinate loop on the same cost, both on the same seeded sample of coordinates
  (all 109,386 would take minutes). The loop is timed on a smaller seeded sample and
  extrapolated (``extra_info["loop_extrapolated"]``).
- ``blackbox-overhead``: a ~10 us cost, ``n_jobs=2`` against ``n_jobs=1``, for a tiny
  job (2,000 parameters, runs in process) and a ~1 s one (50,000 parameters).

Ratios are in ``extra_info``; wall-clock numbers depend on the machine and its load.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.blackbox import blackbox_engine
from fastcheck.engines.reference import reference_engine

EPS = 1e-7
_MEDIANS: dict = {}


# --------------------------------------------------------------------- a ~1 ms cost
_C = np.linspace(0.5, 1.5, 100)[:, None]


def smooth_cost(theta):
    """sum_k sum_i tanh(c_k theta_i): 200,000 tanh in cache, ~1 ms, no BLAS (CPU-bound)."""
    return float(np.sum(np.tanh(_C * theta)))


def smooth_grad(theta):
    return np.sum(_C * (1.0 - np.tanh(_C * theta) ** 2), axis=0)


def _median(benchmark) -> float:
    return float(benchmark.stats.stats.median) if benchmark.stats else float("nan")


@pytest.mark.benchmark(group="blackbox-workers")
@pytest.mark.heavy
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_workers_on_a_1ms_cost(benchmark, n_jobs):
    theta = np.random.default_rng(1).standard_normal(2000) * 0.01
    grad = smooth_grad(theta)
    fc.check(smooth_cost, theta, grad, n_jobs=n_jobs, chunk_size=100)  # warm up (start the workers)
    report = benchmark.pedantic(fc.check, args=(smooth_cost, theta, grad), kwargs={"n_jobs": n_jobs},
                                rounds=3, iterations=1)
    assert report.passed
    tic = time.perf_counter()
    smooth_cost(theta)
    benchmark.extra_info.update(n_params=theta.size, cost_ms=1e3 * (time.perf_counter() - tic))
    _MEDIANS[("workers", n_jobs)] = _median(benchmark)
    if n_jobs == 2 and ("workers", 1) in _MEDIANS:
        benchmark.extra_info["speedup"] = _MEDIANS[("workers", 1)] / _MEDIANS[("workers", 2)]


# --------------------------------------------------------------------- a user's batched MLP
SIZES = (784, 128, 64, 10)
M, LAMBDA = 64, 0.1


def _mlp_data():
    rng = np.random.default_rng(2)
    params = {}
    for l in range(1, len(SIZES)):
        params[f"W{l}"] = rng.standard_normal((SIZES[l], SIZES[l - 1])) * np.sqrt(2.0 / SIZES[l - 1])
        params[f"b{l}"] = np.zeros((SIZES[l], 1))
    X = rng.standard_normal((SIZES[0], M))
    Y = np.eye(SIZES[-1])[:, rng.integers(0, SIZES[-1], M)]
    return params, X, Y


_PARAMS, _MX, _MY = _mlp_data()
_SHAPES = [(k, v.shape) for k, v in _PARAMS.items()]


def _forward_loss(Ws, bs, X, Y):
    """Cross-entropy + L2 with an optional leading batch axis on Ws and bs."""
    A = X
    for l, (W, b) in enumerate(zip(Ws, bs)):
        Z = W @ A + b
        A = np.maximum(Z, 0.0) if l < len(Ws) - 1 else Z
    Z = A - A.max(axis=-2, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(axis=-2, keepdims=True))
    l2 = LAMBDA / (2 * M) * sum(np.sum(W ** 2, axis=(-2, -1)) for W in Ws)
    return -np.sum(Y * log_p, axis=(-2, -1)) / M + l2


def mlp_cost(p):
    L = len(SIZES) - 1
    return float(_forward_loss([p[f"W{l}"] for l in range(1, L + 1)], [p[f"b{l}"] for l in range(1, L + 1)],
                               _MX, _MY))


def mlp_batch_cost(thetas):
    parts, start = {}, 0
    for name, shape in _SHAPES:
        size = int(np.prod(shape))
        parts[name] = thetas[:, start:start + size].reshape(-1, *shape)
        start += size
    L = len(SIZES) - 1
    return _forward_loss([parts[f"W{l}"] for l in range(1, L + 1)], [parts[f"b{l}"] for l in range(1, L + 1)],
                         _MX, _MY)


@pytest.fixture(scope="module")
def mlp_problem():
    layout, theta = Layout.from_params(_PARAMS)
    objective = CostObjective(mlp_cost, layout)
    objective.base(theta)
    sample = np.sort(np.random.default_rng(3).choice(layout.n_params, size=2048, replace=False))
    return objective, theta, sample


@pytest.mark.benchmark(group="blackbox-batch")
@pytest.mark.heavy
def test_batch_cost_vs_the_loop_on_an_mlp(benchmark, mlp_problem):
    objective, theta, sample = mlp_problem
    loop_sample = sample[:: 8]  # 256 coordinates, seeded

    def batched():
        return blackbox_engine(objective, theta, sample, EPS, n_jobs=1, batch_cost=mlp_batch_cost, backend=None,
                               chunk_size=None, max_memory=None, progress=False)

    batched()
    ev = benchmark.pedantic(batched, rounds=3, iterations=1)
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        ref = reference_engine(objective, theta, loop_sample, EPS)
        times.append(time.perf_counter() - tic)
    loop = float(np.median(times)) * len(sample) / len(loop_sample)
    positions = np.searchsorted(sample, loop_sample)
    np.testing.assert_allclose(ev.numeric[positions], ref.numeric, rtol=1e-6, atol=1e-8)
    benchmark.extra_info.update(n_params=int(theta.size), sample=len(sample), loop_sample=len(loop_sample),
                                loop_extrapolated=True, loop_s=loop, speedup=loop / _median(benchmark),
                                full_check_batch_s_estimate=_median(benchmark) * theta.size / len(sample))


# --------------------------------------------------------------------- a ~10 us cost: overhead
_V = np.random.default_rng(4).standard_normal(2000)


def tiny_cost(theta):
    return float(np.sin(theta[:2000]) @ _V)


@pytest.mark.benchmark(group="blackbox-overhead")
@pytest.mark.parametrize("n_params", [2000, pytest.param(50_000, marks=pytest.mark.heavy)])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_overhead_on_a_10us_cost(benchmark, n_params, n_jobs):
    theta = np.random.default_rng(5).standard_normal(n_params)
    grad = np.zeros(n_params)
    grad[:2000] = np.cos(theta[:2000]) * _V
    fc.check(tiny_cost, theta, grad, n_jobs=n_jobs, chunk_size=n_params // 4)  # warm up (start the workers)
    report = benchmark.pedantic(fc.check, args=(tiny_cost, theta, grad), kwargs={"n_jobs": n_jobs},
                                rounds=7 if n_params < 10_000 else 3, iterations=1)
    assert report.passed
    _MEDIANS[("overhead", n_params, n_jobs)] = _median(benchmark)
    if n_jobs == 2 and ("overhead", n_params, 1) in _MEDIANS:
        benchmark.extra_info["serial_over_parallel"] = (_MEDIANS[("overhead", n_params, 1)]
                                                        / _MEDIANS[("overhead", n_params, 2)])
