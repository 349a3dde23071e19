"""The first run on a fresh install beside a later one (issue targets: the first ``fastcheck demo``
in <= 5 s, the first check of a tanh or sigmoid network in <= 3 s more).

Run ``pytest benchmarks/test_bench_cold.py --benchmark-columns=median,rounds``. Each round is
a new Python process: ``cold`` rows get an empty ``NUMBA_CACHE_DIR`` of their own (every
kernel compiled, as on a new virtualenv or CI runner), ``warm`` rows one that a first run
filled (kernels loaded from disk). Group ``cold-demo``: ``fastcheck demo`` (network M, a
correct and a planted-bug check); group ``cold-tanh``: ``fastcheck check --network S
--hidden tanh``. With ``--baseline CHECKOUT`` (another checkout of fastcheck, e.g. a worktree of an older commit)
every row is also run on that code (``code=baseline``), in the same session, for a before/after
table. The rounds time the whole process: on a fresh cache the first run now checks with the
traced engine while a child process compiles the kernels, and waits for that child at its end (so
that the cache is filled), so the figure of the issue's target is ``first_report_s`` in
``extra_info``: the seconds from the start of the process to the first line of a report
(``gradient check ...``) on its stdout. ``extra_info`` also holds ``ratio_cold_to_warm`` on the cold
rows when the warm row of the group ran first, ``cpu_s`` the CPU seconds of each round (user +
system of the process and its children, steadier than wall time on a shared machine) and
``engines``, the engines the reports name.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time

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


def _run(args, cache_dir, cpu=None, code=HERE, first=None, engines=None):
    # unbuffered: each line reaches the pipe when it is printed, for the time of the first report
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": code, "PYTHONUNBUFFERED": "1"}
    before, started, lines = _cpu_children(), time.perf_counter(), []
    # cwd: the cache's parent, so that no checkout in the cwd shadows ``code``
    with subprocess.Popen([sys.executable, "-m", "fastcheck.apps.cli", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(cache_dir)) as run:
        for line in run.stdout:
            if first is not None and "gradient check" in line and not any("gradient check" in seen for seen in lines):
                first.append(time.perf_counter() - started)
            lines.append(line)
        err = run.stderr.read()
        assert run.wait(timeout=900) == 0, "".join(lines) + err
    if cpu is not None:  # CPU seconds of the run and its children: steadier than wall time on a shared machine
        cpu.append(_cpu_children() - before)
    if engines is not None:
        engines.update(re.findall(r"(\w+) engine, mode", "".join(lines)))
    return lines


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
    warm_dir, cpu, first, engines = str(tmp_path / "warm"), [], [], set()
    if cache == "warm":
        _run(args, warm_dir, code=path)  # the first run fills the cache; the rounds load from it

        def setup():
            return (args, warm_dir, cpu, path, first, engines), {}
    else:
        def setup():
            return (args, tempfile.mkdtemp(dir=tmp_path), cpu, path, first, engines), {}

    benchmark.pedantic(_run, setup=setup, rounds=3 if cache == "warm" else 1, iterations=1)
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info.update(command="fastcheck " + " ".join(args), cache=cache, code=code, cpu_s=sorted(cpu),
                                first_report_s=sorted(first), engines=sorted(engines))
    if stats is not None:
        _MEDIANS[group, cache, code] = stats.stats.median
        if cache == "cold" and (group, "warm", code) in _MEDIANS:
            benchmark.extra_info["ratio_cold_to_warm"] = _MEDIANS[group, "cold", code] / _MEDIANS[group, "warm", code]
