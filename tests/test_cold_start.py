"""The first check on a fresh install: numba's cache directory empty, every kernel compiled in that run.

A subprocess gets its own empty ``NUMBA_CACHE_DIR``, runs ``fastcheck demo`` on network S (a
correct gradient passes, a planted bug is caught) and evaluates every coordinate of a relu and
a tanh network with the batched engine; its numbers must be bit for bit those of this process
(kernels loaded from the cache of earlier runs) and agree with the reference engine. No timing
is asserted (that is ``benchmarks/test_bench_cold.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.engines.mlp.batched import batched_engine
from fastcheck.engines.mlp.objective import MLPObjective
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
