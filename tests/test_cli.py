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


FACTORIES = '''
import numpy as np

def scaled(m=4, factor=1.0):
    x = np.arange(1.0, m + 1)
    return (lambda t: float(np.sum(np.sin(t) * x)), np.ones(m), factor * np.cos(np.ones(m)) * x)

def loss_and_grads():
    x = np.arange(1.0, 5.0)
    return (lambda t: (float(np.sum(np.sin(t) * x)), np.cos(t) * x)), np.ones(4)

def pair_of_numbers():
    return 1, 2

def broken():
    def inner():
        raise RuntimeError("no data today")
    return inner()

not_callable = 3
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "userfactories.py").write_text(FACTORIES)
    (tmp_path / "usersyntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "userexits.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userfactories"


def test_factory_arguments_from_the_command_line(factories, capsys):
    assert main(["check", f"{factories}:scaled", "--arg", "m=6"]) == 0
    assert "6 of 6 coordinates" in capsys.readouterr().out
    assert main(["check", f"{factories}:scaled", "--arg", "m=6", "--arg", "factor=1.5"]) == 1
    assert main(["check", f"{factories}:scaled", "--arg", "6"]) == 2
    assert "must look like KEY=VALUE" in capsys.readouterr().err


def test_a_factory_of_a_cost_returning_loss_and_grads(factories, capsys):
    assert main(["check", f"{factories}:loss_and_grads"]) == 0


@pytest.mark.parametrize(("spec", "message"), [
    ("userfactories:pair_of_numbers", "its first item is int 1, not a function"),
    ("userfactories:not_callable", "userfactories.not_callable is an int, not a function"),
    ("userfactories:nothing", "has no function 'nothing'"),
    ("usersyntax:f", "a SyntaxError in"),
    ("userexits:f", "importing it raised SystemExit"),
    ("userfactories:broken", "raised RuntimeError: no data today (--traceback shows where)"),
])
def test_bad_factories_are_one_line_and_exit_2(factories, capsys, spec, message):
    assert main(["check", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastcheck: error: ") and message in err
    assert "Traceback" not in err


def test_traceback_shows_the_factory_s_own_traceback(factories, capsys):
    assert main(["check", f"{factories}:broken", "--traceback"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "in inner" in err and err.strip().endswith("RuntimeError: no data today")


def test_min_per_group_on_the_command_line(capsys):
    assert main(["check", "--layers", "6,5,3", "--mode", "subset", "--samples", "1", "--min-per-group", "2"]) == 0
    assert "8 of 53 coordinates" in capsys.readouterr().out


@pytest.mark.parametrize("distribution, words", [("signs", "rank-one sign"), ("gaussian", "Gaussian")])
def test_the_distribution_of_directions_on_the_command_line(capsys, tmp_path, distribution, words):
    assert main(["check", "--layers", "6,5,3", "--mode", "directions", "--directions", "3",
                 "--distribution", distribution, "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["distribution"] == distribution
    assert main(["check", "--layers", "6,5,3", "--mode", "directions", "--distribution", distribution]) == 0
    assert f"16 random {words} directions per group" in capsys.readouterr().out


def test_a_distribution_without_directions_is_one_line_and_exit_2(capsys):
    assert main(["check", "--layers", "6,5,3", "--distribution", "gaussian"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--distribution: goes with --mode directions, not --mode full" in err


LAYER = '''
import numpy as np

def affine(bug=False):
    rng = np.random.default_rng(0)
    def forward(x, w, b):
        return x @ w + b, (x, w)
    def backward(dout, cache):
        x, w = cache
        db = dout.sum(axis=0)
        return dout @ w.T, x.T @ dout, db / len(dout) if bug else db
    return forward, {"x": rng.standard_normal((4, 3)), "w": rng.standard_normal((3, 2)), "b": np.zeros(2)}, backward
'''


def test_a_layer_check_from_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "userlayer.py").write_text(LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "userlayer:affine", "--layer"]) == 0
    assert "layer check: dout: standard normal, seed 0" in capsys.readouterr().out
    assert main(["check", "userlayer:affine", "--layer", "--arg", "bug=True", "--quiet"]) == 1
    assert main(["check", "userlayer:affine", "--layer", "--arg", "bug=True"]) == 1
    assert "wrong: b" in capsys.readouterr().out
