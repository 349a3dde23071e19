"""A cost returning ``(loss, grads)``: its loss is traced, its gradient code may write into plain arrays.

A hand-written backward accumulates into ``np.zeros`` (``dx[...] += mask * dout``); only the
loss matters to the trace, so those writes do not end it, while a loss that depends on such
a write (or on a Python float taken from a traced value) still falls back, with the reason.
"""

import numpy as np
import pytest
from traced_models import pool_net

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.traced import NotTraceable, traced_engine

EPS = 1e-7


@pytest.mark.parametrize("bug", [None, "W1"])
def test_check_of_a_loss_grads_cost_uses_the_traced_engine(bug):
    cost, params = pool_net(bug=bug)
    traced = fc.check(cost, params)
    reference = fc.check(cost, params, engine="reference")
    assert traced.settings["engine"] == "traced", traced.settings.get("traced_not_used")
    assert [g.verdict for g in traced.groups] == [g.verdict for g in reference.groups]
    if bug is None:
        assert traced.passed
    else:
        assert traced.failing_groups == ["W1"]
        worst = traced.worst(1)[0]
        assert (worst.group, worst.index) == ("W1", (2, 5))


V = np.linspace(-1.0, 1.0, 4)
BUFFER = np.zeros(3)


def _loss_through_out(p):  # the loss reads a plain array a traced result was written into
    h = np.zeros(3)
    h += p["W"] @ V
    return np.sum(h * p["v"]), {"W": np.outer(p["v"], V), "v": h.copy()}


def _loss_through_buffer(p):  # the same through an array kept between calls
    BUFFER[:] = 0.0
    np.add(BUFFER, p["W"] @ V, out=BUFFER)
    return np.sum(BUFFER * p["v"]), {"W": np.outer(p["v"], V), "v": BUFFER.copy()}


def _loss_through_float(p):  # the loss uses a Python float taken from a traced value
    scale = float(np.sum(p["W"]))
    return np.sum(p["v"] ** 2) * scale, {"W": np.full((3, 4), np.sum(p["v"] ** 2)), "v": 2 * p["v"] * scale}


@pytest.mark.parametrize("cost", [_loss_through_out, _loss_through_buffer, _loss_through_float])
def test_a_loss_that_depends_on_a_value_that_left_falls_back(cost):
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((3, 4)), "v": rng.standard_normal(3)}
    layout, theta = Layout.from_params(params)
    with pytest.raises(NotTraceable, match="the loss depends on it.*pass `grads` and a forward-only cost"):
        traced_engine(CostObjective(cost, layout, returns_grads=True), layout, theta, EPS)
    report = fc.check(cost, params)
    assert report.settings["engine"] != "traced" and "the loss depends on it" in report.settings["traced_not_used"]
    assert report.passed
    wrong = lambda p: (cost(p)[0], {**cost(p)[1], "W": cost(p)[1]["W"] * 1.5})  # noqa: E731
    assert fc.check(wrong, params).failing_groups == ["W"]


def _messages_cost(kind):
    source = {
        "dot": "def cost(p):\n    x = np.ones((2, 3))\n    return np.sum(x.dot(p['W']))\n",
        "asarray": "def cost(p):\n    return np.sum(np.asarray(p['W']) * p['W'])\n",
        "cumsum": "def cost(p):\n    return np.sum(np.cumsum(p['W']))\n",  # np.prod and np.nansum: supported now
        "nanmax": "def cost(p):\n    return np.nanmax(p['W'] ** 2)\n",
    }[kind]
    scope = {"np": np}
    exec(compile(source, "<string>", "exec"), scope)  # code without a source file, as `python -c`
    return scope["cost"]


@pytest.mark.parametrize(("kind", "reason"), [
    ("dot", r"\.dot\(\) is called with a traced argument at <string>:3, in code without a source file .* x @ w"),
    ("asarray", "to a plain numpy array at <string>:2"),
    ("cumsum", "np.cumsum is not supported at <string>:2"),
    ("nanmax", "np.nanmax is not supported at <string>:2"),
])
def test_fallback_reasons_name_the_line_and_what_to_write(kind, reason):
    params = {"W": np.random.default_rng(2).standard_normal((3, 2))}
    layout, theta = Layout.from_params(params)
    with pytest.raises(NotTraceable, match=reason):
        traced_engine(CostObjective(_messages_cost(kind), layout), layout, theta, EPS)
