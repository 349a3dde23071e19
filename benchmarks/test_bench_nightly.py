"""Checkpointing overhead of ``fastcheck nightly``: a nightly run of one network, exhaustive,
against ``net.check`` on the same network (see conftest.py for quick mode: L is skipped there).

The nightly run (``run_suite`` on a fresh run directory, timed by pytest-benchmark) builds
the network from its spec, checks it chunk by chunk, writes the JSON report and records the
history. Its ``extra_info`` holds the medians of the baselines, timed between the nightly rounds (same machine load):
``check_s`` (``net.check`` on prebuilt parameters and gradient), ``build_and_check_s``
(building the network, its gradient and ``net.check``: the same work without the nightly
machinery) and ``report_json_s`` (``report.to_json()`` and ``report.to_html()`` on a fresh
report: the pages the nightly run writes and ``net.check`` does not); the ratios
``ratio_nightly_to_build_and_check`` (the overhead, target <= 1.05), ``ratio_nightly_to_check``
and ``ratio_without_report_json`` (without those pages: the checkpointing itself).
"""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from fastcheck.apps.networks import network
from fastcheck.apps.nightly import parse_suite, run_suite

ROUNDS = {"S": 20, "L": 5}


def _timed(fn, out: list):
    tic = time.perf_counter()
    result = fn()
    out.append(time.perf_counter() - tic)
    return result


def _bench_nightly(benchmark, tmp_path, name):
    suite = parse_suite({"problems": [{"name": name, "network": name, "points": [{"seed": 0}]}]})
    net, params, X, Y = network(name)
    grads = net.gradient(params, X, Y)
    counter = itertools.count()
    check_s, build_s, json_s = [], [], []

    def build_and_check():
        n, p, x, y = network(name)
        return n.check(p, n.gradient(p, x, y), x, y)

    def setup():
        # the baselines run between the timed nightly rounds, so that all see the same machine load
        _timed(lambda: net.check(params, grads, X, Y), check_s)
        _timed(build_and_check, build_s)
        return (tmp_path / f"night{next(counter)}",), {}

    def nightly(run_dir):
        return run_suite(suite, run_dir, history=tmp_path / "history.sqlite", progress=False)

    nightly(*setup()[0])  # JIT warm-up (compiled once, then cached on disk)
    check_s.clear()
    build_s.clear()
    reference = build_and_check()
    [result] = benchmark.pedantic(nightly, setup=setup, rounds=ROUNDS[name], iterations=1)
    assert result.report.passed and result.report.difference == reference.difference
    def reports():  # the JSON and HTML pages the nightly writes, on a report fresh from a check
        report = net.check(params, grads, X, Y)
        tic = time.perf_counter()
        report.to_json()
        report.to_html()
        return time.perf_counter() - tic

    json_s += [reports() for _ in range(ROUNDS[name])]
    stats = getattr(benchmark, "stats", None)
    nightly_s = stats.stats.median if stats is not None else float("nan")
    check, build, json_out = (statistics.median(v) for v in (check_s, build_s, json_s))
    benchmark.extra_info.update(
        network=name, n_params=net.n_params, chunks=result.chunks_computed, check_s=check, build_and_check_s=build,
        report_json_s=json_out, nightly_s=nightly_s, ratio_nightly_to_build_and_check=nightly_s / build,
        ratio_nightly_to_check=nightly_s / check, ratio_without_report_json=(nightly_s - json_out) / build)


@pytest.mark.benchmark(group="nightly")
def test_nightly_overhead_S(benchmark, tmp_path):
    _bench_nightly(benchmark, tmp_path, "S")


@pytest.mark.slow
@pytest.mark.network_L
@pytest.mark.benchmark(group="nightly")
def test_nightly_overhead_L(benchmark, tmp_path):
    _bench_nightly(benchmark, tmp_path, "L")
