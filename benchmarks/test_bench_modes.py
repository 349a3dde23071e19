"""The cheap modes on network L beside the exhaustive check (issue targets: a 1% subset in
<= 0.1 s, 32 directions per group in <= 0.2 s).

Run ``pytest benchmarks/test_bench_modes.py --benchmark-columns=median,rounds``. Groups:

- ``L-modes``: relu L, exhaustive (batched), 1% stratified subset, 4 and 32 directions
  per group (each count also over all of theta: 28 and 224 directions);
- ``L-tanh-modes``: tanh L, whose exhaustive check goes through the smooth shortcut
  (certified Taylor polynomials), against 32 directions per group.

``extra_info`` holds what was checked (coordinates or directions) and, on each cheap
row, ``ratio_to_exhaustive`` (its median over the exhaustive median of the same group
when that ran first in the session).
"""

from __future__ import annotations

import pytest

_MEDIANS: dict = {}

MODES = {
    "full": {},
    "subset 1%": {"mode": "subset", "fraction": 0.01},
    "directions 4": {"mode": "directions", "n_directions": 4},
    "directions 32": {"mode": "directions", "n_directions": 32},
}


def _bench(benchmark, problem, hidden, label, rounds):
    net, params, X, Y, grads = problem("L", hidden, "softmax")
    options = MODES[label]

    def check():
        return net.check(params, grads, X, Y, **options)

    report = check()  # JIT warm-up
    result = benchmark.pedantic(check, rounds=rounds, iterations=1)
    assert result.passed, str(report)
    checked = len(result.directions) if options.get("mode") == "directions" else result.n_checked
    info = benchmark.extra_info
    info.update(network="L", hidden=hidden, mode=label, checked=int(checked), difference=result.difference)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _MEDIANS[hidden, label] = stats.stats.median
        if label != "full" and (hidden, "full") in _MEDIANS:
            info["ratio_to_exhaustive"] = _MEDIANS[hidden, label] / _MEDIANS[hidden, "full"]


@pytest.mark.network_L
@pytest.mark.benchmark(group="L-modes")
@pytest.mark.parametrize("label", list(MODES))
def test_modes_L(benchmark, problem, label):
    _bench(benchmark, problem, "relu", label, rounds=5)


@pytest.mark.network_L
@pytest.mark.benchmark(group="L-tanh-modes")
@pytest.mark.parametrize("label", ["full", "directions 32"])
def test_modes_L_tanh(benchmark, problem, label):
    _bench(benchmark, problem, "tanh", label, rounds=5)
