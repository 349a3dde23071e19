import json
import subprocess
import sys

import pytest

from fastcheck.apps.cli import main

PROBLEM = '''
import numpy as np

def good():
    x = np.arange(1.0, 5.0)
    return (lambda t: float(np.sum(np.sin(t) * x)), np.ones(4), np.cos(np.ones(4)) * x)

def bad():
    cost, params, grads = good()
    grads[2] += 1.0
    return cost, params, grads

def not_a_tuple():
    return 3
'''


@pytest.fixture
def problem_module(tmp_path, monkeypatch):
    (tmp_path / "userproblem.py").write_text(PROBLEM)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userproblem"


def test_demo_catches_the_planted_bug(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "the bug was caught in W2" in out
    assert "gradient check PASSED" in out and "gradient check FAILED" in out


@pytest.mark.parametrize("seconds", [0.05, 26.0])
def test_demo_reports_a_first_run_compile_apart_from_the_check(monkeypatch, capsys, seconds):
    import fastcheck.apps.networks

    monkeypatch.setattr(fastcheck.apps.networks, "compile_kernels", lambda hidden, output: seconds)
    assert main(["demo", "--network", "S"]) == 0
    out = capsys.readouterr().out
    assert ("compiled the kernels first, once per install: 26.0 s" in out) == (seconds > 1)


def test_a_slow_compile_is_announced_on_a_terminal(monkeypatch, capsys):
    import time

    import fastcheck.apps.networks

    monkeypatch.setattr(fastcheck.apps.networks, "compile_kernels", lambda hidden, output: time.sleep(2.0) or 2.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["check", "--layers", "6,5,3", "--hidden", "tanh", "--quiet"]) == 0
    assert "compiling the numba kernels for tanh/softmax (first run only" in capsys.readouterr().err
    monkeypatch.setattr(fastcheck.apps.networks, "compile_kernels", lambda hidden, output: 0.01)
    assert main(["check", "--layers", "6,5,3", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_check_builtin_pass_and_bug(tmp_path, capsys):
    assert main(["check", "--layers", "6,5,4,3", "--l2", "0.1", "--examples", "8"]) == 0
    path = tmp_path / "r.json"
    assert main(["check", "--layers", "6,5,4,3", "--examples", "8", "--bug", "bias_axis", "--json", str(path)]) == 1
    assert "wrong: b2" in capsys.readouterr().out
    assert json.loads(path.read_text())["groups"][3]["verdict"] == "fail"


def test_check_user_problem(problem_module, capsys):
    assert main(["check", f"{problem_module}:good"]) == 0
    assert main(["check", f"{problem_module}:bad", "--quiet"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("gradient check FAILED")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "nothing to check"),
        (["check", "--layers", "6,x"], "must be comma-separated integers"),
        (["check", "--layers", "6,5", "--eps", "2"], "--eps: expected a step in [1e-12, 1e-1]"),
        (["check", "nosuchmodule_xyz:f"], "cannot import module 'nosuchmodule_xyz'"),
        (["check", "nocolon"], "must look like MODULE:FUNCTION"),
        (["check", "--layers", "6,5", "--hidden", "gelu"], "invalid choice: 'gelu'"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastcheck: error: ")
    assert message in err


def test_bad_problem_return(problem_module, capsys):
    assert main(["check", f"{problem_module}:not_a_tuple"]) == 2
    assert "must return a tuple (cost, params, grads)" in capsys.readouterr().err


def test_console_script_exit_codes_without_traceback():
    result = subprocess.run([sys.executable, "-m", "fastcheck.apps.cli", "check", "--layers", "3,x"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_user_problem_on_two_workers(problem_module, capsys):
    assert main(["check", f"{problem_module}:bad", "--jobs", "2", "--backend", "threading", "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--network", "S", "--jobs", "2"], "are for a user problem"),
        (["check", "userproblem:good", "--backend", "dask"], "--backend dask needs --scheduler"),
        (["check", "userproblem:good", "--scheduler", "tcp://127.0.0.1:1", "--backend", "loky"],
         "--scheduler runs on Dask"),
    ],
)
def test_parallel_usage_errors(problem_module, argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_user_problem_on_a_dask_scheduler(problem_module, tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the workers import the user's module too
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster:
        assert main(["check", f"{problem_module}:bad", "--scheduler", cluster.scheduler_address, "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out
