"""Stacked rank-one weight steps, ``S_j = left_j right_j^T``, carried without forming the matrices.

A sign direction's step of a weight matrix is ``h a b^T`` (:mod:`fastcheck.core.signs`):
its product with the layer's input, ``S A``, is ``(h a) (b^T A)``, one row of products
instead of a matrix's, and equal to the dense product to float64 rounding (the same
real number, summed over the same entries of ``A``). :class:`RankOne` offers what the
stacked propagation (:mod:`fastcheck.engines.mlp.stacked`) asks of a step: ``@``, a
negation, rows, and the sums of the L2 change.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RankOne", "both_signs", "l2_parts"]


class RankOne:
    """k stacked rank-one matrices ``left[j] right[j]^T``, shape ``(k, rows, cols)``."""

    def __init__(self, left: np.ndarray, right: np.ndarray):
        self.left, self.right = left, right

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.left.shape[0], self.left.shape[1], self.right.shape[1]

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        """``S_j @ other`` (other shared, (cols, m), or one per step, (k, cols, m)) -> (k, rows, m)."""
        if other.ndim == 2:
            inner = self.right @ other
        else:
            inner = np.matmul(self.right[:, None, :], other)[:, 0, :]
        return self.left[:, :, None] * inner[:, None, :]

    def inputs_times(self, A: np.ndarray) -> np.ndarray:
        """``A^T S_j^T`` laid out per example, (m, k, rows): the linear map's first change."""
        return (self.right @ A).T[:, :, None] * self.left[None, :, :]

    def __neg__(self) -> RankOne:
        return RankOne(-self.left, self.right)

    def __getitem__(self, rows) -> RankOne:
        return RankOne(self.left[rows], self.right[rows])


def both_signs(step):
    """``[S, -S]`` stacked: the steps of both signs of each pair."""
    if isinstance(step, RankOne):
        return RankOne(np.concatenate([step.left, -step.left]), np.concatenate([step.right, step.right]))
    return np.concatenate([step, -step])


def l2_parts(step, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sum S_j * W, sum S_j * S_j)`` per step j: the odd and even sums of the L2 change."""
    if isinstance(step, RankOne):
        return (np.matmul(step.left, W) * step.right).sum(axis=1), \
            (step.left * step.left).sum(axis=1) * (step.right * step.right).sum(axis=1)
    flat = step.reshape(step.shape[0], -1)
    return flat @ W.ravel(), np.einsum("ij,ij->i", flat, flat)
