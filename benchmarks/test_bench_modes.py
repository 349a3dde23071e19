"""The cheap modes on network L beside the exhaustive check (issue targets: a 1% subset in
<= 0.1 s, 32 directions per group in <= 0.2 s). Directions are drawn both ways in one run:
rank-one sign patterns (the default, whose weight steps the batched engine carries factored)
and Gaussian ones (dense products, about 11 GFLOP for the 224 directions: see the README).

Run ``pytest benchmarks/test_bench_modes.py --benchmark-columns=median,rounds``. With
``--baseline CHECKOUT`` (another checkout of fastcheck), each row's check also runs on that
code in a subprocess, one of its rounds before each round here (the same machine load),
and ``extra_info`` gets ``baseline_median`` and ``ratio_to_baseline``. Groups:

- ``L-modes``: relu L, exhaustive (batched), 1% stratified subset, 4 and 32 sign directions
  per group (each count also over all of theta: 28 and 224 directions), 32 Gaussian ones;
- ``L-tanh-modes``: tanh L, whose exhaustive check goes through the smooth shortcut
  (certified Taylor polynomials), against 32 sign and 32 Gaussian directions per group.

``extra_info`` holds what was checked (coordinates or directions) and, on each cheap
row, ``ratio_to_exhaustive`` (its median over the exhaustive median of the same group
when that ran first in the session).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

_MEDIANS: dict = {}

MODES = {
    "full": {},
    "subset 1%": {"mode": "subset", "fraction": 0.01},
    "directions 4": {"mode": "directions", "n_directions": 4},
    "directions 32": {"mode": "directions", "n_directions": 32},
    "directions 32 gaussian": {"mode": "directions", "n_directions": 32, "distribution": "gaussian"},
}


#: The baseline's side: the same check, warmed up, then one timed round per line read.
_BASELINE = """
import json, sys, time
from fastcheck.apps.networks import network
net, params, X, Y = network("L", hidden=sys.argv[1], output="softmax")
grads, options = net.gradient(params, X, Y), json.loads(sys.argv[2])
net.check(params, grads, X, Y, **options)
print("ready", flush=True)
for line in sys.stdin:
    tic = time.perf_counter()
    net.check(params, grads, X, Y, **options)
    print(time.perf_counter() - tic, flush=True)
"""


def _baseline(checkout, hidden, options):
    """The baseline checkout's check in a subprocess, warmed up: ``(process, round)``, ``round()`` its time."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(checkout)}
    process = subprocess.Popen([sys.executable, "-c", _BASELINE, hidden, json.dumps(options)], env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=os.path.abspath(checkout))
    assert process.stdout.readline().strip() == "ready"

    def one_round():
        process.stdin.write("go\n")
        process.stdin.flush()
        return float(process.stdout.readline())

    return process, one_round


def _bench(benchmark, problem, hidden, label, rounds, checkout=None):
    net, params, X, Y, grads = problem("L", hidden, "softmax")
    options = MODES[label]

    def check():
        return net.check(params, grads, X, Y, **options)

    report = check()  # JIT warm-up
    # a checkout from before the choice of distributions draws Gaussian directions and knows no `distribution`
    before_options = {k: v for k, v in options.items() if k != "distribution"}
    process, baseline = _baseline(checkout, hidden, before_options) if checkout else (None, None)
    before = []
    try:
        result = benchmark.pedantic(check, rounds=rounds, iterations=1,
                                    setup=(lambda: before.append(baseline())) if baseline else None)
    finally:
        if process is not None:
            process.stdin.close()
            process.wait(timeout=60)
            process.stdout.close()
    assert result.passed, str(report)
    checked = len(result.directions) if options.get("mode") == "directions" else result.n_checked
    info = benchmark.extra_info
    info.update(network="L", hidden=hidden, mode=label, checked=int(checked), difference=result.difference)
    stats = getattr(benchmark, "stats", None)
    if before:
        info["baseline_median"] = statistics.median(before)
        if stats is not None:
            info["ratio_to_baseline"] = stats.stats.median / info["baseline_median"]
    if stats is not None:
        _MEDIANS[hidden, label] = stats.stats.median
        if label != "full" and (hidden, "full") in _MEDIANS:
            info["ratio_to_exhaustive"] = _MEDIANS[hidden, label] / _MEDIANS[hidden, "full"]


@pytest.mark.network_L
@pytest.mark.benchmark(group="L-modes")
@pytest.mark.parametrize("label", list(MODES))
def test_modes_L(benchmark, problem, label, request):
    _bench(benchmark, problem, "relu", label, rounds=5, checkout=request.config.getoption("--baseline"))


@pytest.mark.network_L
@pytest.mark.benchmark(group="L-tanh-modes")
@pytest.mark.parametrize("label", ["full", "directions 32", "directions 32 gaussian"])
def test_modes_L_tanh(benchmark, problem, label, request):
    _bench(benchmark, problem, "tanh", label, rounds=5, checkout=request.config.getoption("--baseline"))
