"""How near plans' estimates come to their runs, on this machine (the tests hold the estimates' rules with a fixed
timing: ``tests/test_plan_engines.py``, ``tests/test_budget_fit.py``).

Run ``python -m pytest benchmarks/test_bench_estimates.py``. Groups:

- ``estimate-traced``: a course-layout MLP of 8,865 parameters (``tests/traced_models.py``): the traced plan
  against the reference loop's plan (``loop_estimated_s``, ``ratio_loop_to_traced``: the traced plan must rank
  well below the loop's) and against its run (``estimated_s``, ``run_s``, ``ratio_estimate_to_run``);
- ``estimate-batched``: network M's full plan on the batched engine against its run.

A row fails where the estimate is off its run by more than :data:`WITHIN` either way (a loaded machine stays
well inside that), or where the traced plan is not :data:`TRACED_AHEAD` times below the loop's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fastcheck as fc
from fastcheck.api import prepare_mlp
from fastcheck.apps.networks import network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the user-style models live with the tests
from traced_models import course_mlp  # noqa: E402

#: An estimate within this factor of its run, either way.
WITHIN = 30
#: The traced plan at least this many times below the loop's on the course MLP.
TRACED_AHEAD = 5


def _record(benchmark, plan, run) -> None:
    benchmark.extra_info.update(estimated_s=plan.estimated_seconds, setup_s=plan.setup_seconds, run_s=run.elapsed,
                                ratio_estimate_to_run=plan.estimated_seconds / run.elapsed)
    assert run.elapsed / WITHIN < plan.estimated_seconds < WITHIN * run.elapsed


def test_traced_plan_against_the_loop_s_and_its_run(benchmark):
    benchmark.group = "estimate-traced"
    cost, params, grads = course_mlp(sizes=(128, 64, 8, 1), m=32)
    traced, loop = fc.plan(cost, params), fc.plan(cost, params, engine="reference")
    run = benchmark.pedantic(fc.check, args=(cost, params, grads), rounds=1, iterations=1)
    assert run.settings["engine"] == traced.engine == "traced" and run.passed
    benchmark.extra_info.update(loop_estimated_s=loop.estimated_seconds,
                                ratio_loop_to_traced=loop.estimated_seconds / traced.estimated_seconds)
    _record(benchmark, traced, run)
    assert traced.estimated_seconds < loop.estimated_seconds / TRACED_AHEAD


def test_batched_full_plan_against_its_run(benchmark):
    benchmark.group = "estimate-batched"
    net, params, X, Y = network("M")
    prepared = prepare_mlp(net, params, net.gradient(params, X, Y), X, Y, engine="batched")
    plan = prepared.plan()
    run = benchmark.pedantic(prepared.run, rounds=1, iterations=1)
    assert run.settings["engine"] == plan.engine == "batched" and run.passed
    _record(benchmark, plan, run)
