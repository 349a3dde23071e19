"""Batched vs reference engine: exhaustive checks of S, M, L (see conftest.py for the modes)."""

from __future__ import annotations

import time

import pytest
from conftest import reference_on_sample

ROUNDS = {"S": 50, "M": 10, "L": 3}
#: Rounds of the other pairs.
PAIR_ROUNDS = {"M": 5, "L": 3}
PAIRS = [("tanh", "softmax"), ("sigmoid", "sigmoid"), ("identity", "identity")]


def _bench_batched(benchmark, problem, sample_size, name, hidden="relu", output="softmax", reference=True,
                   rounds=None):
    net, params, X, Y, grads = problem(name, hidden, output)

    def check():
        return net.check(params, grads, X, Y, engine="batched")

    warm = time.perf_counter()
    report = check()  # JIT warm-up (compiled once, then cached on disk)
    benchmark.extra_info["warmup_s"] = time.perf_counter() - warm
    result = benchmark.pedantic(check, rounds=rounds or ROUNDS[name], iterations=1)
    assert result.passed, str(report)
    info = benchmark.extra_info
    info.update(network=name, hidden=hidden, output=output, n_params=net.n_params,
                batched_noise_floor=result.difference, verdict=result.verdict)
    if reference:
        info.update(reference_on_sample(net, params, X, Y, grads, sample_size))
        stats = getattr(benchmark, "stats", None)
        batched_s = stats.stats.median if stats is not None else info["warmup_s"]
        info["batched_median_s"] = batched_s
        info["ratio_batched_to_reference"] = batched_s / info["reference_full_s"]


@pytest.mark.benchmark(group="S")
def test_batched_S(benchmark, problem, sample_size):
    _bench_batched(benchmark, problem, sample_size, "S")


@pytest.mark.benchmark(group="M")
def test_batched_M(benchmark, problem, sample_size):
    _bench_batched(benchmark, problem, sample_size, "M")


@pytest.mark.slow
@pytest.mark.network_L
@pytest.mark.benchmark(group="L")
def test_batched_L(benchmark, problem, sample_size):
    _bench_batched(benchmark, problem, sample_size, "L")


@pytest.mark.benchmark(group="M-pairs")
@pytest.mark.parametrize(("hidden", "output"), PAIRS)
def test_batched_M_pairs(benchmark, problem, sample_size, hidden, output):
    _bench_batched(benchmark, problem, sample_size, "M", hidden, output, reference=False,
                   rounds=PAIR_ROUNDS["M"])


@pytest.mark.slow
@pytest.mark.network_L
@pytest.mark.benchmark(group="L-pairs")
@pytest.mark.parametrize(("hidden", "output"), PAIRS)
def test_batched_L_pairs(benchmark, problem, sample_size, hidden, output):
    _bench_batched(benchmark, problem, sample_size, "L", hidden, output, reference=False,
                   rounds=PAIR_ROUNDS["L"])
