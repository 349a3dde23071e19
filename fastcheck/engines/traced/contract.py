"""Two-operand einsum as one batched matrix product: the arithmetic of every product rule."""

from __future__ import annotations

import math

import numpy as np

from .changes import broadcast

__all__ = ["contract", "STACK"]

#: The letter of the perturbations' axis in the products of changes (never a user letter).
STACK = "*"


def contract(lx: str, x: np.ndarray, ly: str, y: np.ndarray, lo: str) -> np.ndarray:
    """``einsum(f"{lx},{ly}->{lo}", x, y)`` as one batched matmul; size-1 dimensions broadcast."""
    def drop(letters, v, other):
        extra = tuple(i for i, c in enumerate(letters) if c not in other and c not in lo)
        if extra:
            v = v.sum(axis=extra)
            letters = "".join(c for i, c in enumerate(letters) if i not in extra)
        return letters, v

    lx, x = drop(lx, x, ly)
    ly, y = drop(ly, y, lx)
    shared = [c for c in lx if c in ly]
    size = {c: max(x.shape[lx.index(c)], y.shape[ly.index(c)]) for c in shared}
    x = broadcast(x, tuple(size.get(c, n) for c, n in zip(lx, x.shape)))
    y = broadcast(y, tuple(size.get(c, n) for c, n in zip(ly, y.shape)))
    batch = [c for c in shared if c in lo]
    inner = [c for c in shared if c not in lo]
    xk = [c for c in lx if c not in ly]
    yk = [c for c in ly if c not in lx]
    xs = [x.shape[lx.index(c)] for c in xk]
    ys = [y.shape[ly.index(c)] for c in yk]
    n_batch, n_inner = math.prod(size[c] for c in batch), math.prod(size[c] for c in inner)
    xt = np.transpose(x, [lx.index(c) for c in batch + xk + inner]).reshape(n_batch, math.prod(xs), n_inner)
    if n_batch == 1 and n_inner > 1 and lo and lo[0] in yk:
        # the output leads with y's letters (the stack of perturbations): y's rows times x, so that the
        # product comes out in the output's order, contiguous, and y's stack needs no transposed copy
        yr = np.transpose(y, [ly.index(c) for c in yk + inner]).reshape(math.prod(ys), n_inner)
        r = np.dot(yr, xt[0].T).reshape(ys + xs)
        order = yk + xk
        return np.transpose(r, [order.index(c) for c in lo])
    yt = np.transpose(y, [ly.index(c) for c in batch + inner + yk]).reshape(n_batch, n_inner, math.prod(ys))
    if n_inner == 1:
        r = xt * yt
    elif n_batch == 1:
        r = np.dot(xt[0], yt[0])[None]
    else:
        r = np.matmul(xt, yt)
    r = r.reshape([size[c] for c in batch] + xs + ys)
    order = batch + xk + yk
    return np.transpose(r, [order.index(c) for c in lo])
