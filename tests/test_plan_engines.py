"""Plans, ``--dry-run`` and ``budget=`` estimate the engine that will actually run, as a user meets them.

A course-layout MLP and a CS231n ``(loss, grads)`` net run on the traced engine, a cost that
solves a linear system falls back: each plan names its engine and why, counts the calls of
the cost the check then makes (the traced engine: the two at theta, the trace and its
verification, never two per coordinate), and its estimate is read from the timing of the engine
that will run. No wall-clock comparisons: the timings are fixed where an estimate is compared
(how near estimates come to their runs is benchmarks/test_bench_estimates.py's).
"""

import math

import numpy as np
import pytest
from traced_models import course_mlp, cs231n_net

import fastcheck as fc
from fastcheck.apps.cli import main
from fastcheck.core.objective import RECHECK_FRACTION, RECHECK_MIN
from fastcheck.engines.timing import Timing
from fastcheck.pipeline.timing import CostTiming, report_seconds


def Counted(cost):  # noqa: N802 -- reads as the wrapper it makes
    """A user's cost, counting its calls in ``.calls``."""
    def counted(params):
        counted.calls += 1
        return cost(params)

    counted.calls = 0
    return counted


def solved(n=6, seed=0):
    """A least-squares cost through np.linalg.solve (not traceable) and its gradient: (cost, params, grads)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    b = rng.standard_normal(n)

    def cost(p):
        x = np.linalg.solve(A, p["w"] - b)
        return float(0.5 * x @ x)

    w = rng.standard_normal(n)
    x = np.linalg.solve(A, w - b)
    return cost, {"w": w}, {"w": np.linalg.solve(A.T, x)}


@pytest.fixture(scope="module")
def mid_mlp():
    """A course-layout MLP of 8,865 parameters: the traced engine is far ahead of the loop there."""
    return course_mlp(sizes=(128, 64, 8, 1), m=32)


def test_a_traced_plan_counts_the_calls_the_traced_check_makes(mid_mlp):
    cost, params, grads = mid_mlp
    plan = fc.plan(cost, params)
    assert plan.engine == "traced" and plan.reason.startswith("the default: the cost traced")
    n = sum(v.size for v in params.values())
    assert plan.n_evaluations == 2 * n and plan.n_cost_calls < 100  # a trace and a sample, not 2 per coordinate
    counted = Counted(cost)
    report = fc.check(counted, params, grads)
    assert report.settings["engine"] == "traced" and report.passed
    assert counted.calls == plan.n_cost_calls  # exactly: 2 at theta, the trace, its verification
    assert report.n_evaluations == plan.n_evaluations
    assert "traced engine (the default" in str(plan) and "perturbed costs computed from the trace" in str(plan)
    assert f"{plan.n_cost_calls:,} calls of the cost in all (2 at theta, " in str(plan)


def test_a_traced_plan_of_directions_says_what_a_direction_costs(mid_mlp):
    cost, params, _ = mid_mlp
    plan = fc.plan(cost, params, mode="directions", n_directions=4)
    assert plan.engine == "traced" and plan.n_evaluations == 2 * plan.n_directions
    assert plan.basis.startswith("about one evaluation of the cost per direction and sign: the median of ")


def test_each_plan_estimates_from_the_timing_of_the_engine_that_will_run(mid_mlp, fixed_timing, monkeypatch):
    """The traced plan reads the traced engine's own timing (a call's fixed part and a slope), the loop's plan
    the cost's seconds per evaluation: both fixed here (the ranks and the runs beside them, measured:
    benchmarks/test_bench_estimates.py)."""
    monkeypatch.setattr(CostTiming, "seconds", lambda self: 1e-3)
    cost, params, _ = mid_mlp
    traced, loop = fc.plan(cost, params), fc.plan(cost, params, engine="reference")
    assert loop.engine == "reference" and loop.reason == "as `engine` asks"
    assert loop.n_cost_calls == 2 + loop.n_evaluations
    n = traced.n_coordinates
    assert traced.estimated_seconds == pytest.approx(
        traced.setup_seconds + Timing(fixed_timing).seconds(n) + report_seconds(n))
    assert loop.estimated_seconds == pytest.approx(loop.setup_seconds + 2 * n * 1e-3 + report_seconds(n))
    assert 0 < traced.setup_seconds < traced.estimated_seconds


def test_a_cs231n_loss_and_grads_cost_plans_on_the_traced_engine():
    loss, params, _, _ = cs231n_net(D=20, H=16, C=5, N=12)

    def loss_and_grads(p):
        return loss(p), loss(p, grads=True)

    plan = fc.plan(loss_and_grads, params)
    assert plan.engine == "traced" and plan.n_evaluations == 2 * sum(v.size for v in params.values())
    counted = Counted(loss_and_grads)
    report = fc.check(counted, params)
    assert report.settings["engine"] == "traced" and report.passed
    assert counted.calls == plan.n_cost_calls + 1  # the one call at theta that gives the gradient


def test_a_cost_that_falls_back_plans_the_engine_it_falls_back_to():
    cost, params, grads = solved()
    plan = fc.plan(cost, params)
    assert plan.engine == "reference"
    assert plan.reason.startswith("traced engine not used: ") and "np.linalg.solve" in plan.reason
    assert "to try the trace" in plan.setup and "cost evaluations" in str(plan)
    k = params["w"].size
    assert plan.n_evaluations == 2 * k
    counted = Counted(cost)
    report = fc.check(counted, params, grads)
    assert report.settings["engine"] == "reference" and "np.linalg.solve" in report.settings["traced_not_used"]
    # one per perturbed cost, and a seeded few evaluated again (the determinism check)
    again = counted.calls - plan.n_cost_calls
    assert 0 <= again <= min(2 * k, max(RECHECK_MIN, math.ceil(RECHECK_FRACTION * 2 * k)))
    workers = fc.plan(cost, params, n_jobs=2)
    assert workers.engine == "blackbox" and workers.reason.endswith("; on 2 worker(s)")
    assert "np.linalg.solve" in workers.reason


def test_settings_of_the_black_box_engine_choose_it_in_the_plan_too(quadratic):
    cost, params, _ = quadratic
    plan = fc.plan(cost, params, backend="threading")
    assert plan.engine == "blackbox" and "black-box engine's" in plan.reason


def test_a_budget_fits_the_engine_that_runs(mid_mlp):
    """The budget that holds a full traced check holds a small subset of the loop's."""
    cost, params, grads = mid_mlp
    n = sum(v.size for v in params.values())
    loop = fc.plan(cost, params, engine="reference")
    budget = loop.estimated_seconds / 4  # the loop cannot do it; the traced engine can, many times over
    traced = fc.plan(cost, params, budget=budget)
    assert traced.mode == "full" and traced.budget == budget and traced.n_coordinates == n
    fitted = fc.plan(cost, params, budget=budget, engine="reference")
    assert fitted.mode == "subset" and fitted.n_coordinates < n / 2
    assert "fitted to the budget" in str(fitted)
    report = fc.check(cost, params, grads, budget=budget)
    assert report.settings["engine"] == "traced" and report.settings["mode"] == "full" and report.n_checked == n


PROBLEMS = '''
import sys
sys.path.insert(0, {tests!r})
from traced_models import course_mlp
from test_plan_engines import solved

def mlp():
    return course_mlp(sizes=(32, 16, 4, 1), m=16)

def fallback():
    return solved()
'''


def test_dry_run_names_the_engine_and_why(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    (tmp_path / "planproblems.py").write_text(PROBLEMS.format(tests=str(Path(__file__).resolve().parent)))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "planproblems:mlp", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: mode full, traced engine (the default: the cost traced")
    assert "calls of the cost in all (2 at theta, " in out
    assert main(["check", "planproblems:fallback", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "reference engine (traced engine not used: " in out and "np.linalg.solve" in out
    assert main(["check", "planproblems:fallback", "--dry-run", "--jobs", "2"]) == 0
    assert "blackbox engine (traced engine not used: " in capsys.readouterr().out
    assert main(["check", "planproblems:mlp", "--dry-run", "--backend", "threading"]) == 0
    assert "blackbox engine (the settings given" in capsys.readouterr().out
    assert main(["check", "planproblems:mlp", "--dry-run", "--engine", "reference", "--budget", "0.005"]) == 0
    assert "mode subset (fitted to the budget of 0.005 s), reference engine" in capsys.readouterr().out


def test_a_plan_of_the_built_in_network_s_directions_times_directions(monkeypatch):
    """Timed at two counts per group on a clock the directions advance (10 ms + 1 ms per direction), the
    estimate is that fixed part and slope, not the coordinates' timing."""
    from fastcheck.apps.networks import network
    from fastcheck.pipeline import timing

    net, params, X, Y = network("S")
    plan = net.plan(params, X, Y, mode="directions", n_directions=8)
    assert "the directions timed at" in str(plan) and "per coordinate" not in str(plan)
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def evaluate(directions):
        clock[0] += 0.010 + 0.001 * len(directions)

    layout, _ = fc.Layout.from_params(params)
    estimate, basis = timing.directions_estimate(evaluate, layout, "signs")
    assert math.isclose(estimate(2 * 100), 0.010 + 0.100, rel_tol=1e-9)  # 100 directions, both signs each
    assert "10 ms + 1 ms per direction" in basis()
