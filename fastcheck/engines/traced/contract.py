"""Two-operand einsum as one batched matrix product: the arithmetic of every product rule."""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["contract", "STACK"]

#: The letter of the perturbations' axis in the products of changes (never a user letter).
STACK = "*"


def contract(lx: str, x: np.ndarray, ly: str, y: np.ndarray, lo: str) -> np.ndarray:
    """``einsum(f"{lx},{ly}->{lo}", x, y)`` as one batched matmul; size-1 dimensions broadcast."""
    r = _recipe(lx, x.shape, ly, y.shape, lo)
    if r.drop_x:
        x = x.sum(axis=r.drop_x)
    if r.drop_y:
        y = y.sum(axis=r.drop_y)
    if x.shape != r.x_shape:
        x = np.broadcast_to(x, r.x_shape)
    if y.shape != r.y_shape:
        y = np.broadcast_to(y, r.y_shape)
    xt = np.transpose(x, r.x_order).reshape(r.x_matrix)
    if r.rows_of_y:
        # the output leads with y's letters (the stack of perturbations): y's rows times x, so that the
        # product comes out in the output's order, contiguous, and y's stack needs no transposed copy
        yr = np.transpose(y, r.y_order).reshape(r.y_matrix)
        return np.transpose(np.dot(yr, xt[0].T).reshape(r.out_shape), r.out_order)
    yt = np.transpose(y, r.y_order).reshape(r.y_matrix)
    if r.n_inner == 1:
        out = xt * yt
    elif r.n_batch == 1:
        out = np.dot(xt[0], yt[0])[None]
    else:
        out = np.matmul(xt, yt)
    return np.transpose(out.reshape(r.out_shape), r.out_order)


class _Recipe:
    """The axes, shapes and products of one contraction, worked out once per letters and shapes."""

    __slots__ = ("drop_x", "drop_y", "x_shape", "y_shape", "x_order", "x_matrix", "y_order", "y_matrix",
                 "rows_of_y", "n_inner", "n_batch", "out_shape", "out_order")


@functools.lru_cache(maxsize=4096)
def _recipe(lx: str, sx: tuple, ly: str, sy: tuple, lo: str) -> _Recipe:
    r = _Recipe()

    def drop(letters, shape, other):
        extra = tuple(i for i, c in enumerate(letters) if c not in other and c not in lo)
        kept = [i for i in range(len(letters)) if i not in extra]
        return extra, "".join(letters[i] for i in kept), tuple(shape[i] for i in kept)

    r.drop_x, lx2, sx2 = drop(lx, sx, ly)
    r.drop_y, ly2, sy2 = drop(ly, sy, lx2)
    lx, sx, ly, sy = lx2, sx2, ly2, sy2
    shared = [c for c in lx if c in ly]
    size = {c: max(sx[lx.index(c)], sy[ly.index(c)]) for c in shared}
    r.x_shape = tuple(size.get(c, n) for c, n in zip(lx, sx))
    r.y_shape = tuple(size.get(c, n) for c, n in zip(ly, sy))
    batch = [c for c in shared if c in lo]
    inner = [c for c in shared if c not in lo]
    xk = [c for c in lx if c not in ly]
    yk = [c for c in ly if c not in lx]
    xs = [r.x_shape[lx.index(c)] for c in xk]
    ys = [r.y_shape[ly.index(c)] for c in yk]
    r.n_batch, r.n_inner = math.prod(size[c] for c in batch), math.prod(size[c] for c in inner)
    r.x_order = [lx.index(c) for c in batch + xk + inner]
    r.x_matrix = (r.n_batch, math.prod(xs), r.n_inner)
    r.rows_of_y = bool(r.n_batch == 1 and r.n_inner > 1 and lo and lo[0] in yk)
    if r.rows_of_y:
        r.y_order = [ly.index(c) for c in yk + inner]
        r.y_matrix = (math.prod(ys), r.n_inner)
        r.out_shape, order = tuple(ys + xs), yk + xk
    else:
        r.y_order = [ly.index(c) for c in batch + inner + yk]
        r.y_matrix = (r.n_batch, r.n_inner, math.prod(ys))
        r.out_shape, order = tuple([size[c] for c in batch] + xs + ys), batch + xk + yk
    r.out_order = [order.index(c) for c in lo]
    return r
