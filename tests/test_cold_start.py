"""The first check on a fresh install: numba's cache directory empty.

A subprocess gets its own empty ``NUMBA_CACHE_DIR``, runs ``fastcheck demo`` on network S (a
correct gradient passes, a planted bug is caught) and evaluates every coordinate of a relu and
a tanh network with the batched engine (compiled in that run); its numbers must be bit for bit
those of this process (kernels loaded from the cache of earlier runs) and agree with the
reference engine. Then the first run's own path (:mod:`fastcheck.engines.mlp.warmup`): the demo
checks with the traced engine while a child process compiles the kernels, fills the cache for
the next run, which compiles nothing; "not cached" is read from numba's index files; a run
killed takes its compile with it; two runs at once share one cache. No timing is asserted
(that is ``benchmarks/test_bench_cold.py``); the traced engine's entries against the batched
engine's are ``tests/test_cold_fallback.py``'s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp.batched import batched_engine
from fastcheck.engines.mlp.objective import MLPObjective
from fastcheck.engines.mlp.warmup import LOCK_NAME
from fastcheck.engines.reference import reference_engine

EPS = 1e-7
NETS = {"relu": [5, 4, 6, 3], "tanh": [5, 4, 6, 3, 3]}  # tanh: the smooth series and the general path

FIRST_RUN = textwrap.dedent('''
    import sys

    import numpy as np

    import fastcheck as fc
    from fastcheck.apps.cli import main
    from fastcheck.engines.mlp.batched import batched_engine

    NETS, EPS = {nets!r}, {eps!r}
    code = main(["demo", "--network", "S"])
    out = {"demo": np.array(code)}
    for hidden, layers in NETS.items():
        net = fc.MLP(layers, hidden=hidden, output="softmax", l2=0.1)
        params = net.init(seed=0)
        X, Y = net.random_data(7, seed=1)
        ev = batched_engine(net, params, X, Y, np.arange(net.n_params), EPS)
        out.update({f"{hidden}-{key}": getattr(ev, key) for key in ("cost_plus", "cost_minus", "numeric", "kinks")})
    np.savez(sys.argv[1], **out)
''')


def problem(hidden):
    net = fc.MLP(NETS[hidden], hidden=hidden, output="softmax", l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(7, seed=1)
    return net, params, X, Y


@pytest.mark.slow
def test_a_fresh_numba_cache_gives_a_correct_first_check(tmp_path):
    cache, result = tmp_path / "numba-cache", tmp_path / "first.npz"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    script = FIRST_RUN.replace("{nets!r}", repr(NETS)).replace("{eps!r}", repr(EPS))
    done = subprocess.run([sys.executable, "-c", script, str(result)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "the bug was caught in" in done.stdout and "correct gradient passed" in done.stdout, done.stdout
    assert any(cache.rglob("*.nbi")), "the kernels were not compiled into the fresh cache directory"
    first = np.load(result)
    assert int(first["demo"]) == 0
    for hidden in NETS:
        net, params, X, Y = problem(hidden)
        warm = batched_engine(net, params, X, Y, np.arange(net.n_params), EPS)
        for key in ("cost_plus", "cost_minus", "numeric", "kinks"):
            assert_array_equal(first[f"{hidden}-{key}"], getattr(warm, key), err_msg=f"{hidden} {key}")
        layout, theta = Layout.from_params(params)
        objective = MLPObjective(net, layout, X, Y)
        objective.base(theta)
        ref = reference_engine(objective, theta, np.arange(net.n_params), EPS)
        J = net.cost(params, X, Y)
        assert_allclose(first[f"{hidden}-numeric"], ref.numeric, rtol=1e-9, atol=16 * np.spacing(J) / EPS)


# ---------------------------------------------------------------- the first run checks while the kernels compile
KERNELS_CACHED = textwrap.dedent('''
    import json, sys

    import fastcheck as fc
    from fastcheck.engines.mlp import kernels, warmup

    net = fc.MLP([6, 5, 4, 4, 3])
    out = {"cached": warmup.kernels_cached(net)}
    if sys.argv[1] == "check":  # a check then loads every kernel from the cache and compiles none
        params = net.init(seed=0)
        X, Y = net.random_data(8, seed=1)
        out["engine"] = net.check(params, net.gradient(params, X, Y), X, Y).settings["engine"]
        stats = [kernel.stats for kernel in warmup.kernels_needed(net)]
        out["hits"] = [sum(s.cache_hits.values()) for s in stats]
        out["misses"] = [sum(s.cache_misses.values()) for s in stats]
    print(json.dumps(out))
''')


def _in_fresh_process(cache, *args, script=None, timeout=600, cwd=None):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    # in another folder, isolated (-I): its working directory is not put on sys.path, as for the `fastcheck` command
    python = [sys.executable] if cwd is None else [sys.executable, "-I"]
    command = [*python, "-c", script, *args] if script else [*python, "-m", "fastcheck.apps.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _cached(cache, what="look", cwd=None):
    done = _in_fresh_process(cache, what, script=KERNELS_CACHED, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _lock_is_free(cache) -> bool:
    from fastcheck.engines.mlp.warmup import LOCK_NAME, _is_locked

    return not any(_is_locked(str(path)) for path in cache.rglob(LOCK_NAME))


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory):
    """``fastcheck demo`` on a fresh numba cache, run to its end (the run waits for its compile)."""
    cache = tmp_path_factory.mktemp("fresh") / "numba-cache"
    return cache, _in_fresh_process(cache, "demo", "--network", "S")


@pytest.mark.slow
def test_the_first_demo_checks_with_the_traced_engine_and_catches_the_bug(first_demo):
    cache, done = first_demo
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("batched engine not used: its numba kernels are not compiled yet") == 2
    assert "traced engine, mode full" in done.stdout and "the bug was caught in W2" in done.stdout
    assert "W2[" in done.stdout.split("2. a planted bug")[1]  # the entries named
    assert any(cache.rglob(LOCK_NAME)) and _lock_is_free(cache)  # its compile ran, and ended with the run


@pytest.mark.slow
def test_the_first_run_fills_the_cache_and_the_next_compiles_nothing(first_demo):
    cache, done = first_demo
    assert done.returncode == 0, done.stderr
    later = _cached(cache, "check")
    assert later["cached"] and later["engine"] == "batched"
    assert all(later["hits"]) and not any(later["misses"]), later
    second = _in_fresh_process(cache, "demo", "--network", "S")
    assert second.returncode == 0 and "batched engine not used" not in second.stdout
    assert "batched engine, mode full" in second.stdout and "the bug was caught in W2" in second.stdout


@pytest.mark.slow
def test_a_run_started_beside_another_fastcheck_fills_this_one_s_cache(tmp_path):
    """A run from a folder holding another ``fastcheck/`` (a checkout) compiles the installed one's kernels."""
    decoy = tmp_path / "checkout" / "fastcheck"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the checkout beside the run, not the package that runs')\n")
    cache = tmp_path / "numba-cache"
    done = _in_fresh_process(cache, "demo", "--network", "S", cwd=decoy.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batched engine not used" in done.stdout
    assert _cached(cache, cwd=decoy.parent)["cached"]  # the next run there finds its kernels


@pytest.mark.slow
def test_not_cached_is_read_from_numba_s_index_files(first_demo, tmp_path):
    import pickle

    assert not _cached(tmp_path / "empty")["cached"]
    cache, _ = first_demo
    stale = tmp_path / "stale"
    shutil.copytree(cache, stale)
    assert _cached(stale)["cached"]
    for index in stale.rglob("kernels.layer_kernel-*.nbi"):  # as if kernels.py had changed since the compile
        with open(index, "rb") as handle:
            version = pickle.load(handle)
            stamp, overloads = pickle.loads(handle.read())
        with open(index, "wb") as handle:
            pickle.dump(version, handle, protocol=-1)
            handle.write(pickle.dumps(("another source", overloads), protocol=-1))
    assert not _cached(stale)["cached"]
    for index in stale.rglob("kernels.layer_kernel-*.nbi"):
        index.write_bytes(b"not an index")  # unreadable: not cached (numba would compile again)
    assert not _cached(stale)["cached"]


START_COMPILE = textwrap.dedent('''
    import sys, time

    from fastcheck.engines.mlp import warmup

    print(warmup.compile_in_background(), warmup._child is not None, flush=True)
    if sys.argv[1] == "stay":
        time.sleep(600)
''')


@pytest.mark.slow
def test_a_run_killed_takes_its_compile_with_it(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    with subprocess.Popen([sys.executable, "-c", START_COMPILE, "stay"], env=env, stdout=subprocess.PIPE,
                          text=True) as run:
        try:
            assert run.stdout.readline().split() == ["True", "True"]
            assert _soon(lambda: not _lock_is_free(cache), 60), "the compile did not start"
        finally:
            run.kill()  # -9: no atexit, no finally in the run
    assert _soon(lambda: _lock_is_free(cache), 10), "the compile outlived its run"
    assert _cached(cache)["cached"] in (True, False)  # the cache left readable, whatever was written


@pytest.mark.slow
def test_two_runs_at_once_share_one_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    runs = [subprocess.Popen([sys.executable, "-c", START_COMPILE, "go"], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [run.communicate(timeout=600)[0].split() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert all(out[0] == "True" for out in outs)  # each relies on a compile, its own or the other's
    assert _lock_is_free(cache) and _cached(cache)["cached"]


def _soon(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()
