"""Benchmarks of the traced engine on user-style numpy models, side by side with the black-box loop.

Run ``python -m pytest benchmarks/test_bench_traced.py --benchmark-columns=median,rounds``.
Groups, one per model (the models are the tests' ``tests/traced_models.py``, written as users
write them):

- ``traced-course-mlp``: deeplearning.ai layout 784-120-40-1 (ReLU hidden, sigmoid output,
  BCE + L2), m = 64, 99,081 parameters;
- ``traced-cnn``: conv 3x3 x16 (np.pad + sliding_window_view + einsum) on 8x3x32x32, ReLU,
  2x2 max-pool, dense, softmax, 41,418 parameters;
- ``traced-rnn``: a vanilla character RNN, n_a = 64, 27 characters, T = 20, 7,643 parameters;
- ``traced-M``: the design's network M (784-128-64-10, ReLU, softmax + cross-entropy, L2 0.1,
  m = 64, 109,386 parameters) written as plain numpy, checked with ``fc.check``, beside
  ``fc.MLP(...).check`` on the same parameters, data and gradient in the same run
  (``mlp_check_s``, ``ratio_to_mlp_check``);
- ``traced-softmax-shift``: softmax regression with the max-shift line, N = 3,000, D = 300,
  4 classes, 1,200 parameters.

Each ``full`` row times what a full check costs the traced engine: trace, verification
against the real cost, and every coordinate. ``extra_info`` holds the black-box engine with
``n_jobs=1`` (the reference loop) timed on a seeded sample of coordinates and extrapolated
to all of them (``blackbox_full_s``) and the ratio to the traced median, the time of the
trace alone (``trace_s``, and in cost evaluations' worth, ``trace_in_evaluations``; both
with one BLAS thread, as every engine runs the cost) and the peak of memory allocated
during a full run (``peak_mb``, from tracemalloc, which numpy reports to). Wall-clock
numbers depend on the machine and its load.

Measured (one run of the ``full`` rows and M, 2-core AMD EPYC, quiet: load average 0.2 at
the start and 0.5 at the end): course MLP 0.17 s against 82 s (478x); CNN 0.51 s against
1,226 s (2,394x); RNN 0.18 s against 4.4 s (24x); network M as plain numpy 0.23 s against
0.045 s for ``fc.MLP.check`` (5.2x). At load 1.6 to 3.5 wall-clock ratios swing (RNN 21-22x,
M 4.2-5.6x); one thread's CPU time (``n_threads=1``, ``time.process_time``, minimum of 7) is
steadier: the RNN's full check 0.185 s against 4.3 s for the black-box loop (23-24x). The
README's performance section has the table.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.core.threads import single_threaded
from fastcheck.engines.blackbox.dispatch import blackbox_engine
from fastcheck.engines.traced import traced_engine
from fastcheck.engines.traced.tracing import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the user-style models live with the tests
from traced_models import cnn, course_mlp, plain_mlp, rnn, softmax_regression  # noqa: E402

EPS = 1e-7
#: Coordinates the black-box loop is timed on (seeded, every group represented by chance).
BLACKBOX_SAMPLE = 200

MODELS = {
    "course-mlp": lambda: course_mlp(sizes=(784, 120, 40, 1), m=64, hidden="relu"),
    "cnn": lambda: cnn(N=8, C=3, HW=32, F=16, classes=10),
    "rnn": lambda: rnn(n_a=64, vocab=27, T=20),
    "softmax-shift": lambda: softmax_regression(),
}
_BUILT: dict = {}


def _problem(name):
    if name not in _BUILT:
        cost, params, _ = MODELS[name]()
        layout, theta = Layout.from_params(params)
        objective = CostObjective(cost, layout)
        objective.base(theta)
        _BUILT[name] = (cost, layout, theta, objective)
    return _BUILT[name]


def _full_check(objective, layout, theta):
    engine = traced_engine(objective, layout, theta, EPS)
    return engine.coordinates(np.arange(layout.n_params))


def _blackbox_on_sample(objective, layout, theta) -> float:
    indices = np.sort(np.random.default_rng(0).choice(layout.n_params, BLACKBOX_SAMPLE, replace=False))
    tic = time.perf_counter()
    blackbox_engine(objective, theta, indices, EPS, n_jobs=1)
    return (time.perf_counter() - tic) * layout.n_params / BLACKBOX_SAMPLE


@pytest.mark.parametrize("name", list(MODELS))
def test_traced_full_check(benchmark, name):
    cost, layout, theta, objective = _problem(name)
    benchmark.group = f"traced-{name}"
    _full_check(objective, layout, theta)  # warm up (allocator, BLAS)
    ev = benchmark.pedantic(_full_check, args=(objective, layout, theta), rounds=3, iterations=1)
    assert np.isfinite(ev.numeric).all()
    median = float(benchmark.stats.stats.median) if benchmark.stats else float("nan")

    with single_threaded():  # as the engines run the cost (one BLAS thread), so the ratios compare like with like
        trace_s = _median_seconds(lambda: trace(cost, layout, theta), rounds=5)
        cost_s = _median_seconds(lambda: objective.evaluate(theta), rounds=5)
    tracemalloc.start()
    try:
        _full_check(objective, layout, theta)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    blackbox_s = _blackbox_on_sample(objective, layout, theta)
    benchmark.extra_info.update(
        n_params=layout.n_params, cost_ms=1e3 * cost_s, trace_s=trace_s, trace_in_evaluations=trace_s / cost_s,
        peak_mb=peak / 2**20, blackbox_sample=BLACKBOX_SAMPLE, blackbox_extrapolated=True,
        blackbox_full_s=blackbox_s, ratio_blackbox_to_traced=blackbox_s / median)


@pytest.mark.parametrize("name", list(MODELS))
def test_trace_alone(benchmark, name):
    cost, layout, theta, _ = _problem(name)
    benchmark.group = f"traced-{name}"
    benchmark.pedantic(trace, args=(cost, layout, theta), rounds=5, iterations=1)


def _median_seconds(call, rounds=3) -> float:
    times = []
    for _ in range(rounds):
        tic = time.perf_counter()
        call()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def test_plain_numpy_network_against_mlp_check(benchmark):
    """fc.check on network M written as plain numpy, and fc.MLP.check on the same problem, side by side."""
    cost, params, grads, net, X, Y = plain_mlp(sizes=(784, 128, 64, 10), m=64, l2=0.1)
    benchmark.group = "traced-M"
    mlp_check = lambda: net.check(params, grads, X, Y)  # noqa: E731
    assert mlp_check().passed  # warm up (numba kernels compiled or loaded from the cache)
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "traced" and report.passed
    benchmark.pedantic(fc.check, args=(cost, params, grads), rounds=3, iterations=1)
    median = float(benchmark.stats.stats.median) if benchmark.stats else float("nan")
    mlp_s = _median_seconds(mlp_check)
    benchmark.extra_info.update(n_params=net.n_params, mlp_check_s=mlp_s, ratio_to_mlp_check=median / mlp_s)
