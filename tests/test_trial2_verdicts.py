"""Verdicts on correct gradients the second user trial found wrong: a cost plus a large
constant, a saturated sigmoid's ``log(1 - AL)``, and a kink exactly at theta. Each correct
gradient must not fail (a numerically poor cost warns, and says why); a planted bug beside
it must still fail with its group named.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.report.layers import where_error_enters
from fastcheck.report.rows import GroupRow

ENGINES = [pytest.param(None, id="default"), pytest.param("reference", id="reference"),
           pytest.param("blackbox", id="blackbox")]

DIMS = [20, 16, 8, 5, 1]


def _engine(engine):
    return {} if engine is None else {"engine": engine}


# ---------------------------------------------------------------- the course's L-layer network
def _init(scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    p = {}
    for l in range(1, len(DIMS)):
        p[f"W{l}"] = rng.standard_normal((DIMS[l], DIMS[l - 1])) / np.sqrt(DIMS[l - 1]) * scale
        p[f"b{l}"] = rng.standard_normal((DIMS[l], 1)) * 0.1
    return p


def _data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 50))
    return X, (rng.random((1, 50)) > 0.5).astype(float)


def _forward(p, X):
    L = len(p) // 2
    A, caches = X, []
    for l in range(1, L):
        Z = p[f"W{l}"] @ A + p[f"b{l}"]
        caches.append((A, Z))
        A = np.tanh(Z)
    Z = p[f"W{L}"] @ A + p[f"b{L}"]
    caches.append((A, Z))
    return 1 / (1 + np.exp(-Z)), caches


def _cost(p, X, Y):
    AL, _ = _forward(p, X)
    return -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / X.shape[1]


def _backward(p, X, Y):
    m, L = X.shape[1], len(p) // 2
    AL, caches = _forward(p, X)
    g, dZ = {}, AL - Y
    for l in range(L, 0, -1):
        A_prev, _ = caches[l - 1]
        g[f"dW{l}"] = dZ @ A_prev.T / m
        g[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        if l > 1:
            dZ = (p[f"W{l}"].T @ dZ) * (1 - np.tanh(caches[l - 2][1]) ** 2)
    return g


# ---------------------------------------------------------------- a cost plus a large constant
def _offset():
    p = _init()
    X, Y = _data()
    return (lambda q: _cost(q, X, Y) + 1e5), p, _backward(p, X, Y)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_correct_gradient_of_a_cost_plus_a_large_constant_warns_and_names_the_cause(engine):
    cost, params, grads = _offset()
    report = fc.check(cost, params, grads, **_engine(engine))
    assert report.verdict != "fail" and not report.failing_groups
    assert report.diagnoses == {}  # no bug is described where none was shown
    for g in report.groups:
        assert g.wrong_entries == 0 and g.verdict != "fail"
        if g.verdict == "warn":  # never silently: the note names the cause and the fix
            assert "rounding, no bug shown" in report.notes[g.name] and "subtract the constant" in report.notes[g.name]
    warned = {g.name for g in report.groups if g.verdict == "warn"}
    assert {row.label.split("[")[0] for row in report.sweeps} == warned  # the sweep runs on them
    assert not any(row.kind == "bug" for row in report.sweeps)


def test_the_reference_loop_warns_on_a_cost_plus_a_large_constant():
    """At eps = 1e-7 the constant rounds J+ and J- to the same value: every numeric entry is 0."""
    cost, params, grads = _offset()
    report = fc.check(cost, params, grads, engine="reference", sweep=True)
    assert report.verdict == "warn" and not report.failing_groups
    assert all(g.verdict == "warn" for g in report.groups)
    assert "wrong:" not in str(report) and "(layers)" not in str(report)
    for row in report.sweeps:  # a sentence never calls an error 'small' that it calls too large elsewhere
        assert "no step makes it small" not in row.sentence


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bug_beyond_the_rounding_of_a_large_constant_fails(engine):
    cost, params, grads = _offset()
    grads["dW1"] = grads["dW1"].copy()
    grads["dW1"][2, 3] += 1.0  # the rounding scale at eps = 1e-7 is 2.2e-4: this is 4500 of them
    report = fc.check(cost, params, grads, **_engine(engine))
    assert report.verdict == "fail" and report.failing_groups == ["W1"]
    assert report.group("W1").wrong_entries == 1 and "W1[2, 3]" in report.diagnoses["W1"]
    # a 10% bug of a group, rounded away at eps = 1e-7, fails at the larger step the note suggests
    _, _, grads = _offset()
    grads["db2"] = grads["db2"] * 1.1
    report = fc.check(cost, params, grads, eps=1e-4, **_engine(engine))
    assert report.verdict == "fail" and report.failing_groups == ["b2"]


def test_a_group_failing_with_no_wrong_entry_says_why():
    gradient = np.linspace(1.0, 2.0, 6) * 1e-6  # doubled: 45 rounding scales off, short of a wrong entry's 1000
    report = fc.check(lambda t: float(10.0 + gradient @ t), np.ones(6), 2 * gradient)
    assert report.group("theta").verdict == "fail" and report.group("theta").wrong_entries == 0
    assert "failed by the difference, with no entry counted wrong" in str(report)
    assert "failed by the difference, with no entry counted wrong" in report.to_html()


# ---------------------------------------------------------------- a saturated sigmoid's log(1 - AL)
def _saturated():
    """The course's network with weights x6 and b4 + 8: 1 - AL ~ 1e-9 on some examples, so the naive
    cross-entropy's log(1 - AL) is a staircase at eps = 1e-7 (1 - AL moves one ulp at a time)."""
    p = _init(scale=6.0)
    p["b4"] = p["b4"] + 8.0
    X, Y = _data()
    return (lambda q: _cost(q, X, Y)), p, _backward(p, X, Y), X, Y


def _stable(X, Y):
    def cost(q):
        L, A = len(q) // 2, X
        for l in range(1, L):
            A = np.tanh(q[f"W{l}"] @ A + q[f"b{l}"])
        Z = q[f"W{L}"] @ A + q[f"b{L}"]
        return np.sum(np.logaddexp(0, Z) - Y * Z) / X.shape[1]

    return cost


@pytest.mark.parametrize("engine", [pytest.param(None, id="default"), pytest.param("reference", id="reference")])
def test_a_correct_gradient_of_a_saturated_sigmoid_cost_warns(engine):
    cost, params, grads, X, Y = _saturated()
    assert fc.check(_stable(X, Y), params, grads, engine="reference").verdict == "pass"  # the gradient is right
    report = fc.check(cost, params, grads, sweep=True, **_engine(engine))
    assert report.verdict == "warn" and not report.failing_groups
    assert report.diagnoses == {}  # no "only 1 of 16 entries is wrong", no layer where an error enters
    assert all(g.wrong_entries == 0 for g in report.groups)
    assert all("the cost loses precision" in report.notes[g.name] for g in report.groups if g.verdict == "warn")


@pytest.mark.parametrize("group", ["dW1", "db1", "dW2", "dW3"])
def test_a_10_percent_bug_on_a_saturated_sigmoid_cost_fails_and_is_named(group):
    cost, params, grads, _, _ = _saturated()
    grads[group] = grads[group] * 1.1
    report = fc.check(cost, params, grads, engine="reference")
    assert report.verdict == "fail" and report.failing_groups == [group[1:]]
    assert report.group(group[1:]).wrong_entries > 0
    assert [r["group"] for r in report.settings["noise"]["refuted"]] == [group[1:]]  # its noise was refuted


def test_a_single_wrong_entry_on_a_saturated_sigmoid_cost_fails_and_is_named():
    cost, params, grads, _, _ = _saturated()
    grads["dW2"] = grads["dW2"].copy()
    grads["dW2"][1, 4] += 0.5  # the cost's noise at eps = 1e-7 reaches ~2e-2 in a central difference
    report = fc.check(cost, params, grads, engine="reference")
    assert report.verdict == "fail" and report.failing_groups == ["W2"]
    assert report.group("W2").wrong_entries == 1 and "W2[1, 4]" in report.diagnoses["W2"]


def test_the_layers_sentence_never_contradicts_its_numbers():
    def row(name, difference, verdict):
        return GroupRow(name, (3,), 3, 3, 0, difference, verdict, 1 if verdict == "fail" else 0, "coordinates")

    wrong = [row("W1", 1e-2, "fail"), row("b1", 8e-3, "fail"), row("W2", 2e-2, "fail")]
    # the groups above differ by more than the failing ones: no layer's error explains the verdicts
    assert where_error_enters(wrong + [row("b2", 3e-2, "warn"), row("W3", 9e-3, "warn")]) is None
    sentence = where_error_enters(wrong + [row("b2", 1e-7, "pass"), row("W3", 1e-8, "pass")])
    assert sentence and "the right ones by 1.0e-07 or less" in sentence


# ---------------------------------------------------------------- a kink exactly at theta
def _kinky():
    def cost(p):
        return np.sum(np.abs(p["v"])) + np.sum(np.maximum(p["w"], 0.5))

    p = {"v": np.array([0.0, 1.0, -2.0]), "w": np.array([0.5, 1.0, 0.0])}
    return cost, p, {"v": np.sign(p["v"]), "w": (p["w"] > 0.5).astype(float)}


def _brute_force_kinks(params, eps=1e-7):
    """An entry crosses a kink when theta_i +- eps changes a branch the cost takes (the test of the
    traced engine's ReLU kinks, tests/test_traced_models.py): |v|'s sign, max(w, 0.5)'s winner."""
    def branches(p):
        return np.concatenate([np.sign(p["v"]), np.sign(p["w"] - 0.5)])

    flat = np.concatenate([params["v"], params["w"]])
    base, kinks = branches(params), []
    for i in range(flat.size):
        crossed = False
        for sign in (1, -1):
            work = flat.copy()
            work[i] += sign * eps
            crossed |= bool((branches({"v": work[:3], "w": work[3:]}) != base).any())
        kinks.append(crossed)
    return np.array(kinks)


@pytest.mark.parametrize("engine", ENGINES + [pytest.param("traced", id="traced")])
def test_every_engine_counts_the_kinks_at_theta_the_brute_force_definition_gives(engine):
    cost, params, grads = _kinky()
    expected = _brute_force_kinks(params)
    report = fc.check(cost, params, grads, **_engine(engine))
    assert report.verdict == "pass"
    assert report.n_kinks == expected.sum() == 2
    assert "v[0], w[0]" in str(report)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_kink_at_theta_does_not_hide_a_wrong_gradient(engine):
    cost, params, grads = _kinky()
    grads["v"] = grads["v"].copy()
    grads["v"][0] = 5.0  # neither side's derivative (+-1) nor their average
    report = fc.check(cost, params, grads, **_engine(engine))
    assert report.verdict == "fail" and report.failing_groups == ["v"]


def test_a_smooth_stationary_point_is_no_kink():
    report = fc.check(lambda t: float(np.sum(t ** 2) + np.sum(t[:2] ** 4)), np.zeros(4), np.zeros(4),
                      engine="reference")
    assert report.verdict == "pass" and report.n_kinks == 0
