"""``fc.check`` on a user's unmodified cost: the traced engine by default, the fallback named in the report."""

import json

import numpy as np
import pytest
from traced_models import course_mlp, cs231n_net

import fastcheck as fc
from fastcheck.errors import InputError


def test_check_uses_the_traced_engine_and_agrees_with_the_reference():
    cost, params, grads = course_mlp()
    traced = fc.check(cost, params, grads)
    reference = fc.check(cost, params, grads, engine="reference")
    assert traced.settings["engine"] == "traced" and "traced_not_used" not in traced.settings
    assert reference.settings["engine"] == "reference"
    assert traced.verdict == reference.verdict == "pass"
    assert [g.verdict for g in traced.groups] == [g.verdict for g in reference.groups]
    assert "traced engine" in str(traced)


def test_a_planted_bug_is_named_through_check():
    cost, params, grads = course_mlp(sizes=(6, 5, 4, 1), m=5)
    grads["dW2"] = grads["dW2"].copy()
    grads["dW2"][3, 1] *= 1.1
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "traced"
    assert report.failing_groups == ["W2"]
    worst = report.worst(1)[0]
    assert (worst.group, worst.index) == ("W2", (3, 1))


def test_relu_kinks_are_listed_and_left_out():
    cost, params, grads, X = cs231n_net(seed=3)
    pre = X @ params["W1"] + params["b1"]
    params["b1"] = params["b1"].copy()
    params["b1"][3] -= pre[2, 3] - 1e-9
    grads = cost(params, grads=True)
    report = fc.check(cost, params, grads)
    assert report.settings["engine"] == "traced"
    assert report.passed and report.n_kinks > 0


def _untraceable(p):
    return float(np.sum(np.linalg.solve(p["W"], np.ones(3))) + np.sum(p["W"] ** 2))


W = {"W": np.random.default_rng(0).standard_normal((3, 3)) + 3 * np.eye(3)}


def _untraceable_grads():
    A = W["W"]
    x = np.linalg.solve(A, np.ones(3))
    return {"W": -np.outer(np.linalg.solve(A.T, np.ones(3)), x) + 2 * A}


def test_fallback_names_the_reason():
    report = fc.check(_untraceable, W, _untraceable_grads())
    assert report.settings["engine"] == "reference"
    assert report.settings["traced_not_used"] == "np.linalg.solve is not supported"
    assert report.passed
    assert json.loads(report.to_json())["settings"]["traced_not_used"] == "np.linalg.solve is not supported"
    workers = fc.check(_untraceable, W, _untraceable_grads(), n_jobs=2)
    assert workers.settings["engine"] == "blackbox" and "np.linalg.solve" in workers.settings["traced_not_used"]


def test_forcing_the_traced_engine_on_an_untraceable_cost_is_an_error():
    with pytest.raises(InputError, match="'traced' cannot be used on this cost: np.linalg.solve is not supported"):
        fc.check(_untraceable, W, _untraceable_grads(), engine="traced")


def test_black_box_settings_keep_the_black_box_engine():
    cost, params, grads = course_mlp()
    assert fc.check(cost, params, grads, n_jobs=2, chunk_size=50).settings["engine"] == "blackbox"


@pytest.mark.parametrize("mode", [dict(mode="subset", fraction=0.3), dict(mode="directions", n_directions=3)])
def test_other_modes_use_the_traced_engine(mode):
    cost, params, grads = course_mlp()
    report = fc.check(cost, params, grads, **mode)
    assert report.settings["engine"] == "traced" and report.verdict == "pass"
