"""The first run on a fresh install beside a later one (issue targets: the first ``fastcheck demo``
in <= 5 s, the first check of a tanh or sigmoid network in <= 3 s more).

Run ``pytest benchmarks/test_bench_cold.py --benchmark-columns=median,rounds``. Each round is
a new Python process: ``cold`` rows get an empty ``NUMBA_CACHE_DIR`` of their own (every
kernel compiled, as on a new virtualenv or CI runner), ``warm`` rows one that a first run
filled (kernels loaded from disk). Group ``cold-demo``: ``fastcheck demo`` (network M, a
correct and a planted-bug check); group ``cold-tanh``: ``fastcheck check --network S
--hidden tanh``. With ``--baseline CHECKOUT`` (another checkout of fastcheck, e.g. a worktree of an older commit)
every row is also run on that code (``code=baseline``), in the same session, for a before/after
table. ``extra_info`` holds ``ratio_cold_to_warm`` on the cold rows when the warm
row of the group ran first, and ``cpu_s`` the CPU seconds of each round (user + system, steadier than
wall time on a shared machine).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile

import pytest

import fastcheck

COMMANDS = {
    "cold-demo": ["demo"],
    "cold-tanh": ["check", "--network", "S", "--hidden", "tanh", "--quiet"],
}
_MEDIANS: dict = {}


def _cpu_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: The folder holding this fastcheck package: the subprocesses import it from there.
HERE = os.path.dirname(os.path.dirname(os.path.abspath(fastcheck.__file__)))


def _run(args, cache_dir, cpu=None, code=HERE):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": code}
    before = _cpu_children()  # cwd: the cache's parent, so that no checkout in the cwd shadows ``code``
    done = subprocess.run([sys.executable, "-m", "fastcheck.apps.cli", *args], env=env, capture_output=True,
                          text=True, timeout=900, cwd=os.path.dirname(cache_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    if cpu is not None:  # CPU seconds of the run: steadier than wall time on a shared machine
        cpu.append(_cpu_children() - before)
    return done


@pytest.mark.heavy
@pytest.mark.parametrize("group", list(COMMANDS))
@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize("code", ["this", "baseline"])
def test_first_run(benchmark, request, group, cache, code, tmp_path):
    baseline = request.config.getoption("--baseline")
    if code == "baseline" and not baseline:
        pytest.skip("no --baseline CHECKOUT given")
    path = os.path.abspath(baseline) if code == "baseline" else HERE
    benchmark.group = group
    args = COMMANDS[group]
    (tmp_path / "warm").mkdir()
    warm_dir, cpu = str(tmp_path / "warm"), []
    if cache == "warm":
        _run(args, warm_dir, code=path)  # the first run fills the cache; the rounds load from it

        def setup():
            return (args, warm_dir, cpu, path), {}
    else:
        def setup():
            return (args, tempfile.mkdtemp(dir=tmp_path), cpu, path), {}

    benchmark.pedantic(_run, setup=setup, rounds=3 if cache == "warm" else 1, iterations=1)
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info.update(command="fastcheck " + " ".join(args), cache=cache, code=code, cpu_s=sorted(cpu))
    if stats is not None:
        _MEDIANS[group, cache, code] = stats.stats.median
        if cache == "cold" and (group, "warm", code) in _MEDIANS:
            benchmark.extra_info["ratio_cold_to_warm"] = _MEDIANS[group, "cold", code] / _MEDIANS[group, "warm", code]
