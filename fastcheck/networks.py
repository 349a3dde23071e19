"""The benchmark networks of the design: S, M and L.

All are float64 with ReLU hidden layers, softmax + cross-entropy output and L2
lambda = 0.1; examples are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .mlp import MLP

__all__ = ["NetworkSpec", "NETWORKS", "network"]


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
