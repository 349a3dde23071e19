"""User-style models (``tests/models``) held to the reference engine.

Every model's backprop equals the reference engine's central differences entry by entry
(the maths of the fixtures), passes ``fc.check``, and every planted bug fails with the
right groups (and entry) named, by ``fc.check`` and, for the layers, ``fc.check_layer``,
with the default engine (traced where it applies) and with the reference loop alike.
What fastcheck cannot say yet is written as the right assertion and marked
``xfail(strict=True)`` with the issue that will make it pass.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import BIG, LAYERS, SMALL, build, build_layer, cs231n
from threadpoolctl import threadpool_limits

import fastcheck as fc
from fastcheck.engines.reference import reference_engine

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: The big models are checked on a seeded subset: this many entries of each group at least;
#: without escalation, which would re-check every entry of a flagged group (minutes here).
BIG_SUBSET = {"mode": "subset", "n_samples": 64, "min_per_group": 16, "seed": 0, "escalate": False}
#: fc.check's default engine (traced where it applies) and the reference loop: the verdicts must agree.
ENGINES = [pytest.param(None, id="default"), pytest.param("reference", id="reference")]
#: The models the traced engine does not run today, and why (the default falls back to the reference loop).
NOT_TRACED: dict = {}

@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The models' products are small: on a shared machine, BLAS threads only contend
    (this file took 53 s with the default threads, 12 s with one, under the same load)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@functools.cache
def case(name):
    return build(name)


class Objective:
    """What the reference engine evaluates: the case's cost at a flat theta (no kinks known)."""

    def __init__(self, cost, layout):
        self.cost, self.layout = cost, layout

    def __call__(self, theta, coordinate, sign):
        return float(self.cost(self.layout.unflatten(theta))), False


def seeded_subset(layout, per_group, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([g.start + np.sort(rng.choice(g.size, min(per_group, g.size), replace=False))
                           for g in layout.groups])


def reference_and_analytic(c, indices=None, eps=1e-7):
    """Central differences of the reference engine and the user's gradient at the same entries."""
    layout, theta = fc.Layout.from_params(c.params)
    idx = np.arange(layout.n_params) if indices is None else indices(layout)
    evaluations = reference_engine(Objective(c.cost, layout), theta, idx, eps)
    rounding = abs(c.cost(c.params)) * np.finfo(np.float64).eps / eps
    return layout, evaluations.numeric, layout.flatten_grads(c.meta["grads_clean"])[idx], rounding


def assert_matches(numeric, analytic, rounding):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=100 * rounding)


def _not_ties(names):
    return [n for n in names if n != "layer_max_pool_ties"]


# ---------------------------------------------------------------------- the fixtures' maths
@pytest.mark.parametrize("name", _not_ties(SMALL))
def test_backprop_equals_the_reference_engine_entry_by_entry(name):
    _, numeric, analytic, rounding = reference_and_analytic(case(name))
    assert_matches(numeric, analytic, rounding)


@pytest.mark.parametrize("name", BIG)
def test_big_backprop_equals_the_reference_engine_on_a_seeded_subset(name):
    _, numeric, analytic, rounding = reference_and_analytic(case(name), lambda layout: seeded_subset(layout, 8))
    assert_matches(numeric, analytic, rounding)


def test_the_gradient_dicts_come_as_the_users_code_returns_them():
    course = {f"d{k}{l}" for k in "WbZ" for l in (1, 2, 3)} | {"dA0", "dA1", "dA2"}
    assert set(case("course_mlp").grads) == course
    assert set(case("rnn").grads) == {"dWax", "dWaa", "dWya", "dba", "dby", "da_next"}
    c = case("cs231n_fc_bn")
    assert list(c.grads) == list(c.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                                                 "W3", "b3"]
    loss, grads = c.meta["loss"](c.params)  # model.loss(X, y) -> (loss, grads), as CS231n's
    assert loss == pytest.approx(c.cost(c.params), rel=1e-15) and grads.keys() == c.grads.keys()


def test_every_planted_bug_says_what_the_user_wrote():
    docs = {b.name: b.doc for n in SMALL for b in case(n).meta["bugs"].values()}
    assert all(docs.values()) and docs["relu_derivative_layer2"].startswith("``dZ2 = dA2 * A2``")


def test_the_sizes_are_the_issues():
    assert [case(n).meta["n_params"] for n in BIG] == [99_081, 41_418, 7_643]
    assert case("cs231n_cnn_big").meta["data"][0].shape == (8, 3, 32, 32)
    assert (case("rnn_big").meta["n_a"], case("rnn_big").meta["T"], case("rnn_big").meta["vocab"]) == (64, 20, 27)


def test_max_pool_ties_the_numeric_gradient_is_half_the_analytic_at_the_tied_entries():
    c = case("layer_max_pool_ties")
    layout, numeric, analytic, rounding = reference_and_analytic(c)
    tied = np.zeros(layout.n_params, dtype=bool)
    tied[[np.ravel_multi_index(i, c.params["x"].shape) for i in c.meta["tie_entries"]]] = True
    assert tied.sum() == 12 and np.all(analytic[tied] != 0)
    assert_matches(numeric[tied], analytic[tied] / 2, rounding)
    assert_matches(numeric[~tied], analytic[~tied], rounding)


# ---------------------------------------------------------------------- fastcheck on them today
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", _not_ties(SMALL))
def test_correct_backprop_passes(name, engine):
    c = case(name)
    fc.assert_gradient(c.cost, c.params, c.meta["grads_clean"], engine=engine)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"issue 11: {why}"))
                                  if (why := NOT_TRACED.get(n)) else n for n in SMALL + BIG])
def test_the_default_engine_is_the_traced_one(name):
    c = case(name)
    options = BIG_SUBSET if name in BIG else {}
    report = fc.check(c.cost, c.params, c.meta["grads_clean"], **options)
    assert report.settings["engine"] == "traced", report.settings.get("traced_not_used")


def test_a_bias_before_batch_norm_passes_as_zero_to_rounding():
    c = case("cs231n_fc_bn")
    report = fc.check(c.cost, c.params, c.meta["grads_clean"])
    assert report.passed and report.group("b1").zero_to_rounding and report.group("b2").zero_to_rounding


@pytest.mark.parametrize("name", BIG)
def test_big_correct_backprop_passes_on_a_subset(name):
    c = case(name)
    report = fc.assert_gradient(c.cost, c.params, c.meta["grads_clean"], **BIG_SUBSET)
    assert all(g.checked >= min(16, g.size) for g in report.groups)


def _bugs(names, *, entry_bugs=True):
    return [pytest.param(n, b, id=f"{n}-{b}") for n in names for b, bug in case(n).meta["bugs"].items()
            if not bug.kink and (entry_bugs or bug.entry is None)]


def assert_found(report, bug):
    assert not report.passed, report
    assert set(bug.wrong) <= set(report.failing_groups), report
    assert all(report.group(g).verdict == "pass" for g in bug.right), report
    if bug.entry is not None:
        worst = report.worst(1)[0]
        assert (worst.group, worst.index) == bug.entry
        assert report.group(bug.entry[0]).wrong_entries == 1


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "bug"), _bugs(SMALL))
def test_planted_bug_fails_in_the_right_groups(name, bug, engine):
    c = case(name)
    assert_found(fc.check(c.cost, c.params, c.meta["bugs"][bug].grads, engine=engine), c.meta["bugs"][bug])


@pytest.mark.parametrize(("name", "bug"), _bugs(BIG, entry_bugs=False))
def test_big_planted_bug_fails_in_the_right_groups_on_a_subset(name, bug):
    c = case(name)
    assert_found(fc.check(c.cost, c.params, c.meta["bugs"][bug].grads, **BIG_SUBSET), c.meta["bugs"][bug])


TIE_ENGINES = [pytest.param(None, id="default"), pytest.param("reference", id="reference")]


@pytest.mark.parametrize("engine", TIE_ENGINES)
def test_max_pool_ties_are_a_kink_not_a_bug(engine):
    c = case("layer_max_pool_ties")
    report = fc.check(c.cost, c.params, c.grads, engine=engine)
    assert report.passed and report.group("x").kinks == len(c.meta["tie_entries"]) == 12


# ---------------------------------------------------------------------- layouts as they come
@pytest.mark.parametrize(("name", "aside"), [("course_mlp", {"dA0", "dA1", "dA2", "dZ1", "dZ2", "dZ3"}),
                                             ("rnn", {"da_next"})])
def test_the_course_gradients_dict_is_accepted_as_it_comes(name, aside):
    c = case(name)
    report = fc.assert_gradient(c.cost, c.params, c.grads)
    assert set(report.settings["grads_not_parameters"]) == aside


def test_a_cs231n_loss_returning_loss_and_grads_is_accepted_with_grads_omitted():
    c = case("cs231n_two_layer_svm")
    assert fc.check(c.meta["loss"], c.params).passed
    planted = c.meta["bugs"]["db_mean"]
    buggy_loss = cs231n.ModelLoss(planted.raw.model, *c.meta["data"])  # the model whose affine_backward is wrong
    assert_found(fc.check(buggy_loss, c.params), planted)


# ---------------------------------------------------------------------- layer checks
def _layers(with_bugs=False):
    return [pytest.param(n, b, id=f"{n}-{b}" if b else n) for n in LAYERS if n != "max_pool_ties"
            for b in ([b for b in build_layer(n).bugs] if with_bugs else [None])]


@pytest.mark.parametrize(("name", "bug"), _layers())
def test_correct_layer_passes_check_layer(name, bug):
    layer = build_layer(name)
    fc.assert_layer(layer.forward, layer.inputs, backward=layer.backward, dout=layer.dout)
    report = fc.assert_layer(layer.forward, layer.inputs, backward=layer.backward)  # a seeded random dout
    assert "standard normal" in report.settings["layer"]


@pytest.mark.parametrize(("name", "bug"), _layers(with_bugs=True))
def test_planted_layer_bug_fails_check_layer_with_the_input_named(name, bug):
    layer = build_layer(name)
    planted = layer.bugs[bug]
    by_backward = fc.check_layer(layer.forward, layer.inputs, backward=planted.raw.backward, dout=layer.dout)
    by_grads = fc.check_layer(layer.forward, layer.inputs, planted.grads(layer.inputs), dout=layer.dout)
    for report in (by_backward, by_grads):
        assert_found(report, planted)


@pytest.mark.parametrize("engine", TIE_ENGINES)
def test_max_pool_ties_are_a_kink_for_check_layer_too(engine):
    layer = build_layer("max_pool_ties")
    report = fc.check_layer(layer.forward, layer.inputs, backward=layer.backward, dout=layer.dout, engine=engine)
    assert report.passed and report.group("x").kinks == 12


# ---------------------------------------------------------------------- the example
def test_the_user_example_runs():
    done = subprocess.run([sys.executable, str(EXAMPLES / "user_course_mlp.py")], capture_output=True, text=True,
                          timeout=120, cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    assert "99,081" in done.stdout and "PASSED" in done.stdout
