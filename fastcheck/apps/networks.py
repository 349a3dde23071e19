"""The benchmark networks of the design: S, M and L.

All are float64 with ReLU hidden layers, softmax + cross-entropy output and L2
lambda = 0.1; examples are seeded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import InputError
from ..mlp.model import MLP

__all__ = ["NetworkSpec", "NETWORKS", "network", "compile_kernels"]


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    layers: tuple[int, ...]
    examples: int

    def build(self, hidden: str = "relu", output: str = "softmax", l2: float = 0.1) -> MLP:
        return MLP(self.layers, hidden=hidden, output=output, l2=l2)


NETWORKS = {
    spec.name: spec
    for spec in [
        NetworkSpec("S", (64, 32, 16, 4), 32),
        NetworkSpec("M", (784, 128, 64, 10), 64),
        NetworkSpec("L", (784, 512, 256, 10), 128),
    ]
}


def network(name: str, *, hidden: str = "relu", output: str = "softmax", l2: float = 0.1, seed: int = 0):
    """``(net, params, X, Y)`` for benchmark network ``name`` (S, M or L).

    Parameters come from ``net.init(seed)`` and data from ``net.random_data(m, seed + 1)``.
    """
    if name not in NETWORKS:
        raise InputError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    spec = NETWORKS[name]
    net = spec.build(hidden=hidden, output=output, l2=l2)
    params = net.init(seed=seed)
    X, Y = net.random_data(spec.examples, seed=seed + 1)
    return net, params, X, Y


def compile_kernels(hidden: str = "relu", output: str = "softmax") -> float:
    """Compile (or load from numba's on-disk cache) the kernels a network of this kind needs.

    The first check after an install spends tens of seconds compiling; this does it on a
    tiny network so that the time can be announced and kept out of the report of the
    check that follows. Returns the seconds it took (well under one once cached).
    """
    tic = time.perf_counter()
    net = MLP([6, 5, 4, 3], hidden=hidden, output=output, l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(4, seed=1)
    net.check(params, net.gradient(params, X, Y), X, Y, engine="batched")  # forced: compiles now if not cached
    return time.perf_counter() - tic
