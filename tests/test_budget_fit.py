"""``budget=`` and plans on the built-in network's batched engine: one estimate (set-up, then a call's
fixed part and a slope per coordinate), shared by ``net.plan``, ``--dry-run`` and the budget fit.

No wall-clock thresholds: where the machine's timing is read, budgets are multiples of the
plan's own estimate and the assertions are orders; elsewhere the engine's timing is replaced by
a fixed one (the ``fixed_timing`` fixture), which makes the fit deterministic.
"""

import json
import re
import time
from dataclasses import replace

import pytest

import fastcheck as fc
from fastcheck.apps.cli import main
from fastcheck.apps.networks import network
from fastcheck.core.layout import Layout
from fastcheck.core.selection import subset_sizes
from fastcheck.engines.timing import Timing
from fastcheck.pipeline.plan import make_plan


@pytest.fixture(scope="module")
def net_m():
    net, params, X, Y = network("M")
    return net, params, X, Y, net.gradient(params, X, Y)


def smallest(params) -> int:
    """Coordinates of the smallest subset: the per-group minimum."""
    layout, _ = Layout.from_params(params)
    return sum(subset_sizes(layout, fraction=1e-12))


def test_the_timing_reads_its_points_as_a_run_would():
    timing = Timing([(10, 1.0), (40, 2.5), (160, 2.0), (640, 5.0)])  # 40 took longer than 160: noise
    assert timing.seconds(0) == 0.0
    assert timing.seconds(5) == 1.0  # a call on fewer costs no more than the smallest timed
    assert timing.seconds(25) == pytest.approx(1.5) and timing.seconds(40) == 2.0
    assert timing.seconds(160) == 2.0 and timing.seconds(400) == pytest.approx(3.5)
    fixed, slope = timing.line()  # through the last two points
    assert slope == pytest.approx(3.0 / 480) and fixed == pytest.approx(5.0 - 640 * slope)
    assert timing.seconds(2000) == pytest.approx(fixed + slope * 2000)
    assert Timing([(10, 1.0)]).line() == (0.0, 0.1)  # one point: all of it slope


def test_a_budget_whose_estimate_holds_a_one_percent_subset_checks_far_more_than_the_minimum(net_m):
    """The budget is twice what the check's own engine (set up and timed) estimates for a 1% subset: the fit
    reads the same estimate, so it checks that subset at least (timing noise cannot move it)."""
    net, params, X, Y, grads = net_m
    prepared = fc.api.prepare_mlp(net, params, grads, X, Y)
    one_percent = make_plan(prepared.layout, prepared.engine, prepared.options.but(mode="subset", fraction=0.01))
    assert 0 < one_percent.setup_seconds < one_percent.estimated_seconds
    assert one_percent.n_coordinates > 5 * smallest(params)
    budget = 2 * one_percent.estimated_seconds
    fitted = replace(prepared, options=prepared.options.but(budget=budget), started=time.perf_counter())
    report = fitted.run()
    assert report.passed and report.settings["budget"] == budget
    assert report.n_checked >= one_percent.n_coordinates
    fit = report.settings["budget_fit"]
    assert fit.startswith(f"budget {budget:.3g} s: ") and "over the budget" not in fit
    assert report.settings["budget_estimate"] <= budget


def test_the_report_names_the_budget_and_says_when_even_the_smallest_check_does_not_fit(net_m):
    net, params, X, Y, grads = net_m
    report = net.check(params, grads, X, Y, budget=1e-6)
    assert report.n_checked == smallest(params)  # checked anyway: never nothing
    text = str(report)
    assert "budget 1e-06 s: the smallest check (32 entries per group, " in text
    assert "over the budget of 1e-06 s" in text
    settings = json.loads(report.to_json())["settings"]
    assert settings["budget"] == 1e-6 and "the smallest check" in settings["budget_fit"]
    assert settings["budget_estimate"] > 1e-6
    full = net.check(params, grads, X, Y, budget=600)
    assert full.settings["mode"] == "full"
    assert "budget 600 s: the full check fits (" in str(full)


def test_the_fit_counts_the_fixed_part(net_m, fixed_timing):
    """A call costs 2 s whatever its size: a budget the smallest subset overruns says so, a larger one fits
    a subset, which widens with the budget."""
    net, params, X, Y, grads = net_m
    least = smallest(params)
    over = fc.api.prepare_mlp(net, params, grads, X, Y, budget=3.0).plan()  # 2 s + least * 10 ms do not fit
    assert over.n_coordinates == least and "the smallest check" in str(over) and "over the budget of 3 s" in str(over)
    plan = net.plan(params, X, Y, mode="subset", n_samples=500)
    running, n = plan.estimated_seconds - plan.setup_seconds, plan.n_coordinates
    assert 2.0 + 0.01 * n - 1e-9 <= running < 2.0 + 0.01 * n + 0.5  # the fixed part, the slope (and the report)
    fitted = fc.api.prepare_mlp(net, params, grads, X, Y, budget=6.0).plan()
    assert fitted.mode == "subset" and least < fitted.n_coordinates < 400
    assert fitted.estimated_seconds <= 6.0 and fitted.over_budget == ""
    wider = fc.api.prepare_mlp(net, params, grads, X, Y, budget=12.0).plan()
    assert fitted.n_coordinates < wider.n_coordinates < 1000


def test_net_plan_and_dry_run_give_the_same_estimate(net_m, fixed_timing, capsys):
    net, params, X, Y, _ = net_m
    plan = net.plan(params, X, Y)
    assert main(["check", "--network", "M", "--dry-run"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("plan: mode full, batched engine")
    about = float(re.search(r"about ([0-9.e+-]+) s", line).group(1))
    assert about == pytest.approx(plan.estimated_seconds, rel=0.01)  # the set-ups differ by milliseconds
    assert main(["check", "--network", "M", "--dry-run", "--budget", "6"]) == 0
    fitted = capsys.readouterr().out
    assert "mode subset (fitted to the budget of 6 s)" in fitted
    same = fc.api.prepare_mlp(net, params, net.gradient(params, X, Y), X, Y, budget=6.0).plan()
    n = int(re.search(r"engine\): ([0-9,]+) coordinates", fitted).group(1).replace(",", ""))
    assert n == pytest.approx(same.n_coordinates, rel=0.05)  # what was spent before the fit differs by milliseconds


def test_batched_plans_rank_by_what_they_check(net_m, fixed_timing):
    """On one engine (one timing, one set-up): the per-group minimum, a 1% subset, the full check, in that
    order, each with the set-up inside (how near the full plan comes to its run: benchmarks/test_bench_estimates.py)."""
    net, params, X, Y, grads = net_m
    prepared = fc.api.prepare_mlp(net, params, grads, X, Y)
    least, subset = (make_plan(prepared.layout, prepared.engine, prepared.options.but(mode="subset", fraction=f))
                     for f in (1e-12, 0.01))
    full = prepared.plan()
    assert 0 < least.setup_seconds == subset.setup_seconds == full.setup_seconds < least.estimated_seconds
    assert least.estimated_seconds <= subset.estimated_seconds < full.estimated_seconds
    assert "of set-up, then the batched engine timed on stratified samples of " in full.basis
