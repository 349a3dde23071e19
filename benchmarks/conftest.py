"""Benchmarks of the gradient-check engines on the design's networks S, M and L.

Run ``pytest benchmarks/`` for timings (pytest-benchmark; JSON with ``--benchmark-json``).

Groups are per network (``S``, ``M``, ``L``, and ``M-pairs``/``L-pairs`` for the other
hidden/loss pairs). Each batched row times an exhaustive ``net.check(..., engine="batched")``
after a warm-up call (JIT compiled and cached). The reference engine is far too slow to run
exhaustively, so each row's ``extra_info`` records the reference engine timed on a seeded
random sample of coordinates and extrapolated to all of them (``reference_extrapolated``,
``reference_sample``, ``reference_full_s``, ``ratio_batched_to_reference``), and the noise
floors (the difference reached by the correct gradient) of both engines.

Quick mode, for CI smoke runs: with ``--fast-bench``, or automatically with
``--benchmark-disable``, network L and benchmarks marked ``heavy`` are skipped and the reference sample shrinks to
``FAST_SAMPLE`` coordinates, so ``pytest benchmarks/ --benchmark-disable`` takes seconds.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastcheck.apps.networks import network
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp.objective import MLPObjective
from fastcheck.engines.reference import reference_engine

#: Reference-engine sample size in full runs, and in quick mode.
FULL_SAMPLE = 2000
FAST_SAMPLE = 100


def pytest_addoption(parser):
    parser.addoption("--fast-bench", action="store_true", default=False,
                     help="quick mode: skip network L and shrink the reference sample")
    parser.addoption("--baseline", default=None, metavar="CHECKOUT",
                     help="another checkout of fastcheck (its top folder) that the benchmarks run in a subprocess "
                          "time too, side by side (test_bench_cold.py, test_bench_modes.py)")


def pytest_configure(config):
    config.addinivalue_line("markers", "network_L: a benchmark of network L (skipped in quick mode)")
    config.addinivalue_line("markers", "heavy: a benchmark taking tens of seconds (skipped in quick mode)")


def _fast(config) -> bool:
    return bool(config.getoption("--fast-bench") or config.getoption("benchmark_disable", default=False))


def pytest_collection_modifyitems(config, items):
    if not _fast(config):
        return
    skip_l = pytest.mark.skip(reason="network L is skipped in quick mode (--fast-bench / --benchmark-disable)")
    skip_heavy = pytest.mark.skip(reason="heavy benchmarks are skipped in quick mode")
    for item in items:
        if "network_L" in item.keywords:
            item.add_marker(skip_l)
        elif "heavy" in item.keywords:
            item.add_marker(skip_heavy)


@pytest.fixture(scope="session")
def sample_size(pytestconfig) -> int:
    return FAST_SAMPLE if _fast(pytestconfig) else FULL_SAMPLE


_PROBLEMS: dict = {}


@pytest.fixture(scope="session")
def problem():
    """``problem(name, hidden, output) -> (net, params, X, Y, grads)``, built once per session."""

    def build(name, hidden="relu", output="softmax"):
        key = (name, hidden, output)
        if key not in _PROBLEMS:
            net, params, X, Y = network(name, hidden=hidden, output=output)
            _PROBLEMS[key] = (net, params, X, Y, net.gradient(params, X, Y))
        return _PROBLEMS[key]

    return build


def reference_on_sample(net, params, X, Y, grads, size: int, seed: int = 0) -> dict:
    """Time the reference engine on a seeded sample of coordinates and extrapolate.

    Returns the extra_info entries: sample size, seconds on the sample, extrapolated full
    time, and the noise floor (difference of the correct gradient) on the sample.
    """
    layout, theta = Layout.from_params(params)
    size = min(size, layout.n_params)
    indices = np.sort(np.random.default_rng(seed).choice(layout.n_params, size=size, replace=False))
    objective = MLPObjective(net, layout, X, Y)
    objective.base(theta)
    started = time.perf_counter()
    evaluations = reference_engine(objective, theta, indices, 1e-7)
    elapsed = time.perf_counter() - started
    analytic = layout.resolve_grads(grads, params)[indices]
    keep = ~evaluations.kinks
    from fastcheck.core.finite import relative_difference

    return {
        "reference_extrapolated": size < layout.n_params,
        "reference_sample": int(size),
        "reference_sample_s": elapsed,
        "reference_full_s": elapsed * layout.n_params / size,
        "reference_noise_floor": relative_difference(evaluations.numeric[keep], analytic[keep]),
    }
