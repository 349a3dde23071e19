"""The black-box engine against its oracle, the reference engine: parallel, threaded,
chunked, stacked (batch_cost) and distributed runs give the reference's numbers bit for
bit; bad costs, dead workers and Ctrl-C end the check with a clear error, never a
partial result."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

import fastcheck as fc
from fastcheck.core.directions import draw_directions
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.blackbox import blackbox_directions, blackbox_engine
from fastcheck.engines.reference import evaluate_directions, reference_engine
from fastcheck.errors import CostError, DtypeError, InputError

EPS = 1e-7
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

RNG = np.random.default_rng(7)
PARAMS = {"W1": RNG.standard_normal((4, 5)), "b1": RNG.standard_normal((4, 1)), "W2": RNG.standard_normal((3, 4))}
A = RNG.standard_normal((4, 5))


# --------------------------------------------------------------------- costs (module level: picklable)
def cost(p):
    return float(np.sum(np.sin(p["W1"]) * A) + np.sum(p["b1"] ** 3) + np.sum(np.tanh(p["W2"])) ** 2)


def grads(p):
    return {"W1": np.cos(p["W1"]) * A, "b1": 3 * p["b1"] ** 2,
            "W2": 2 * np.sum(np.tanh(p["W2"])) * (1 - np.tanh(p["W2"]) ** 2)}


def batch_cost(thetas):
    """``cost`` over rows, with the same arithmetic per row."""
    W1, b1, W2 = thetas[:, :20].reshape(-1, 4, 5), thetas[:, 20:24], thetas[:, 24:].reshape(-1, 3, 4)
    return (np.sum(np.sin(W1) * A, axis=(1, 2)) + np.sum(b1 ** 3, axis=1)
            + np.sum(np.tanh(W2), axis=(1, 2)) ** 2)


def _perturbed(p, group, index):
    return p[group][index] != PARAMS[group][index]


def raising_cost(p):
    if _perturbed(p, "W1", (2, 3)):
        raise ZeroDivisionError("planted failure")
    return cost(p)


def exiting_cost(p):
    if _perturbed(p, "W1", (2, 3)):
        os._exit(1)
    return cost(p)


def killed_cost(p):
    if _perturbed(p, "W2", (1, 2)):
        os.kill(os.getpid(), signal.SIGKILL)
    return cost(p)


def sys_exit_cost(p):
    if _perturbed(p, "b1", (1, 0)):
        sys.exit(3)
    return cost(p)


def slow_cost(p):
    time.sleep(0.25)
    return cost(p)


# --------------------------------------------------------------------- helpers
def _objective(f=cost):
    layout, theta = Layout.from_params(PARAMS)
    objective = CostObjective(f, layout)
    objective.base(theta)
    return objective, theta, np.arange(layout.n_params, dtype=np.int64)


def _engine(objective, theta, indices, **kw):
    settings = dict(n_jobs=2, batch_cost=None, backend=None, chunk_size=None, max_memory=None, progress=None)
    settings.update(kw)
    return blackbox_engine(objective, theta, indices, EPS, **settings)


def _assert_same(comp, ref):
    np.testing.assert_array_equal(comp.indices, ref.indices)
    np.testing.assert_array_equal(comp.cost_plus, ref.cost_plus)
    np.testing.assert_array_equal(comp.cost_minus, ref.cost_minus)
    np.testing.assert_array_equal(comp.numeric, ref.numeric)
    np.testing.assert_array_equal(comp.kinks, ref.kinks)
    assert comp.n_evaluations == ref.n_evaluations


@pytest.fixture(scope="module")
def reference():
    objective, theta, indices = _objective()
    return reference_engine(objective, theta, indices, EPS)


# --------------------------------------------------------------------- bit-for-bit
@pytest.mark.parametrize("backend", [None, "threading"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 10_000])
def test_parallel_is_bitwise_the_reference(reference, backend, chunk_size):
    objective, theta, indices = _objective()
    _assert_same(_engine(objective, theta, indices, backend=backend, chunk_size=chunk_size), reference)


def test_a_shuffled_subset_comes_back_in_its_order():
    objective, theta, indices = _objective()
    subset = np.random.default_rng(0).permutation(indices)[:17]
    _assert_same(_engine(objective, theta, subset, chunk_size=4), reference_engine(objective, theta, subset, EPS))


def test_check_reports_the_same_numbers_serial_and_parallel():
    serial = fc.check(cost, PARAMS, grads, engine="reference")
    for kw in (dict(n_jobs=2, chunk_size=7), dict(n_jobs=2, backend="threading", chunk_size=3),
               dict(n_jobs=-1, engine="blackbox")):
        parallel = fc.check(cost, PARAMS, grads, **kw)
        assert parallel.difference == serial.difference
        assert [g.difference for g in parallel.groups] == [g.difference for g in serial.groups]
        assert [(r.group, r.index, r.numeric) for r in parallel.worst(5)] == [
            (r.group, r.index, r.numeric) for r in serial.worst(5)]
    assert serial.passed


def test_a_planted_bug_is_named_in_parallel():
    bad = grads(PARAMS)
    bad["W2"][1, 2] *= 1.1
    report = fc.check(cost, PARAMS, bad, n_jobs=2, chunk_size=5)
    assert not report.passed
    top = report.worst(1)[0]
    assert (top.group, top.index) == ("W2", (1, 2))


def test_a_tiny_job_runs_in_process(monkeypatch, reference):
    def no_workers(*args, **kwargs):
        raise AssertionError("a tiny job must not start workers")

    monkeypatch.setattr(joblib, "Parallel", no_workers)
    objective, theta, indices = _objective()
    _assert_same(_engine(objective, theta, indices), reference)


def test_empty_indices():
    objective, theta, _ = _objective()
    ev = _engine(objective, theta, np.array([], dtype=np.int64))
    assert ev.indices.shape == ev.numeric.shape == (0,)


@pytest.mark.parametrize("kw, match", [
    (dict(n_jobs=0), "n_jobs"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(max_memory=-1), "max_memory"),
    (dict(progress="yes"), "progress"),
    (dict(backend="spark-ish"), "backend"),
])
def test_bad_settings(kw, match):
    objective, theta, indices = _objective()
    with pytest.raises(InputError, match=match):
        _engine(objective, theta, indices, **kw)


# --------------------------------------------------------------------- batch_cost
@pytest.mark.parametrize("kw", [dict(n_jobs=1), dict(n_jobs=1, max_memory=1), dict(n_jobs=2, chunk_size=5),
                                dict(n_jobs=1, chunk_size=3, max_memory=24 * 8 * 6)])
def test_batch_cost_is_the_reference(reference, kw):
    objective, theta, indices = _objective()
    comp = _engine(objective, theta, indices, batch_cost=batch_cost, **kw)
    np.testing.assert_allclose(comp.numeric, reference.numeric, rtol=0, atol=1e-8)
    _assert_same(comp, reference)  # same arithmetic per row: bit for bit


def test_check_with_batch_cost_passes_and_names_a_bug():
    assert fc.check(cost, PARAMS, grads, batch_cost=batch_cost).passed
    bad = grads(PARAMS)
    bad["b1"][2, 0] += 0.5
    top = fc.check(cost, PARAMS, bad, batch_cost=batch_cost).worst(1)[0]
    assert (top.group, top.index) == ("b1", (2, 0))


def test_batch_cost_may_return_a_column_or_a_list(reference):
    objective, theta, indices = _objective()
    for f in (lambda t: batch_cost(t)[:, None], lambda t: batch_cost(t).tolist()):
        _assert_same(_engine(objective, theta, indices, n_jobs=1, batch_cost=f), reference)


def _nan_at_w2_12_minus(thetas):
    out = batch_cost(thetas)
    out[thetas[:, 24 + 6] < PARAMS["W2"][1, 2]] = np.nan
    return out


@pytest.mark.parametrize("bad, error, match", [
    (lambda t: np.stack([batch_cost(t)] * 2, axis=1), CostError, r"shape \(\d+, 2\).*one cost per row"),
    (lambda t: batch_cost(t)[:1], CostError, r"shape \(1,\).*one cost per row"),
    (lambda t: batch_cost(t).astype(np.float32), DtypeError, "float32 costs.*float64"),
    (_nan_at_w2_12_minus, CostError, r"nan at W2\[1, 2\] - eps"),
    (lambda t: batch_cost(t) + 1e-3, CostError, "must compute the same J"),
    (lambda t: 1 / 0, CostError, "`batch_cost` raised ZeroDivisionError"),
    (lambda t: t.__setitem__((0, 0), 1.0), CostError, "modify"),
    ("not callable", InputError, "not a callable"),
])
def test_bad_batch_cost_outputs(bad, error, match):
    objective, theta, indices = _objective()
    with pytest.raises(error, match=match):
        _engine(objective, theta, indices, n_jobs=1, batch_cost=bad, chunk_size=30)


def test_bad_batch_cost_in_a_worker_names_the_coordinate():
    objective, theta, indices = _objective()
    with pytest.raises(CostError, match=r"nan at W2\[1, 2\] - eps"):
        _engine(objective, theta, indices, n_jobs=2, batch_cost=_nan_at_w2_12_minus, chunk_size=4)


# --------------------------------------------------------------------- faults
def test_an_unpicklable_cost_is_refused_with_advice():
    lock = threading.Lock()

    def locked_cost(p):
        with lock:
            return cost(p)

    objective, theta, indices = _objective(locked_cost)
    with pytest.raises(CostError, match="cannot be pickled.*module-level function"):
        _engine(objective, theta, indices, chunk_size=5)
    _assert_same(_engine(objective, theta, indices, backend="threading", chunk_size=5),
                 reference_engine(objective, theta, indices, EPS))


def test_the_cost_is_pickled_once_for_the_chunk_sizing_and_the_workers(monkeypatch, reference):
    from fastcheck.engines.blackbox import dispatch

    calls = []

    def counted(objective, batch_cost):
        calls.append(objective)
        return pickled(objective, batch_cost)

    pickled = dispatch.pickled
    monkeypatch.setattr(dispatch, "pickled", counted)
    # a job the timing sends to the workers: the size of the pickled cost is weighed, then the cost shipped
    monkeypatch.setattr(dispatch, "PROBE_SECONDS", 0.0)
    monkeypatch.setattr(dispatch, "MIN_PARALLEL_SECONDS", -1.0)
    monkeypatch.setattr(dispatch, "WORKER_START_SECONDS", 0.0)
    monkeypatch.setattr(dispatch, "WORKER_GAIN", np.inf)
    notes = {}
    objective, theta, indices = _objective()
    _assert_same(_engine(objective, theta, indices, notes=notes), reference)
    assert notes["workers"] >= 1 and len(calls) == 1


@pytest.mark.parametrize("backend", [None, "threading"])
def test_a_cost_raising_in_a_worker_names_the_coordinate(backend):
    objective, theta, indices = _objective(raising_cost)
    with pytest.raises(CostError, match=r"ZeroDivisionError at W1\[2, 3\] \+ eps: planted failure"):
        _engine(objective, theta, indices, backend=backend, chunk_size=3)


def test_sys_exit_in_a_worker_is_a_cost_error():
    objective, theta, indices = _objective(sys_exit_cost)
    with pytest.raises(CostError, match=r"sys.exit\(3\).*b1\[1, 0\]"):
        _engine(objective, theta, indices, chunk_size=1)


@pytest.mark.parametrize("f, where", [(exiting_cost, r"W1\[2, 3\]"), (killed_cost, r"W2\[1, 2\]")])
def test_a_dead_worker_ends_the_check_clearly(f, where):
    objective, theta, indices = _objective(f)
    with pytest.raises(CostError, match="a worker process died while evaluating") as info:
        _engine(objective, theta, indices, chunk_size=1)
    assert __import__("re").search(where, str(info.value))
    # the next check starts fresh workers
    _assert_same(_engine(*_objective(), chunk_size=9), reference_engine(*_objective(), EPS))


def test_ctrl_c_stops_the_workers_and_reraises():
    objective, theta, indices = _objective(slow_cost)
    # a process started in the background has SIGINT ignored, and then interrupt_main does
    # nothing: give SIGINT Python's own handler for this test, as in a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.5, _thread.interrupt_main)
    tic = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _engine(objective, theta, indices, chunk_size=2)  # ~8 s of work
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - tic < 6  # a hang guard, not a timing test


# --------------------------------------------------------------------- progress
def test_progress_is_quiet_by_default_and_shown_on_request(capfd):
    objective, theta, indices = _objective()
    _engine(objective, theta, indices, n_jobs=1, batch_cost=batch_cost)
    assert capfd.readouterr().err == ""
    _engine(objective, theta, indices, n_jobs=1, batch_cost=batch_cost, progress=True)
    err = capfd.readouterr().err
    assert f"{len(indices)}/{len(indices)} coordinates (100%)" in err and "ETA" in err


# --------------------------------------------------------------------- dask
def test_dask_without_a_client_says_so():
    pytest.importorskip("distributed")
    import distributed

    try:
        distributed.get_client()
        pytest.skip("a Dask client is running")
    except ValueError:
        pass
    objective, theta, indices = _objective()
    with pytest.raises(InputError, match="needs a running Dask client"):
        _engine(objective, theta, indices, backend="dask")


def test_dask_cluster_is_bitwise_the_reference(dask_client, reference):
    objective, theta, indices = _objective()
    _assert_same(_engine(objective, theta, indices, backend="dask", chunk_size=6), reference)
    with joblib.parallel_config(backend="dask"):
        _assert_same(_engine(objective, theta, indices, n_jobs=-1, chunk_size=11), reference)
    comp = _engine(objective, theta, indices, backend="dask", batch_cost=batch_cost, chunk_size=8)
    _assert_same(comp, reference)
    with pytest.raises(CostError, match=r"W1\[2, 3\] \+ eps"):
        _engine(*_objective(raising_cost), backend="dask", chunk_size=5)
    _assert_same_directions(_directions(backend="dask", chunk_size=4), _directions(serial=True))


@pytest.mark.parametrize("n_workers, threads", [(2, 1), (1, 2)])
def test_a_dead_dask_worker_ends_the_check_clearly(n_workers, threads):
    """A cost that kills its Dask worker: the scheduler gives up on the task (KilledWorker)."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                                     dashboard_address=":0", host="127.0.0.1") as cluster, \
            distributed.Client(cluster):
        objective, theta, indices = _objective(exiting_cost)
        with pytest.raises(fc.WorkerError, match=r"a worker process died while evaluating .*coordinates "
                                                 r"W1\[2, 2\]\.\.W1\[3, 0\].*KilledWorker"):
            _engine(objective, theta, indices, backend="dask", chunk_size=4)  # W1[2, 3] is in chunk 12..15


def test_a_dask_cluster_whose_workers_all_died_ends_the_check_in_one_line():
    """Every worker killed under the check (their tasks are then "already forgotten"): a WorkerError, not
    distributed's FutureCancelledError and its traceback."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster):
        pids = [nanny.pid for nanny in cluster.workers.values()]
        timer = threading.Timer(2.0, lambda: [os.kill(pid, signal.SIGKILL) for pid in pids])
        timer.start()
        try:
            # which of the two worker-death messages comes depends on what Dask loses first: the scattered data
            # ("lost dependencies": a worker died) or every task (the cluster lost them); both end the check
            with pytest.raises(fc.WorkerError, match=r"^(the Dask cluster lost the check's tasks while evaluating "
                                                     r"coordinates .*: its workers died, or it was shut down|"
                                                     r"a worker process died while evaluating coordinates )") as info:
                _engine(*_objective(slow_cost), backend="dask", chunk_size=4)  # ~7 s of work on two workers
        finally:
            timer.cancel()
    assert "\n" not in str(info.value)


def test_a_dask_cluster_of_one_thread_runs_the_check(reference):
    """joblib runs a one-thread cluster's tasks in this process: no scattered futures then."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster):
        _assert_same(_engine(*_objective(), backend="dask", chunk_size=4), reference)


# --------------------------------------------------------------------- directions mode
def _directions(f=cost, **kw):
    objective, theta, _ = _objective(f)
    analytic = objective.layout.flatten_grads(grads(PARAMS))
    dirs = draw_directions(objective.layout, 3, seed=4)
    if kw.pop("serial", False):
        return evaluate_directions(objective, theta, analytic, dirs, EPS)
    settings = dict(n_jobs=2, batch_cost=None, backend=None, chunk_size=None, max_memory=None, progress=None)
    settings.update(kw)
    return blackbox_directions(objective, theta, analytic, dirs, EPS, **settings)


def _assert_same_directions(comp, ref):
    assert [(d.group, d.number) for d in comp.directions] == [(d.group, d.number) for d in ref.directions]
    np.testing.assert_array_equal(comp.analytic, ref.analytic)
    np.testing.assert_array_equal(comp.numeric, ref.numeric)
    assert comp.n_evaluations == ref.n_evaluations


@pytest.mark.parametrize("kw", [dict(chunk_size=2), dict(backend="threading", chunk_size=5), dict(n_jobs=1),
                                dict(batch_cost=batch_cost), dict(batch_cost=batch_cost, chunk_size=3)])
def test_directions_on_workers_are_bitwise_the_serial_loop(kw):
    _assert_same_directions(_directions(**kw), _directions(serial=True))


def test_check_in_directions_mode_uses_the_workers_and_names_a_bug():
    serial = fc.check(cost, PARAMS, grads(PARAMS), mode="directions", n_directions=4, engine="reference")
    parallel = fc.check(cost, PARAMS, grads(PARAMS), mode="directions", n_directions=4, n_jobs=2, chunk_size=3)
    assert parallel.settings["engine"] == "blackbox" and parallel.directions == serial.directions
    bad = grads(PARAMS)
    bad["b1"] = bad["b1"] * 1.1
    report = fc.check(cost, PARAMS, bad, mode="directions", n_directions=4, n_jobs=2, chunk_size=3, escalate=True)
    assert report.failing_groups == ["b1"] and report.group("b1").escalated


def test_a_cost_failing_on_a_direction_in_a_worker_names_it():
    # every direction of W1 moves W1[2, 3]: whichever worker gets there first is reported
    with pytest.raises(CostError, match=r"ZeroDivisionError at direction [012] of W1 \(\+eps\): planted"):
        _directions(raising_cost, chunk_size=2)
    with pytest.raises(CostError, match=r"a worker process died while evaluating .*directions [012] of W1"):
        _directions(exiting_cost, chunk_size=1)


# --------------------------------------------------------------------- examples
@pytest.mark.parametrize("script", ["check_serial.py", "check_parallel.py", "check_vectorized.py",
                                    "check_dask.py"])
def test_examples_run(script):
    if script == "check_dask.py":
        pytest.importorskip("distributed")
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120,
                          cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    assert "difference" in done.stdout.lower()
