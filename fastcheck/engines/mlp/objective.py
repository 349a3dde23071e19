"""The built-in network's cost on fixed data as the reference engine sees it, reporting kink crossings."""

from __future__ import annotations

import numpy as np

from ...core.layout import Layout
from ...mlp.functions import cost_from_logits

__all__ = ["MLPObjective"]


class MLPObjective:
    """The built-in network's cost on fixed data, reporting kink crossings.

    A call returns ``(J, crossed)`` where ``crossed`` says whether any relu-like
    hidden unit changed state (``Z > 0``) for any example compared with the base
    parameters: there central differences straddle a kink.
    """

    def __init__(self, net, layout: Layout, X: np.ndarray, Y: np.ndarray):
        self.net, self.layout, self.X, self.Y = net, layout, X, Y
        self.has_kinks = net.has_kinks
        self._base_states = None

    def _forward(self, theta: np.ndarray) -> tuple[float, list]:
        params = self.layout.unflatten(theta)
        zs, _ = self.net.forward(params, self.X)
        return cost_from_logits(self.net.output, zs[-1], self.Y, self.net.regularization(params, self.X.shape[1])), zs

    def base(self, theta: np.ndarray) -> float:
        value, zs = self._forward(theta)
        self._base_states = self.net.kink_states(zs)
        return value

    def __call__(self, theta: np.ndarray, coordinate: int, sign: int) -> tuple[float, bool]:
        value, zs = self._forward(theta)
        crossed = any(
            not np.array_equal(state, base) for state, base in zip(self.net.kink_states(zs), self._base_states)
        )
        return value, crossed
