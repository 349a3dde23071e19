"""Rank-one changes: ``T[g_k] * s_k``, a table shared by every perturbation of a row, times a small factor.

A one-row change of ``A1`` (a perturbation of ``W1[j, :]``) reaching ``Z2 = W2 @ A1`` changes
``Z2`` by the outer product ``W2[:, j] x dA1_k[j, :]``: the column ``T[j] = W2[:, j]`` is the
same for every perturbation of row j, only the row ``s_k`` differs. A :class:`Factored`
change keeps that product unexpanded, and the operations it passes through act on the
table once per engine instead of once per perturbation:

- linear elementwise operations with unchanged operands (``+ b``, ``- c``, ``* mask``,
  ``/ c``, ``-x``) scale or keep the table;
- a ``maximum``/``minimum`` with an unchanged operand (ReLU, its leaky and clipped forms)
  is linear while no entry changes branch. That is certified per perturbation: the change
  ``|T[g] s_k|`` must stay below half the distance to the kink, ``|gap|``, on every entry,
  i.e. ``|s_k| < margin[g] / 2`` with ``margin[g] = min |gap| / |T[g]|`` over the axes the
  factor is broadcast along. A chunk with a perturbation that fails the certificate is
  expanded and takes the exact path, where flips are kinks;
- a contraction with an unchanged operand over letters the factor does not vary along
  contracts the table (``W3 @ (T[g] * s)`` = ``(W3 @ T)[g] * s``); sums likewise;
- a ``max``/``min`` over axes the factor does not vary along (a softmax's shift over the
  classes) keeps each slice's winner while ``|T[g]| |s_k|`` stays below a quarter of the
  winner's lead over the runner-up (:func:`~.reductions.winners`): the change is then the
  winner's own, ``T[g, winner] * s_k``; a chunk that fails it is expanded;
- a sum or difference of two factored changes with the same rows and factor (``Z - max(Z)``)
  adds the tables.

Anything else expands the change (:func:`expand`) to a plain :class:`~.changes.Change`:
every result is the exact path's, to rounding. Tables are computed once per node and kept
in the engine for all chunks.
"""

from __future__ import annotations

import numpy as np

from .changes import Change
from .contract import contract
from .reductions import CERTIFIED, winners

__all__ = ["Factored", "expand", "row_runs", "lifted", "FACTORED", "make_factored", "SAFETY", "TABLE_ENTRIES"]

#: Certified changes stay below this fraction of the distance to a kink.
SAFETY = 0.5
#: Largest table (entries) kept for one node.
TABLE_ENTRIES = 2**22
#: Factoring pays when the product has at least this many times the factor's entries.
MIN_GAIN = 4
_TABLE = "#"  # the table's row letter in contractions (never a user letter)


class Factored:
    """K changes ``table[rows[k]] * factor[k]`` of an array of shape ``shape`` (both broadcast to it)."""

    __slots__ = ("table", "rows", "factor", "shape")

    def __init__(self, table, rows, factor, shape):
        self.table, self.rows, self.factor, self.shape = table, rows, factor, tuple(shape)

    @property
    def k(self) -> int:
        return self.factor.shape[0]


#: A chunk whose perturbations run through at most this many rows of a table is expanded run by run.
RUNS = 8


def row_runs(rows: np.ndarray, most: int | None = None):
    """``(start, stop, row)`` of each run of equal ``rows`` (a chunk's coordinates are consecutive: few runs);
    None when there are more than ``most``."""
    starts = np.flatnonzero(np.diff(rows)) + 1
    if most is not None and starts.size >= most:
        return None
    bounds = np.concatenate([[0], starts, [len(rows)]])
    return [(int(lo), int(hi), int(rows[lo])) for lo, hi in zip(bounds[:-1], bounds[1:])]


def expand(change):
    """A plain dense :class:`Change` (changes that are not factored pass through).

    The perturbations of a chunk are consecutive coordinates, a few rows of the table
    at most: each run of one row is one broadcast product, with no gathered copy of the table.
    """
    if not isinstance(change, Factored):
        return change
    table, rows, factor = change.table, change.rows, change.factor
    runs = row_runs(rows, RUNS)
    if runs is None:
        return Change(table[rows] * factor, {}, change.shape)
    shape = np.broadcast_shapes(table.shape[1:], factor.shape[1:])
    values = np.empty((len(rows),) + shape, dtype=np.result_type(table, factor))
    for lo, hi, row in runs:
        np.multiply(table[row], factor[lo:hi], out=values[lo:hi])
    return Change(values, {}, change.shape)


def _arrange(letters: str, array: np.ndarray, lo: str) -> np.ndarray:
    """``array`` (one leading axis, then ``letters``) as an array over ``lo``: letters not in ``lo`` summed,
    the others in ``lo``'s order, size-1 axes for the letters of ``lo`` it lacks."""
    drop = tuple(i + 1 for i, c in enumerate(letters) if c not in lo)
    if drop:
        array = array.sum(axis=drop)
        letters = "".join(c for c in letters if c in lo)
    present = [c for c in lo if c in letters]
    array = np.transpose(array, [0] + [letters.index(c) + 1 for c in present])
    return array.reshape(array.shape[:1] + tuple(array.shape[1 + present.index(c)] if c in present else 1
                                                 for c in lo))


def make_factored(ev, node, lc: str, change, lb: str, base, lo: str):
    """The product ``einsum(change, base)`` as a Factored change, when the change is one row of a contracted letter."""
    if ev.tables is None or len(change.windows) != 1:
        return None
    (axis, (starts, length)), = change.windows.items()
    letter = lc[axis]
    if length != 1 or letter in lo or letter not in lb:
        return None
    if any(c in lb and c not in lo and c != letter for c in lc):  # another contraction would mix in the factor
        return None
    values = change.stacked()
    factor = _arrange(lc.replace(letter, ""), np.take(values, 0, axis=axis + 1), lo)
    out_size = int(np.prod(node.value.shape))
    if out_size < MIN_GAIN * factor[0].size:
        return None
    key = (node.id, "make", lc, lb)
    table = ev.tables.get(key)
    if table is None:
        base = np.asarray(base, dtype=np.float64)
        rows = np.moveaxis(base, lb.index(letter), 0)
        if rows.shape[0] * int(np.prod([node.value.shape[lo.index(c)] for c in lb if c in lo])) > TABLE_ENTRIES:
            return None
        table = _arrange(lb.replace(letter, ""), rows, lo)
        ev.tables[key] = table
    return Factored(table, starts, factor, node.value.shape)


def lifted(f: Factored, shape):
    """The table and factor of ``f`` with the leading axes of ``shape`` it lacks (size 1)."""
    offset = len(shape) - len(f.shape)
    if offset == 0:
        return f.table, f.factor
    return (f.table.reshape(f.table.shape[:1] + (1,) * offset + f.table.shape[1:]),
            f.factor.reshape(f.factor.shape[:1] + (1,) * offset + f.factor.shape[1:]))


def _single(node, changes):
    """The position of the one Factored input if every other input is unchanged, else None."""
    present = [i for i, c in enumerate(changes) if c is not None]
    if len(present) != 1 or not isinstance(changes[present[0]], Factored):
        return None
    return present[0]


def _pair(ev, node, changes):
    """``f0 +- f1`` of two factored changes sharing rows and factor, else NotImplemented."""
    f0, f1 = changes
    if not (isinstance(f0, Factored) and isinstance(f1, Factored) and f0.rows is f1.rows):
        return NotImplemented
    shape = node.value.shape
    (t0, s0), (t1, s1) = lifted(f0, shape), lifted(f1, shape)
    if not (f0.factor is f1.factor or (s0.shape == s1.shape and np.array_equal(s0, s1))):
        return NotImplemented
    key = (node.id, id(f0.table), id(f1.table), node.op)
    table = ev.tables.get(key)
    if table is None:
        table = ev.tables[key] = t0 + t1 if node.op == "add" else t0 - t1
    return Factored(table, f0.rows, s0 if s0.ndim >= s1.ndim else s1, shape)


def _scale(op):
    def rule(ev, node, changes):
        if op in ("add", "subtract") and all(c is not None for c in changes):
            return _pair(ev, node, changes)
        i = _single(node, changes)
        if i is None:
            return NotImplemented
        f, shape = changes[i], node.value.shape
        key = (node.id, id(f.table), op)
        table = ev.tables.get(key)
        if table is None:
            t, _ = lifted(f, shape)
            other = np.asarray(ev.base(node.args[1 - i])) if len(node.args) == 2 else None
            if op in ("add", "positive") or (op == "subtract" and i == 0):
                table = t
            elif op == "negative" or (op == "subtract" and i == 1):
                table = -t
            elif op == "multiply":
                table = t * other
            elif op == "divide" and i == 0:
                table = t / other
            else:
                return NotImplemented
            ev.tables[key] = table
        return Factored(table, f.rows, lifted(f, shape)[1], shape)

    return rule


def _extreme(larger: bool):
    def rule(ev, node, changes):
        i = _single(node, changes)
        if i is None:
            return NotImplemented
        f, shape = changes[i], node.value.shape
        t, factor = lifted(f, shape)
        key = (node.id, id(f.table), "extreme", tuple(s == 1 for s in factor.shape[1:]))
        cached = ev.tables.get(key)
        if cached is None:
            mine, other = np.asarray(ev.base(node.args[i])), np.asarray(ev.base(node.args[1 - i]))
            gap = np.broadcast_to(mine - other, shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(t != 0, np.abs(gap) / np.abs(t), np.inf)
            spread = tuple(a + 1 for a, s in enumerate(factor.shape[1:]) if s == 1)
            margin = SAFETY * (ratio.min(axis=spread, keepdims=True) if spread else ratio)
            chosen = gap > 0 if larger else gap < 0  # where the result is the changed operand
            cached = (t * chosen, margin)
            ev.tables[key] = cached
        table, margin = cached
        if not (np.abs(factor) < margin[f.rows]).all():
            return NotImplemented
        return Factored(table, f.rows, factor, shape)

    return rule


def _einsum(ev, node, changes):
    i = _single(node, changes)
    letters, lo = node.kw["specs"]
    if i is None or len(letters) != 2:
        return NotImplemented
    f, lf, lb = changes[i], letters[i], letters[1 - i]
    spread = {c for c, s in zip(lf, f.factor.shape[1:]) if s != 1}
    if any(c not in lo for c in spread):  # a contraction along the factor: not a product any more
        return NotImplemented
    key = (node.id, id(f.table), "einsum")
    table = ev.tables.get(key)
    if table is None:
        t = np.broadcast_to(f.table, f.table.shape[:1] + tuple(f.shape))
        table = contract(_TABLE + lf, t, lb, np.asarray(ev.base(node.args[1 - i]), dtype=np.float64), _TABLE + lo)
        ev.tables[key] = table
    factor = _arrange(lf, f.factor, lo)
    return Factored(table, f.rows, factor, node.value.shape)


def _reduction_table(ev, node, f, name, build):
    """A reduction's table, ``build(full table)`` kept per node; None where the factor varies along a reduced axis."""
    if any(f.factor.shape[a + 1] != 1 for a in node.kw["axis"]):
        return None
    key = (node.id, id(f.table), name)
    table = ev.tables.get(key)
    if table is None:
        table = ev.tables[key] = build(np.broadcast_to(f.table, f.table.shape[:1] + f.shape))
    return table


def _reduced(node, table, factor, rows):
    """A factored change over the reduced axes (kept with size 1 in ``table`` and ``factor``)."""
    if not node.kw["keepdims"]:
        table, factor = (np.squeeze(v, tuple(a + 1 for a in node.kw["axis"])) for v in (table, factor))
    return Factored(table, rows, factor, node.value.shape)


def _sum(ev, node, changes):
    f, axes = changes[0], node.kw["axis"]
    count = node.kw["count"] if node.op == "mean" else 1
    summed = tuple(a + 1 for a in axes)
    table = _reduction_table(ev, node, f, "sum", lambda t: t.sum(axis=summed, keepdims=True) / count)
    return NotImplemented if table is None else _reduced(node, table, f.factor, f.rows)


def _at_winner(table: np.ndarray, best: np.ndarray, axes: tuple) -> np.ndarray:
    """``table`` (rows, *shape) at each slice's winner (``best``: flat over ``axes``, size 1 there)."""
    ndim = table.ndim - 1
    kept = [a for a in range(ndim) if a not in axes]
    order = [0] + [a + 1 for a in kept] + [a + 1 for a in axes]
    flat = np.transpose(table, order).reshape(table.shape[:1] + tuple(table.shape[a + 1] for a in kept) + (-1,))
    index = np.transpose(best, kept + list(axes)).reshape((1,) + tuple(best.shape[a] for a in kept) + (1,))
    picked = np.take_along_axis(flat, np.broadcast_to(index, flat.shape[:-1] + (1,)), axis=-1)
    return np.expand_dims(picked[..., 0], tuple(a + 1 for a in axes))  # the kept axes are in order already


def _winner(ev, node, changes):
    f, axes = changes[0], node.kw["axis"]

    def build(t):
        x = np.asarray(ev.base(node.args[0]), dtype=np.float64)
        best, _, lead = ev.graph.derive(("winners", node.id), lambda: winners(x, axes, node.op == "max"))
        reach = np.abs(t).max(axis=tuple(a + 1 for a in axes), keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = np.where(reach > 0, CERTIFIED * lead / reach, np.inf)  # |s_k| below it: no winner changes
        return _at_winner(t, best, axes), bound

    cached = _reduction_table(ev, node, f, "winner", build)
    if cached is None or not (np.abs(f.factor) < cached[1][f.rows]).all():
        return NotImplemented
    return _reduced(node, cached[0], f.factor, f.rows)


def _broadcast(ev, node, changes):
    f = changes[0]
    t, factor = lifted(f, node.value.shape)
    return Factored(t, f.rows, factor, node.value.shape)


FACTORED = {
    "add": _scale("add"),
    "subtract": _scale("subtract"),
    "multiply": _scale("multiply"),
    "divide": _scale("divide"),
    "negative": _scale("negative"),
    "positive": _scale("positive"),
    "maximum": _extreme(True),
    "fmax": _extreme(True),
    "minimum": _extreme(False),
    "fmin": _extreme(False),
    "einsum": _einsum,
    "sum": _sum,
    "mean": _sum,
    "broadcast_to": _broadcast,
    "max": _winner,
    "min": _winner,
}

