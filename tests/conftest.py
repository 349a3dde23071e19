import numpy as np
import pytest

import fastcheck as fc


@pytest.fixture(scope="session", autouse=True)
def batched_kernels():
    """The batched engine's kernels compiled (or loaded) in this process first: a check left to its default
    engine then runs on the batched engine in every test, whatever the state of numba's cache."""
    from fastcheck.engines.mlp.warmup import compile_kernels

    compile_kernels()


@pytest.fixture
def small_net():
    """A 2-hidden-layer relu network with its params and data: (net, params, X, Y)."""
    net = fc.MLP([6, 5, 4, 3], hidden="relu", output="softmax", l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(8, seed=1)
    return net, params, X, Y


@pytest.fixture
def quadratic():
    """A cost over a dict of two groups with its exact gradient: (cost, params, grads)."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 4))
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal((3, 1))}

    def cost(p):
        return float(0.5 * np.sum((p["W"] - A) ** 2) + np.sum(np.sin(p["b"])))

    grads = {"dW": params["W"] - A, "db": np.cos(params["b"])}
    return cost, params, grads


@pytest.fixture
def fixed_timing(monkeypatch):
    """The engines' timing (:func:`fastcheck.engines.timing.coordinate_timing`) replaced by a fixed one: 2 s per
    call and 10 ms per coordinate. Plans and budget fits then read no clock but their set-ups'; how near the
    machine's own estimates come to their runs is ``benchmarks/test_bench_estimates.py``'s."""
    import fastcheck.engines.timing as engine_timing
    from fastcheck.engines.timing import Timing

    points = [(20, 2.2), (80, 2.8)]
    monkeypatch.setattr(engine_timing, "coordinate_timing", lambda *args, **kwargs: Timing(list(points)))
    return points


@pytest.fixture(scope="module")
def dask_client():
    """A client of a local Dask cluster of two one-thread worker processes (free dashboard port)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        yield client
