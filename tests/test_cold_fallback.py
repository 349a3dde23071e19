"""A check on a fresh install, while the batched engine's kernels are not compiled: the traced engine on the
network's own cost, whose report must give the batched engine's verdict and entries (to rounding) and say why.

Here the cache's state is simulated (``kernels_cached`` and ``compile_in_background`` replaced); the real
fresh cache, the child process that compiles and its lock are ``tests/test_cold_start.py``'s.
"""

from __future__ import annotations

import fcntl

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastcheck as fc
from fastcheck.api import prepare_mlp
from fastcheck.apps.bugs import buggy_gradient
from fastcheck.engines.mlp import warmup
from fastcheck.engines.mlp.batched import batched_engine
from fastcheck.engines.traced import NotTraceable
from fastcheck.pipeline import network

PAIRS = [("relu", "softmax", [5, 4, 6, 3]), ("leaky_relu", "sigmoid", [5, 4, 6, 3]),
         ("tanh", "softmax", [5, 4, 6, 3, 3]), ("identity", "identity", [5, 4, 3]),
         ("sigmoid", "sigmoid", [5, 4, 6, 2])]  # the sigmoid's np.logaddexp


@pytest.fixture
def compiling(monkeypatch):
    """The kernels not in the cache, their compile running elsewhere."""
    monkeypatch.setattr(warmup, "kernels_cached", lambda net: False)
    monkeypatch.setattr(warmup, "compile_in_background", lambda: True)


def problem(hidden, output, layers, at=None):
    """A network, its parameters and data; ``at``: a hidden unit or the logits put at a kink of the stable
    formulas for example 0 (a relu unit at 0, two logits tied for the max, a logit at 0)."""
    net = fc.MLP(layers, hidden=hidden, output=output, l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(7, seed=1)
    zs, _ = net.forward(params, X)
    last = f"b{net.n_layers}"
    if at == "hidden":
        params["b1"][0, 0] -= zs[0][0, 0] - 1e-9
    elif at == "logits" and output == "softmax":
        top = np.argsort(zs[-1][:, 0])
        params[last][top[-2], 0] += zs[-1][top[-1], 0] - zs[-1][top[-2], 0] + 1e-12
    elif at == "logits":
        params[last][0, 0] -= zs[-1][0, 0] - 1e-12
    return net, params, X, Y


@pytest.mark.parametrize("at", [None, "hidden", "logits"])
@pytest.mark.parametrize(("hidden", "output", "layers"), PAIRS)
def test_every_entry_equals_the_batched_engine_s_to_rounding(compiling, hidden, output, layers, at):
    net, params, X, Y = problem(hidden, output, layers, at)
    grads = net.gradient(params, X, Y)
    prepared = prepare_mlp(net, params, grads, X, Y)
    assert prepared.engine.name == "traced"
    everything = np.arange(net.n_params)
    cold, warm = prepared.engine.coordinates(everything), batched_engine(net, params, X, Y, everything, fc.DEFAULT_EPS)
    J = net.cost(params, X, Y)
    # the engines flag different branches (the traced engine the softmax's shift and the softplus's max too); the
    # reports' kinks are decided from the values, the same for both
    batched = prepare_mlp(net, params, grads, X, Y, engine="batched")
    kinks = [[e.flat_index for e in p.report(ev).kinks] for p, ev in ((prepared, cold), (batched, warm))]
    assert kinks[0] == kinks[1]
    for key in ("cost_plus", "cost_minus"):
        assert_allclose(getattr(cold, key), getattr(warm, key), rtol=0, atol=4 * np.spacing(J), err_msg=key)
    assert_allclose(cold.numeric, warm.numeric, rtol=1e-9, atol=64 * np.finfo(float).eps * np.abs(warm.numeric).max())
    if at == "hidden" and hidden in ("relu", "leaky_relu"):
        assert warm.kinks.any() and kinks[1]  # the planted kink is one, in both


@pytest.mark.parametrize("bug", [None, "scaled", "transposed"])
@pytest.mark.parametrize(("hidden", "output", "layers"), PAIRS[:3])
def test_the_report_gives_the_batched_verdicts_and_says_why_it_used_the_traced_engine(compiling, hidden, output,
                                                                                       layers, bug):
    net, params, X, Y = problem(hidden, output, layers)
    grads = buggy_gradient(net, bug, params, X, Y) if bug else net.gradient(params, X, Y)
    cold = net.check(params, grads, X, Y)
    warm = net.check(params, grads, X, Y, engine="batched")
    assert cold.settings["engine"] == "traced" and warm.settings["engine"] == "batched"
    assert "batched engine not used: its numba kernels are not compiled yet" in str(cold)
    assert "batched_not_used" not in warm.settings
    assert (cold.verdict, cold.failing_groups) == (warm.verdict, warm.failing_groups)
    rows = [[(g.name, g.checked, g.kinks, g.wrong_entries, g.verdict) for g in r.groups] for r in (cold, warm)]
    assert rows[0] == rows[1]
    if bug:  # the same errors (a correct gradient's are rounding; ties, as a scaled group's, in any order)
        assert not cold.passed
        assert {w.group for w in cold.worst(5)} == {w.group for w in warm.worst(5)}
        assert_allclose([w.rel_error for w in cold.worst(5)], [w.rel_error for w in warm.worst(5)], rtol=1e-6)
        assert_allclose(cold.difference, warm.difference, rtol=1e-9)
    else:
        assert cold.passed and max(cold.difference, warm.difference) < 1e-12


def test_the_demo_s_planted_bug_is_caught_and_named(compiling, capsys):
    from fastcheck.apps.cli import main

    assert main(["demo", "--network", "S"]) == 0
    out = capsys.readouterr().out
    assert "the bug was caught in W2" in out and "correct gradient passed" in out
    assert out.count("batched engine not used") == 2 and "traced engine, mode full" in out
    assert "W2[" in out.split("2. a planted bug")[1]


def test_an_engine_asked_for_runs_whatever_the_cache(monkeypatch, small_net):
    net, params, X, Y = small_net
    grads = net.gradient(params, X, Y)
    monkeypatch.setattr(warmup, "kernels_cached", lambda net: False)
    monkeypatch.setattr(warmup, "compile_in_background", lambda: True)
    assert net.check(params, grads, X, Y, engine="batched").settings["engine"] == "batched"
    assert net.check(params, grads, X, Y, engine="reference").settings["engine"] == "reference"
    assert net.check(params, grads, X, Y, mode="directions", n_directions=4).settings["engine"] == "traced"
    monkeypatch.setattr(warmup, "compile_in_background", lambda: False)  # a cache no compile could fill
    assert net.check(params, grads, X, Y).settings["engine"] == "batched"
    monkeypatch.setattr(warmup, "compile_in_background", lambda: True)
    monkeypatch.setattr(warmup, "kernels_cached", lambda net: True)
    assert net.check(params, grads, X, Y).settings["engine"] == "batched"


def test_a_network_the_traced_engine_cannot_follow_takes_the_batched_engine_and_starts_no_compile(monkeypatch):
    started = []
    monkeypatch.setattr(warmup, "kernels_cached", lambda net: False)
    monkeypatch.setattr(warmup, "compile_in_background", lambda: started.append(1) or True)
    net, params, X, Y = problem("sigmoid", "softmax", [5, 4, 3])
    with monkeypatch.context() as patch:  # as for a cost the traced engine cannot follow
        patch.setattr(network, "_traced", lambda *args: (_ for _ in ()).throw(NotTraceable("not followed")))
        assert net.check(params, net.gradient(params, X, Y), X, Y).settings["engine"] == "batched"
    assert not started
    net, params, X, Y = problem("relu", "softmax", [5, 4, 3])
    assert net.check(params, net.gradient(params, X, Y), X, Y).settings["engine"] == "traced"
    assert started


def test_the_kernels_a_network_needs():
    from fastcheck.engines.mlp import kernels

    assert warmup.kernels_needed(fc.MLP([4, 3], output="identity")) == [kernels.layer_kernel]
    assert warmup.kernels_needed(fc.MLP([4, 3, 3, 2], hidden="tanh")) == [kernels.layer_kernel]
    assert warmup.kernels_needed(fc.MLP([4, 3, 3, 2])) == [kernels.layer_kernel, kernels.min_ratio]
    assert warmup.kernels_needed(fc.MLP([4, 3, 3, 3, 2])) == [kernels.layer_kernel, kernels.min_ratio,
                                                              kernels.min_ratio_batched]
    assert warmup.kernels_cached(fc.MLP([4, 3, 3, 3, 2]))  # compiled in this process (the session's fixture)


def test_a_compile_another_run_holds_the_lock_of_starts_no_second(monkeypatch, tmp_path):
    lock = tmp_path / warmup.LOCK_NAME
    monkeypatch.setattr(warmup, "_lock_path", lambda: str(lock))
    monkeypatch.setattr(warmup, "_child", None)
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert warmup.compile_in_background()  # it compiles elsewhere: the caller may rely on it
        assert warmup._child is None
    monkeypatch.setattr(warmup, "_lock_path", lambda: None)
    assert not warmup.compile_in_background()  # no cache to fill: the caller compiles in-process


@pytest.mark.parametrize(("hidden", "output", "layers"), PAIRS)
def test_the_objective_the_traced_engine_follows_is_the_cost_bit_for_bit(hidden, output, layers):
    net, params, X, Y = problem(hidden, output, layers)
    value = net.objective(params, X, Y)
    assert isinstance(value, np.floating) and value == net.cost(params, X, Y)


def test_a_compile_that_failed_is_not_started_again(monkeypatch, tmp_path):
    import subprocess
    import sys

    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed.wait()
    monkeypatch.setattr(warmup, "_lock_path", lambda: str(tmp_path / warmup.LOCK_NAME))
    monkeypatch.setattr(warmup, "_child", failed)
    assert not warmup.compile_in_background()  # the caller compiles in-process, and any error shows there
    assert warmup._child is failed
