"""The methods ``fastcheck bench`` times: fastcheck's engines and modes and the peers'
checkers, each a :class:`Method` with the runner that checks the benchmark network's
correct gradient, and the problem (network, parameters, data, gradient) they all run on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...mlp.model import MLP
from ..networks import network

__all__ = ["METHODS", "Method", "build_problem"]


def _check(**options):
    """The runner of ``net.check(..., **options)`` on the whole network (its modes choose their own entries)."""
    def run(problem, indices):
        net, params, X, Y, grads = problem
        r = net.check(params, grads, X, Y, **options)
        return r.passed, r.difference

    return run


def _reference(problem, indices):
    from ...api import prepare_mlp

    net, params, X, Y, grads = problem
    p = prepare_mlp(net, params, grads, X, Y, engine="reference")
    r = p.report(p.evaluate(p.indices() if indices is None else indices))
    return r.passed, r.difference


def _peer(name, **options):
    def run(problem, indices):
        from . import peers

        net, params, X, Y, _ = problem
        extra = {} if indices is None else {"indices": indices}
        result = getattr(peers, name)(net, params, X, Y, **options, **extra)
        return result.passed, result.difference

    return run


def _torch_wrapper_overhead(problem, indices) -> float:
    """Seconds the sampled torch wrapper spends per call scattering the sample into theta."""
    import torch

    from ...core.layout import Layout

    _, theta = Layout.from_params(problem[1])
    base, where = torch.from_numpy(theta), torch.from_numpy(np.asarray(indices))
    sub = torch.tensor(theta[indices], requires_grad=True)
    times = []
    for _ in range(21):
        tic = time.perf_counter()
        base.index_put((where,), sub)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


@dataclass(frozen=True)
class Method:
    """One way of checking a gradient.

    ``run(problem, indices) -> (passed, difference)``; ``samples`` maps a network name to
    the sample sizes ``(k0, k)`` used to extrapolate there (absent: run on all of it);
    ``calls_per_coordinate`` and ``overhead`` describe the cost a sampling wrapper adds
    per cost call, which is subtracted before extrapolating.
    """

    name: str
    kind: str
    run: Callable
    peer: str | None = None
    networks: tuple = ("S", "M", "L")
    samples: dict = field(default_factory=dict)
    repeats: int | None = None  # None: DEFAULT_REPEATS
    overhead: Callable | None = None
    calls_per_coordinate: int = 2
    note: str = ""


METHODS = {m.name: m for m in [
    Method("fastcheck batched", "exhaustive", _check(engine="batched")),
    Method("fastcheck reference", "exhaustive", _reference, samples={"M": (200, 2000), "L": (100, 1000)},
           repeats=1),
    Method("torch gradcheck", "exhaustive", _peer("torch_gradcheck"), peer="torch",
           samples={"M": (100, 1000), "L": (50, 500)}, repeats=1, overhead=_torch_wrapper_overhead,
           note="slow mode"),
    Method("scipy check_grad", "exhaustive", _peer("scipy_check_grad"), peer="scipy",
           samples={"M": (200, 2000), "L": (100, 1000)}, repeats=1, calls_per_coordinate=1,
           note="forward differences"),
    Method("fastcheck directions", "directions", _check(mode="directions")),
    Method("torch gradcheck fast_mode", "directions", _peer("torch_gradcheck", fast_mode=True), peer="torch"),
    Method("jax check_grads", "directions", _peer("jax_check_grads"), peer="jax"),
    Method("scipy check_grad random", "directions", _peer("scipy_check_grad", direction="random"), peer="scipy"),
    Method("fastcheck subset 1%", "subset", _check(mode="subset", fraction=0.01)),
    Method("numdifftools Gradient", "richardson", _peer("numdifftools_gradient"), peer="numdifftools",
           networks=("S",), repeats=1),
]}


def build_problem(name: str):
    """``(net, params, X, Y, grads)`` of benchmark network ``name``, or of a tiny network for ``"tiny"`` (warm-ups)."""
    if name == "tiny":
        net = MLP([8, 6, 5, 3], hidden="relu", output="softmax", l2=0.1)
        params = net.init(seed=0)
        X, Y = net.random_data(8, seed=1)
    else:
        net, params, X, Y = network(name)
    return net, params, X, Y, net.gradient(params, X, Y)
