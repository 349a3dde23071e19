"""The verification of a trace: its traced values are kept for the check only once every comparison passed.

A change rule broken on purpose (monkeypatched) must still send the problem to the exact
engine, with the reason in the report, and leave nothing traced behind; a trace that
passes serves its verified coordinates without running them again, equal to a fresh run.
"""

import numpy as np
import pytest
from traced_models import rnn

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.traced import NotTraceable, TracedEngine, evaluate, traced_engine
from fastcheck.engines.traced.elementwise import COTH_SERIES
from fastcheck.engines.traced.tracing import trace

EPS = 1e-7


def _rnn():
    cost, params, _ = rnn(n_a=6, vocab=5, T=4)
    layout, theta = Layout.from_params(params)
    return cost, params, layout, theta, CostObjective(cost, layout)


def _corrupt_tanh(monkeypatch):
    """tanh's change off by one part in a thousand: far above rounding, as a wrong rule would be."""
    right = evaluate.RULES["tanh"]
    monkeypatch.setitem(evaluate.RULES, "tanh", lambda ev, node, inputs: _scaled(right(ev, node, inputs)))


def _scaled(change):
    change.values = change.values * (1 + 1e-3)
    return change


def test_a_wrong_rule_is_caught_and_nothing_traced_is_kept(monkeypatch):
    cost, _, layout, theta, objective = _rnn()
    graph = trace(cost, layout, theta)
    _corrupt_tanh(monkeypatch)
    engine = TracedEngine(graph, objective, layout, theta, EPS)
    with pytest.raises(NotTraceable, match="differs from the cost"):
        engine.verify()
    assert engine._known is None  # the values of the failed verification reach no one


def test_a_wrong_rule_sends_the_check_to_the_exact_engine_with_the_reason(monkeypatch):
    cost, params, _, _, _ = _rnn()
    grads = {name: np.zeros_like(value) for name, value in params.items()}  # any gradient: the numerics are compared
    reference = fc.check(cost, params, grads, engine="reference")
    assert fc.check(cost, params, grads).settings["engine"] == "traced"  # the broken rule is what falls back
    _corrupt_tanh(monkeypatch)
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "reference"
    assert "differs from the cost" in report.settings["traced_not_used"]
    assert [e.numeric for e in report.worst(5)] == [e.numeric for e in reference.worst(5)]


def test_verified_coordinates_are_served_once_and_agree_with_a_fresh_run(monkeypatch):
    cost, _, layout, theta, objective = _rnn()
    engine = traced_engine(objective, layout, theta, EPS)
    known = engine._known[0]
    by_bias = layout.groups[[g.name for g in layout.groups].index("ba")]
    assert set(range(by_bias.start, by_bias.stop)) <= set(known.tolist())  # a small group verified whole
    run = []
    original = TracedEngine._chunk
    monkeypatch.setattr(TracedEngine, "_chunk",
                        lambda self, p, local: run.append(local.size) or original(self, p, local))
    everything = np.arange(layout.n_params)
    cached = engine.coordinates(everything)
    assert sum(run) == layout.n_params - known.size  # the verified ones are not run again
    fresh = TracedEngine(engine.graph, objective, layout, theta, EPS).coordinates(everything)
    for name in ("cost_plus", "cost_minus", "numeric"):
        np.testing.assert_allclose(getattr(cached, name), getattr(fresh, name), rtol=1e-9, atol=0)
    np.testing.assert_allclose(cached.cost_plus - cached.cost_minus, fresh.cost_plus - fresh.cost_minus,
                               rtol=1e-6, atol=4 * np.spacing(engine.cost))


@pytest.mark.parametrize("scale", [0.0, 1e-12, 1e-7, 0.5 * COTH_SERIES, 0.99 * COTH_SERIES, 4 * COTH_SERIES])
def test_tanh_changes_agree_with_the_full_evaluation_on_both_sides_of_the_series(scale):
    """Changes below :data:`COTH_SERIES` take the series of 1 / tanh(d), larger ones tanh itself."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3))
    d = rng.uniform(-1, 1, (2, 7, 3)) * scale

    def cost(p):
        return np.sum(np.tanh(p["x"]))

    layout, theta = Layout.from_params({"x": x})
    graph = trace(cost, layout, theta)
    leaf = evaluate.Change(d.copy(), {}, x.shape)
    order = evaluate.plan(graph, [graph.params[0]])
    change, _, _ = evaluate.run(graph, order, {graph.params[0]: leaf})
    exact = np.array([np.sum(np.tanh(x + dk)) - np.sum(np.tanh(x)) for dk in d])
    np.testing.assert_allclose(change, exact, rtol=0, atol=64 * np.spacing(np.sum(np.abs(np.tanh(x)))))
