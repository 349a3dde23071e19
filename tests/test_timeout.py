"""A cost that never returns must not hang the check: ``timeout=`` seconds per evaluation ends it
with a CostTimeoutError naming the coordinate, in this process, on worker processes and threads.
Each check runs in a subprocess of its own, so that a regression fails the test instead of
hanging the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.cli import main

HANGING = '''
import signal, time
import numpy as np

def _perturbed(t):
    return t[2] > 1.0  # theta[2] + eps: the point that hangs

def sleeps(t):
    if _perturbed(t):
        time.sleep(3600)
    return 0.5 * float(t @ t)

def spins(t):
    while _perturbed(t):
        pass
    return 0.5 * float(t @ t)

def stuck(t):  # as if in native code: no signal gets through
    if _perturbed(t):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
    return 0.5 * float(t @ t)

def swallows(t):  # catches every interruption, and returns late
    if _perturbed(t):
        for _ in range(20):
            try:
                time.sleep(0.2)
            except BaseException:
                pass
    return 0.5 * float(t @ t)

def batch_sleeps(thetas):
    if len(thetas) > 1:
        time.sleep(3600)
    return 0.5 * np.einsum("ij,ij->i", thetas, thetas)

def problem():
    return sleeps, np.ones(6), np.ones(6)
'''

RUN = '''
import time, numpy as np, fastcheck as fc, hanging
tic = time.perf_counter()
try:
    fc.check(getattr(hanging, {cost!r}), np.ones(6), np.ones(6), timeout={timeout!r}, **{kw!r})
    print("no error")
except fc.CostTimeoutError as exc:
    print(f"CostTimeoutError after {{time.perf_counter() - tic:.1f}} s: {{exc}}")
'''


@pytest.fixture
def hanging(tmp_path):
    (tmp_path / "hanging.py").write_text(HANGING)
    return tmp_path


def _run(where, code, limit=60):
    path = os.pathsep.join(p for p in (str(where), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=where, capture_output=True, text=True,
                          timeout=limit, env={**os.environ, "PYTHONPATH": path})


@pytest.mark.parametrize(("cost", "kw"), [
    ("sleeps", {"engine": "reference"}),
    ("spins", {"engine": "reference"}),
    ("swallows", {"engine": "reference"}),
    ("sleeps", {"n_jobs": 2, "chunk_size": 2}),
    ("spins", {"n_jobs": 2, "chunk_size": 2}),
    ("spins", {"n_jobs": 2, "chunk_size": 2, "backend": "threading"}),
    ("sleeps", {"mode": "directions", "n_directions": 2, "engine": "reference"}),
    ("sleeps", {}),  # the default engine: the traced one, or whichever runs the cost
])
def test_a_cost_that_never_returns_ends_the_check_naming_the_coordinate(hanging, cost, kw):
    out = _run(hanging, RUN.format(cost=cost, timeout=0.5, kw=kw))
    assert out.returncode == 0, out.stderr
    assert "CostTimeoutError" in out.stdout and "did not return within 0.5 s (`timeout`) at" in out.stdout, out
    assert ("direction" if kw.get("mode") else "theta[2] + eps") in out.stdout


def test_a_worker_stuck_where_no_signal_reaches_is_ended(hanging):
    out = _run(hanging, RUN.format(cost="stuck", timeout=0.5, kw={"n_jobs": 2, "chunk_size": 2}))
    assert "did not return within 0.5 s (`timeout`) at theta[2] + eps" in out.stdout, out
    assert "stuck in native code, and its worker process was ended" in out.stdout


def test_a_batch_cost_that_never_returns_ends_the_check(hanging):
    code = RUN.replace("getattr(hanging, {cost!r})", "lambda t: 0.5 * float(t @ t)")
    out = _run(hanging, code.format(timeout=0.5, kw={"batch_cost": "BATCH"}).replace("'BATCH'", "hanging.batch_sleeps"))
    assert "`batch_cost` did not return within 1 s (`timeout`) on a stack of 2 perturbed thetas (coordinates theta[0]" \
        in out.stdout, out  # 0.5 s per row


def test_the_limit_is_off_by_default_and_restores_the_alarm_handler():
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, own)
    try:
        assert fc.check(lambda t: float(t @ t), np.ones(3), 2 * np.ones(3), timeout=5).passed
        assert signal.getsignal(signal.SIGALRM) is own
    finally:
        signal.signal(signal.SIGALRM, previous)
    tic = time.perf_counter()
    assert fc.check(lambda t: time.sleep(0.01) or float(t @ t), np.ones(3), 2 * np.ones(3)).passed
    assert time.perf_counter() - tic < 30  # a hang guard, not a timing test


@pytest.mark.parametrize("timeout", [0, -1.0, "10s", float("inf"), True])
def test_a_bad_timeout_is_refused_naming_it(timeout):
    with pytest.raises(fc.InputError, match="`timeout`: expected a positive number of seconds"):
        fc.check(lambda t: float(t @ t), np.ones(3), 2 * np.ones(3), timeout=timeout)


def test_the_cli_takes_timeout_for_a_user_problem(hanging, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(hanging))
    assert main(["check", "hanging:problem", "--timeout", "0.3"]) == 2
    assert "did not return within 0.3 s (`timeout`) at theta[2] + eps" in capsys.readouterr().err
    assert main(["check", "hanging:problem", "--timeout", "-1"]) == 2
    assert "--timeout: expected a positive number of seconds" in capsys.readouterr().err
    assert main(["check", "--layers", "4,3,2", "--timeout", "1"]) == 2
    assert "--timeout are for a user problem" in capsys.readouterr().err


def test_a_suite_takes_timeout_for_its_user_problems(hanging, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(hanging))
    suite = tmp_path / "suite.toml"
    # [defaults] timeout applies to the factories only: the MLP problem runs
    suite.write_text('[defaults]\ntimeout = 0.3\n\n'
                     '[[problems]]\nname = "hangs"\nfactory = "hanging:problem"\n\n'
                     '[[problems]]\nname = "mlp"\nlayers = [3, 2]\nexamples = 4\n')
    assert main(["nightly", str(suite), "--run-dir", str(tmp_path / "run")]) == 1
    out = capsys.readouterr()
    assert "did not return within 0.3 s (`timeout`) at theta[2] + eps" in out.out + out.err
    assert (tmp_path / "run" / "mlp@seed0.json").exists()  # the rest of the suite ran
    suite.write_text('[[problems]]\nname = "mlp"\nlayers = [3, 2]\ntimeout = 1\n')
    assert main(["nightly", str(suite), "--run-dir", str(tmp_path / "run2")]) == 2
    assert "problems[0].timeout: limits a user factory's cost" in capsys.readouterr().err
