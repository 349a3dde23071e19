"""Subset and directions modes, escalation, plans and budgets (batched engine and user costs)."""

import json

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.bugs import BUGS, buggy_gradient
from fastcheck.apps.networks import network
from fastcheck.core.directions import GLOBAL, KINDS
from fastcheck.core.layout import Layout
from fastcheck.core.selection import escape_probability, stratified_subset, subset_sizes


@pytest.fixture(scope="module")
def net_s():
    net, params, X, Y = network("S")
    return net, params, X, Y, net.gradient(params, X, Y)


def test_stratified_subset_represents_every_group():
    layout, _ = Layout.from_params({"W": np.zeros((100, 100)), "b": np.zeros(5), "c": np.zeros(50)})
    sizes = subset_sizes(layout, fraction=0.01, min_per_group=8)
    assert sizes == [100, 5, 8]
    idx = stratified_subset(layout, fraction=0.01, min_per_group=8, seed=3)
    assert len(idx) == 113 and len(np.unique(idx)) == 113
    counts = np.bincount(layout.group_ids(idx), minlength=3)
    assert counts.tolist() == sizes
    np.testing.assert_array_equal(idx, stratified_subset(layout, fraction=0.01, min_per_group=8, seed=3))
    assert not np.array_equal(idx, stratified_subset(layout, fraction=0.01, min_per_group=8, seed=4))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fraction": 0.0}, "`fraction`=0.0 must be in (0, 1]"),
    ({"fraction": 1.5}, "`fraction`=1.5 must be in (0, 1]"),
    ({"n_samples": 0}, "`n_samples`=0 must be a positive integer"),
    ({"fraction": 0.1, "n_samples": 3}, "exactly one of"),
    ({}, "exactly one of"),
])
def test_bad_subset_sizes(kwargs, message):
    layout, _ = Layout.from_params(np.zeros(10))
    with pytest.raises(fc.InputError) as info:
        subset_sizes(layout, **kwargs)
    assert message in str(info.value)


def test_escape_probability_bound():
    assert escape_probability(10, 10, 0.5) == 0.0
    assert escape_probability(100, 1000, 0.01) == pytest.approx(0.99**100)


@pytest.mark.parametrize("mode", ["subset", "directions"])
def test_same_seed_same_result_different_seed_differs(net_s, mode):
    net, params, X, Y, grads = net_s
    kw = {"fraction": 0.05} if mode == "subset" else {"n_directions": 4}
    a = net.check(params, grads, X, Y, mode=mode, seed=1, **kw)
    b = net.check(params, grads, X, Y, mode=mode, seed=1, **kw)
    c = net.check(params, grads, X, Y, mode=mode, seed=2, **kw)
    assert a.difference == b.difference and a.groups == b.groups
    assert a.difference != c.difference


@pytest.mark.parametrize("distribution", KINDS)
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_directions_mode_fails_every_bug_in_the_right_groups(net_s, bug, distribution):
    net, params, X, Y, _ = net_s
    report = net.check(params, buggy_gradient(net, bug, params, X, Y), X, Y, mode="directions", n_directions=8,
                       distribution=distribution)
    assert not report.passed
    assert set(BUGS[bug].origin(net)) <= set(report.failing_groups) <= set(BUGS[bug].touches(net))


def test_directions_agree_between_engines(net_s):
    """The stacked change propagation matches full cost evaluations direction by direction."""
    net, params, X, Y, grads = net_s
    fast = net.check(params, grads, X, Y, mode="directions", n_directions=3, seed=5)
    slow = net.check(params, grads, X, Y, mode="directions", n_directions=3, seed=5, engine="reference")
    assert [(d.group, d.number) for d in fast.directions] == [(d.group, d.number) for d in slow.directions]
    # the reference's central differences of full costs carry rounding of order ulp(J) / eps
    noise = 50 * np.spacing(net.cost(params, X, Y)) / 1e-7
    for f, s in zip(fast.directions, slow.directions):
        assert f.analytic == s.analytic
        assert abs(f.numeric - s.numeric) < noise


@pytest.mark.parametrize("distribution", KINDS)
def test_small_group_bug_is_missed_by_a_global_projection_but_not_per_group(distribution):
    net, params, X, Y = network("M")
    grads = net.gradient(params, X, Y)
    grads["db2"] = grads["db2"] * 1.02  # only b2 is wrong, and only by 2%
    global_fails = 0
    for seed in range(6):
        report = net.check(params, grads, X, Y, mode="directions", n_directions=8, seed=seed,
                           distribution=distribution)
        assert report.group("b2").verdict == "fail"
        assert report.failing_groups == ["b2"]
        global_fails += report.overall_directions.verdict == "fail"
    assert global_fails <= 1  # one projection over all of theta mostly misses it


def test_subset_detection_rate_meets_its_stated_bound(net_s):
    """A bug corrupting 2% of W1 (41 of 2,048 entries, off by 50%) over many seeds."""
    net, params, X, Y, grads = net_s
    rng = np.random.default_rng(0)
    bad = {k: v.copy() for k, v in grads.items()}
    wrong = rng.choice(bad["dW1"].size, size=41, replace=False)
    bad["dW1"].flat[wrong] *= 1.5
    seeds = range(300)
    caught = 0
    for seed in seeds:
        report = net.check(params, bad, X, Y, mode="subset", fraction=0.01, seed=seed, escalate=False)
        caught += "W1" in report.failing_groups
    checked = report.group("W1").checked
    bound = 1 - escape_probability(checked, 2048, 41 / 2048)
    assert report.guarantee(41 / 2048)["W1"] == pytest.approx(bound)
    rate = caught / len(seeds)
    slack = 3 * np.sqrt(bound * (1 - bound) / len(seeds))
    assert rate >= bound - slack, (rate, bound)
    assert rate < 1.0  # a subset can miss: the test would be vacuous otherwise


def test_subset_report_states_coverage_and_guarantee(net_s):
    net, params, X, Y, grads = net_s
    report = net.check(params, grads, X, Y, mode="subset", fraction=0.02, seed=0)
    assert report.settings["mode"] == "subset" and report.settings["fraction"] == 0.02
    assert report.group("b3").checked == 4 and report.group("W1").checked == 41
    text = str(report)
    assert "of 2,676 coordinates" in text
    assert "a bug making >= 1% of a group's entries wrong would have been caught" in text
    assert "W1 33.8%" in text  # 1 - 0.99**41
    data = json.loads(report.to_json())
    assert data["guarantee"]["detection_probability"]["b3"] == 1.0
    assert fc.Report.from_json(report.to_json()).to_json() == report.to_json()


@pytest.mark.parametrize("mode", ["subset", "directions", "gaussian directions"])
def test_escalation_names_the_wrong_entry(net_s, mode):
    net, params, X, Y, grads = net_s
    bad = {k: v.copy() for k, v in grads.items()}
    bad["dW2"][3, 7] *= 1.1
    kw = {"fraction": 0.5} if mode == "subset" else {"n_directions": 8}
    if mode == "gaussian directions":
        mode, kw = "directions", {**kw, "distribution": "gaussian"}
    seed = 0
    if mode == "subset":  # a seed whose subset holds the wrong entry (a subset may miss it)
        layout, _ = Layout.from_params(params)
        target = layout.group("W2").start + 3 * 32 + 7
        seed = next(s for s in range(100) if target in stratified_subset(layout, fraction=0.5, seed=s))
    plain = net.check(params, bad, X, Y, mode=mode, seed=seed, **kw)
    assert plain.group("W2").verdict != "pass"
    report = net.check(params, bad, X, Y, mode=mode, seed=seed, escalate=True, **kw)
    assert report.failing_groups == ["W2"]
    assert report.group("W2").escalated and report.group("W2").checked == 512
    assert report.worst(1)[0].label == "W2[3, 7]"
    assert report.settings["escalated"] == ["W2"]


@pytest.mark.parametrize("distribution", KINDS)
def test_a_partial_escalation_that_misses_the_entry_keeps_the_directions_verdict(net_s, monkeypatch, distribution):
    """W2[3, 7] off by 10%: its directions flag W2; a re-check of 100 other entries finds them right."""
    from fastcheck.pipeline import escalation

    monkeypatch.setattr(escalation, "LOCALISE_BLOCKS", 0)  # bisection gives up at once: a plain random sample
    net, params, X, Y, grads = net_s
    bad = {k: v.copy() for k, v in grads.items()}
    bad["dW2"][3, 7] *= 1.1
    layout, _ = Layout.from_params(params)
    target = layout.group("W2").start + 3 * 32 + 7
    seed = next(s for s in range(100)  # a seed whose 100 re-checked entries miss W2[3, 7]
                if target not in np.random.default_rng([s, 1]).choice(np.arange(layout.group("W2").start,
                                                                                layout.group("W2").stop), 100, False))
    flagged = net.check(params, bad, X, Y, mode="directions", n_directions=8, seed=seed, distribution=distribution,
                        escalate=False).group("W2").verdict
    assert flagged != "pass"
    report = net.check(params, bad, X, Y, mode="directions", n_directions=8, seed=seed, escalate=True,
                       escalate_budget=100, distribution=distribution)
    row = report.group("W2")
    assert row.escalated and row.checked == 100 and row.wrong_entries == 0
    assert row.verdict == flagged and not report.verdict == "pass"
    assert "the wrong ones are among the 412 not re-checked" in report.diagnoses["W2"]
    assert "the wrong ones are among" in str(report)


@pytest.mark.parametrize("distribution", KINDS)
@pytest.mark.parametrize("where", [(0, 0), (100, 500), (127, 783)])
def test_bisection_names_a_single_wrong_entry_with_few_evaluations(where, distribution):
    """A 10% error in one entry of M's W1 (100,352 entries), escalation limited to 200 entries."""
    net, params, X, Y = network("M")
    grads = net.gradient(params, X, Y)
    grads["dW1"][where] *= 1.1
    report = net.check(params, grads, X, Y, mode="directions", n_directions=8, escalate=True, escalate_budget=200,
                       distribution=distribution)
    assert report.failing_groups == ["W1"] and report.worst(1)[0].index == where
    info = report.settings["localised"]["W1"]
    assert info["evaluations"] <= 4 * 2 * 13 and info["entries"] <= 32  # about 4 log2(n / 16) evaluations
    assert "narrowed down: W1 by bisection" in str(report)
    assert "W1" not in report.guarantee()  # not a uniform sample
    assert report.n_evaluations == 2 * report.n_checked + 2 * len(report.directions) + info["evaluations"]
    layout, _ = Layout.from_params(params)
    target = layout.group("W1").start + where[0] * 784 + where[1]
    seed = next(s for s in range(200) if target in stratified_subset(layout, n_samples=2000, seed=s))
    subset = net.check(params, grads, X, Y, mode="subset", n_samples=2000, seed=seed, escalate=True,
                       escalate_budget=200)  # its subset holds the entry: W1 fails, then is narrowed down
    spent = subset.settings["localised"]["W1"]["evaluations"]
    assert subset.n_evaluations == 2 * subset.n_checked + spent and subset.worst(1)[0].index == where


def test_bisection_on_a_user_cost_on_workers():
    """The black-box engine: a wrong entry of a 4,000-entry group, found without checking it all."""
    rng = np.random.default_rng(5)
    params = {"W": rng.standard_normal((40, 100)), "b": rng.standard_normal(40)}
    A = rng.standard_normal((40, 100))

    def cost(p):
        return float(np.sum(np.sin(p["W"]) * A) + np.sum(p["b"] ** 2))

    grads = {"W": np.cos(params["W"]) * A, "b": 2 * params["b"]}
    grads["W"][17, 42] *= 1.05
    report = fc.check(cost, params, grads, mode="directions", n_directions=4, escalate=True, escalate_budget=100,
                      n_jobs=2, backend="threading")
    assert report.failing_groups == ["W"] and report.worst(1)[0].label == "W[17, 42]"
    assert report.group("W").checked == 100 and report.settings["localised"]["W"]["evaluations"] < 150


@pytest.mark.parametrize("distribution", KINDS)
def test_bisection_of_a_spread_out_bug_samples_where_the_error_is(net_s, distribution):
    net, params, X, Y, grads = net_s
    bad = buggy_gradient(net, "scaled", params, X, Y)  # every entry of dW2 wrong
    report = net.check(params, bad, X, Y, mode="directions", n_directions=4, escalate=True, escalate_budget=50,
                       distribution=distribution)
    assert report.failing_groups == ["W2"] and report.group("W2").wrong_entries == 50
    info = report.settings["localised"]["W2"]
    assert info["entries"] == 512 and info["rechecked"] == 50  # 16 wrong blocks of 32 are too many: 8 of 64 kept
    assert "50 of them at random" in str(report)


@pytest.mark.parametrize("distribution", KINDS)
def test_escalation_by_default_rechecks_whole_groups_that_fit_in_its_time(net_s, monkeypatch, distribution):
    from fastcheck.pipeline import options

    net, params, X, Y, grads = net_s
    bad = {k: v.copy() for k, v in grads.items()}
    bad["dW1"][5, 9] *= 1.1
    report = net.check(params, bad, X, Y, mode="directions", n_directions=8, escalate=True, distribution=distribution)
    assert report.group("W1").checked == 2048 and report.worst(1)[0].label == "W1[5, 9]"
    monkeypatch.setattr(options, "ESCALATE_SECONDS", 1e-9)  # nothing fits: the floor of entries per group
    monkeypatch.setattr(options, "ESCALATE_MIN", 300)
    report = net.check(params, bad, X, Y, mode="directions", n_directions=8, escalate=True, distribution=distribution)
    assert report.group("W1").checked == 300


@pytest.mark.parametrize("distribution, words", [(None, "rank-one sign"), ("signs", "rank-one sign"),
                                                 ("gaussian", "Gaussian")])
def test_directions_report_round_trips_and_reads(net_s, distribution, words):
    net, params, X, Y, _ = net_s
    report = net.check(params, buggy_gradient(net, "scaled", params, X, Y), X, Y, mode="directions",
                       n_directions=4, distribution=distribution)
    assert report.overall_directions.name == GLOBAL
    assert len(report.directions) == 4 * 7
    assert report.settings["distribution"] == (distribution or "signs")
    assert f"4 random {words} directions per group and 4 over all of theta" in str(report)
    assert report.worst_directions(1)[0].group in ("W2", GLOBAL)
    assert fc.Report.from_json(report.to_json()).to_json() == report.to_json()


def test_user_cost_modes_name_the_group(quadratic):
    cost, params, grads = quadratic
    grads["db"] = grads["db"] * 1.5
    sub = fc.check(cost, params, grads, mode="subset", n_samples=4, min_per_group=2)
    assert sub.failing_groups == ["b"]
    dirs = fc.check(cost, params, grads, mode="directions", n_directions=3, escalate=True)
    assert dirs.failing_groups == ["b"] and dirs.group("b").escalated
    assert dirs.worst(1)[0].group == "b"


def test_plan_counts_evaluations(net_s, quadratic):
    net, params, X, Y, _ = net_s
    full = net.plan(params, X, Y)
    assert full.n_evaluations == 2 * 2676 and full.estimated_seconds > 0
    sub = net.plan(params, X, Y, mode="subset", fraction=0.1)
    assert sub.n_coordinates == sum(sub.per_group.values()) == 2 * sub.n_evaluations // 4
    dirs = net.plan(params, X, Y, mode="directions", n_directions=5)
    assert dirs.n_directions == 5 * 7 and dirs.n_evaluations == 70
    cost, p, _ = quadratic
    assert fc.plan(cost, p).n_evaluations == 2 * 15
    assert "5,352 perturbed costs computed from the base pass, about" in str(full)
    assert "30 cost evaluations, 32 calls of the cost" in str(fc.plan(cost, p, engine="reference"))


def test_budget_picks_a_subset_when_a_full_check_would_not_fit(quadratic):
    cost, params, grads = quadratic

    def slow_cost(p):
        import time

        time.sleep(0.002)
        return cost(p)

    report = fc.check(slow_cost, params, grads, budget=0.02, min_per_group=1, engine="reference")
    assert report.settings["mode"] == "subset" and report.settings["budget"] == 0.02
    assert report.n_checked < 15
    assert fc.check(cost, params, grads, budget=60).settings["mode"] == "full"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fraction": 0.1}, "`fraction`: goes with mode='subset'"),
    ({"mode": "full", "n_directions": 3}, "goes with mode='directions'"),
    ({"mode": "directions", "n_directions": 0}, "`n_directions`: expected a positive integer"),
    ({"distribution": "gaussian"}, "`distribution`: goes with mode='directions', not mode='full'"),
    ({"mode": "directions", "distribution": "normal"},
     "`distribution`: expected 'signs' (rank-one random signs, the default) or 'gaussian'"),
    ({"mode": "subset", "fraction": 0.5, "budget": 1.0}, "use it with mode='full'"),
    ({"budget": -1}, "`budget`: expected a positive number of seconds"),
])
def test_bad_mode_options(quadratic, kwargs, message):
    cost, params, grads = quadratic
    with pytest.raises(fc.InputError) as info:
        fc.check(cost, params, grads, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_prepared_chunks_equal_one_check(hidden):
    from fastcheck.api import prepare_mlp
    from fastcheck.core.results import merge_evaluations

    net, params, X, Y = network("S", hidden=hidden)
    grads = net.gradient(params, X, Y)
    prepared = prepare_mlp(net, params, grads, X, Y)
    chunks = np.array_split(prepared.indices(), 7)
    report = prepared.report(merge_evaluations([prepared.evaluate(c) for c in chunks[::-1]]))
    whole = net.check(params, grads, X, Y)
    assert report.difference == whole.difference and report.groups == whole.groups
    assert report.worst(10) == whole.worst(10)


def test_cheap_modes_escalate_by_default_in_the_python_api(net_s):
    """A single wrong entry must not pass a cheap mode in a user's test suite (escalate=True by default)."""
    net, params, X, Y, grads = net_s
    bad = {k: v.copy() for k, v in grads.items()}
    bad["dW1"][5, 9] *= 1.1
    report = net.check(params, bad, X, Y, mode="directions", n_directions=4)
    assert not report.passed and report.worst(1)[0].label == "W1[5, 9]"

    def cost(p):
        return net.cost(p, X, Y)

    with pytest.raises(AssertionError, match=r"W1\[5, 9\]"):
        fc.assert_gradient(cost, params, bad, mode="directions", n_directions=4)


def test_a_group_of_one_entry_is_checked_by_one_dir_not_1_dirs():
    from fastcheck.report.html import report_html

    report = fc.check(lambda p: float(np.sum(p["w"] ** 2) + p["c"][0] ** 3), {"w": np.ones(3), "c": np.ones(1)},
                      {"w": 2 * np.ones(3), "c": 3 * np.ones(1)}, mode="directions", n_directions=4)
    text = str(report)
    assert " 1 dir " in text and "1 dirs" not in text and " 4 dirs " in text
    assert "1 dirs" not in report_html(report)


@pytest.mark.parametrize("shape", [(40,), (40, 1)])
@pytest.mark.parametrize("distribution", ["signs", "gaussian"])
def test_a_flat_theta_s_directions_are_its_group_s_and_a_bug_is_escalated_and_named(shape, distribution):
    """A theta of one array has no per-group directions (they would be the global ones): its row takes the
    global directions' difference, so a wrong entry fails the group, is escalated and named."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 40))

    def cost(t):
        return float(np.sum(np.tanh(A @ t.ravel()) ** 2))

    theta = rng.standard_normal(40) * 0.1
    t = np.tanh(A @ theta)
    grad = A.T @ (2 * t * (1 - t ** 2))
    bad = grad.copy()
    bad[7] *= 1.5
    options = {"mode": "directions", "n_directions": 8, "distribution": distribution}
    assert fc.check(cost, theta.reshape(shape), grad.reshape(shape), **options).verdict == "pass"
    report = fc.check(cost, theta.reshape(shape), bad.reshape(shape), **options)
    assert report.failing_groups == ["theta"] and report.group("theta").escalated
    assert report.worst(1)[0].label.startswith("theta[7")
    quick = fc.check(cost, theta.reshape(shape), bad.reshape(shape), escalate=False, **options)
    assert quick.group("theta").verdict == "fail" and quick.group("theta").checked == 8


def test_directions_mode_takes_the_groups_its_directions_found_right_as_evidence_of_where_an_error_enters():
    """missing_l2 wrongs every W and no b: the b groups, right by their directions, rule out "every layer is
    wrong from the top down"; a wrong activation derivative of layer 2 still gets its layer named."""
    net, params, X, Y = network("S")
    for bug, layers in (("missing_l2", False), ("activation_derivative", True)):
        grads = buggy_gradient(net, bug, params, X, Y)
        report = net.check(params, grads, X, Y, mode="directions", n_directions=8)
        full = net.check(params, grads, X, Y)
        assert ("(layers)" in report.diagnoses) == layers == ("(layers)" in full.diagnoses), bug
