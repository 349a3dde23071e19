"""Benchmarks of the traced engine on user-style numpy models, side by side with the black-box loop.

Run ``python -m pytest benchmarks/test_bench_traced.py --benchmark-columns=median,rounds``.
Groups, one per model (the models are the tests' ``tests/traced_models.py``, written as users
write them):

- ``traced-course-mlp``: deeplearning.ai layout 784-120-40-1 (ReLU hidden, sigmoid output,
  BCE + L2), m = 64, 99,081 parameters;
- ``traced-cnn``: conv 3x3 x16 (np.pad + sliding_window_view + einsum) on 8x3x32x32, ReLU,
  2x2 max-pool, dense, softmax, 41,418 parameters;
- ``traced-rnn``: a vanilla character RNN, n_a = 64, 27 characters, T = 20, 7,643 parameters;
- ``traced-softmax-shift``: softmax regression with the max-shift line, N = 3,000, D = 300,
  4 classes, 1,200 parameters.

Each ``full`` row times what a full check costs the traced engine: trace, verification
against the real cost, and every coordinate. ``extra_info`` holds the black-box engine with
``n_jobs=1`` (the reference loop) timed on a seeded sample of coordinates and extrapolated
to all of them (``blackbox_full_s``) and the ratio to the traced median, the time of the
trace alone (``trace_s``, and in cost evaluations' worth, ``trace_in_evaluations``) and the
peak of memory allocated during a full run (``peak_mb``, from tracemalloc, which numpy
reports to). Wall-clock numbers depend on the machine and its load.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.blackbox.dispatch import blackbox_engine
from fastcheck.engines.traced import traced_engine
from fastcheck.engines.traced.tracing import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the user-style models live with the tests
from traced_models import cnn, course_mlp, rnn, softmax_regression  # noqa: E402

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

    tic = time.perf_counter()
    trace(cost, layout, theta)
    trace_s = time.perf_counter() - tic
    tic = time.perf_counter()
    for _ in range(5):
        objective.evaluate(theta)
    cost_s = (time.perf_counter() - tic) / 5
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
