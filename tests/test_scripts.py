"""Parallel checks as users run them: a script whose cost, defined in ``__main__``, closes over
megabytes of training data, run as ``python script.py`` and as ``python - < script.py``, on
loky workers and on a Dask cluster. Such a cost pickles (cloudpickle copies it by value); the
check must send it to the workers, not refuse it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective

SCRIPT = textwrap.dedent('''
    import sys

    import numpy as np

    import fastcheck as fc

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 100))  # 3.2 MB of training data, referred to by the cost
    y = np.sign(rng.standard_normal(4000))


    def cost(p):
        z = X @ p["w"] + p["b"]
        return float(np.mean(np.logaddexp(0.0, -y * z)))


    def grads(p):
        z = X @ p["w"] + p["b"]
        s = -y / (1.0 + np.exp(y * z)) / len(y)
        return {"w": X.T @ s, "b": np.array([np.sum(s)])}


    if __name__ == "__main__":
        backend, scheduler = sys.argv[1], sys.argv[2:]
        params = {"w": rng.standard_normal(100) * 0.1, "b": np.zeros(1)}
        # a small job: chunk_size sends it to the workers as a longer job would be
        options = dict(n_jobs=2, chunk_size=20)
        if backend == "dask":
            from distributed import Client

            with Client(scheduler[0]):
                report = fc.check(cost, params, grads(params), backend="dask", **options)
        else:
            report = fc.check(cost, params, grads(params), backend=backend, **options)
        print(f"verdict: {report.verdict}, difference {report.difference:.2e}")
        sys.exit(0 if report.passed else 1)
''')


@pytest.mark.parametrize("how", ["file", "stdin"])
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_a_main_module_cost_over_megabytes_of_data_runs_on_workers(request, tmp_path, backend, how):
    # the script connects to a cluster started here: multiprocessing, which starts a cluster's
    # worker processes, cannot start them from a script read on standard input
    args = [backend] + ([request.getfixturevalue("dask_client").scheduler.address] if backend == "dask" else [])
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    if how == "file":
        done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)
    else:
        with open(script) as source:
            done = subprocess.run([sys.executable, "-", *args], stdin=source, capture_output=True, text=True,
                                  timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "verdict: pass, difference" in done.stdout
    assert "cannot be pickled" not in done.stderr


def test_a_closure_over_a_large_array_passes_the_pickling_probe():
    """The probe in this process: pickled by value, a closure writes its array as one large buffer."""
    from fastcheck.engines.blackbox.faults import pickled

    data = np.random.default_rng(0).standard_normal(200_000)  # 1.6 MB

    def cost(p):
        return float(np.sum(data[:3] * p["w"] ** 2))

    probe = pickled(CostObjective(cost, Layout.from_params({"w": np.ones(3)})[0]), None)
    probe.require()
    assert probe.size > data.nbytes
