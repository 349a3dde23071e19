"""The first run on a fresh install beside a later one (issue targets: the first ``fastcheck demo``
in <= 5 s, the first check of a tanh or sigmoid network in <= 3 s more).

Run ``pytest benchmarks/test_bench_cold.py --benchmark-columns=median,rounds``. Each round is
a new Python process: ``cold`` rows get an empty ``NUMBA_CACHE_DIR`` of their own (every
kernel compiled, as on a new virtualenv or CI runner), ``warm`` rows one that a first run
filled (kernels loaded from disk). Group ``cold-demo``: ``fastcheck demo`` (network M, a
correct and a planted-bug check); group ``cold-tanh``: ``fastcheck check --network S
--hidden tanh``. ``extra_info`` holds ``ratio_cold_to_warm`` on the cold rows when the warm
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

COMMANDS = {
    "cold-demo": ["demo"],
    "cold-tanh": ["check", "--network", "S", "--hidden", "tanh", "--quiet"],
}
_MEDIANS: dict = {}


def _cpu_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args, cache_dir, cpu=None):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    before = _cpu_children()
    done = subprocess.run([sys.executable, "-m", "fastcheck.apps.cli", *args], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    if cpu is not None:  # CPU seconds of the run: steadier than wall time on a shared machine
        cpu.append(_cpu_children() - before)
    return done


@pytest.mark.heavy
@pytest.mark.parametrize("group", list(COMMANDS))
@pytest.mark.parametrize("cache", ["warm", "cold"])
def test_first_run(benchmark, group, cache, tmp_path):
    benchmark.group = group
    args = COMMANDS[group]
    warm_dir, cpu = str(tmp_path / "warm"), []
    if cache == "warm":
        _run(args, warm_dir)  # the first run fills the cache; the rounds load from it

        def setup():
            return (args, warm_dir, cpu), {}
    else:
        def setup():
            return (args, tempfile.mkdtemp(dir=tmp_path), cpu), {}

    benchmark.pedantic(_run, setup=setup, rounds=3 if cache == "warm" else 1, iterations=1)
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info.update(command="fastcheck " + " ".join(args), cache=cache, cpu_s=sorted(cpu))
    if stats is not None:
        _MEDIANS[group, cache] = stats.stats.median
        if cache == "cold" and (group, "warm") in _MEDIANS:
            benchmark.extra_info["ratio_cold_to_warm"] = _MEDIANS[group, "cold"] / _MEDIANS[group, "warm"]
