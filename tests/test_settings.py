"""Every setting that is not what it must be is a fastcheck error naming it, never a raw Python,
numpy or numba exception; and a setting that cannot fit in memory is refused before anything is
allocated. The rules are written once (fastcheck.core.settings) and shared by the pipeline and the
engines that can be called directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.cli import main

THETA = np.ones(3)


def _cost(t):
    return 0.5 * float(t @ t)


@pytest.fixture(scope="module")
def net():
    net = fc.MLP([3, 4, 2], l2=0.1)
    params = net.init(0)
    X, Y = net.random_data(5, seed=1)
    return net, params, net.gradient(params, X, Y), X, Y


@pytest.mark.parametrize(("kw", "match"), [
    ({"n_jobs": None}, r"`n_jobs`: expected a non-zero integer .*got None"),
    ({"n_jobs": "2"}, r"`n_jobs`: expected a non-zero integer .*got '2'"),
    ({"n_jobs": 1.5}, r"`n_jobs`: expected a non-zero integer"),
    ({"n_jobs": 0}, r"`n_jobs`: expected a non-zero integer"),
    ({"max_memory": "1GB"}, r"`max_memory`: expected a positive number of bytes"),
    ({"max_memory": 0}, r"`max_memory`: expected a positive number of bytes"),
    ({"timeout": "1 s"}, r"`timeout`: expected a positive number of seconds"),
    ({"chunk_size": 0, "n_jobs": 2}, r"`chunk_size`: expected a positive number of coordinates"),
])
def test_bad_check_settings_name_the_argument(kw, match):
    with pytest.raises(fc.InputError, match=match):
        fc.check(_cost, THETA, THETA.copy(), **kw)


@pytest.mark.parametrize(("kw", "match"), [
    ({"n_threads": 0}, r"`n_threads`: expected None or an integer in \[1, \d+\]"),
    ({"n_threads": 10**6}, r"`n_threads`: expected None or an integer in \[1, \d+\]"),
    ({"n_threads": "2"}, r"`n_threads`: expected None or an integer"),
    ({"max_memory": "1GB"}, r"`max_memory`: expected a positive number of bytes"),
    ({"max_memory": 0}, r"`max_memory`: expected a positive number of bytes"),
])
def test_bad_mlp_settings_name_the_argument(net, kw, match):
    net, params, grads, X, Y = net
    with pytest.raises(fc.InputError, match=match):
        net.check(params, grads, X, Y, **kw)


def test_zero_examples_and_a_bad_l2_are_refused(net):
    net, params, grads, X, Y = net
    with pytest.raises(fc.InputError, match=r"`X` and `Y` have no examples"):
        net.check(params, grads, X[:, :0], Y[:, :0])
    for l2 in (None, "0.1", -1.0, float("nan"), True):
        with pytest.raises(fc.InputError, match=r"`l2`=.* must be a finite number >= 0"):
            fc.MLP([3, 4, 2], l2=l2)


def test_the_engine_called_directly_shares_the_rules():
    from fastcheck.core.layout import Layout
    from fastcheck.core.objective import CostObjective
    from fastcheck.engines.blackbox import blackbox_engine

    layout, theta = Layout.from_params(THETA)
    objective = CostObjective(_cost, layout)
    for kw, match in (({"n_jobs": "2"}, "`n_jobs`: expected a non-zero integer"),
                      ({"max_memory": "1GB"}, "`max_memory`: expected a positive number of bytes"),
                      ({"timeout": -1}, "`timeout`: expected a positive number")):
        with pytest.raises(fc.InputError, match=match):
            blackbox_engine(objective, theta, np.arange(3), 1e-7, **kw)


def test_the_command_line_names_its_flags(tmp_path, monkeypatch, capsys):
    (tmp_path / "settings_problem.py").write_text("import numpy as np\n"
                                                  "def problem():\n"
                                                  "    return (lambda t: float(t @ t)), np.ones(3), 2 * np.ones(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "settings_problem:problem", "--jobs", "0"]) == 2
    assert "--jobs: expected a non-zero integer" in capsys.readouterr().err
    assert main(["check", "settings_problem:problem", "--mode", "directions", "--directions", "0"]) == 2
    assert "--directions" in capsys.readouterr().err


def test_directions_that_cannot_fit_are_refused_before_anything_is_allocated(monkeypatch):
    import fastcheck.core.directions as directions

    monkeypatch.setattr(directions, "available_memory", lambda: 2**20)
    with pytest.raises(fc.InputError, match=r"`n_directions`=10000: 10,000 directions would take at least .* more "
                                            r"than the 1 MiB available; at most about [\d,]+ fit"):
        fc.check(_cost, THETA, THETA.copy(), mode="directions", n_directions=10_000)
    assert fc.check(_cost, THETA, THETA.copy(), mode="directions", n_directions=16).passed


def test_a_billion_directions_are_refused_at_once():
    """In a process of its own with 2 GiB of address space: before, this grew until memory ran out."""
    code = textwrap.dedent('''
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
        import numpy as np, fastcheck as fc
        try:
            fc.check(lambda t: float(t @ t), np.ones(3), 2 * np.ones(3), mode="directions", n_directions=10**9)
        except fc.InputError as exc:
            print("refused:", exc)
        ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused: `n_directions`=1000000000: 1,000,000,000 directions would take at least" in out.stdout, out
