"""Two or more nodes run as one, where the pair has a cheaper exact form than its parts.

The plan (:func:`~.evaluate.plan`) finds three patterns; each keeps a change narrow where
running the nodes one by one would make it dense:

- a product with an unchanged array whose only reader sums over all its axes (``sum(Y *
  logp)``, a loss's final sum): one contraction, :func:`weighted_sum`. Its changed operand
  may be a rank-one :class:`~.factored.Factored` change, contracted through its table
  (``sum(w * T[g] s) = sum((w T)[g] s)``, the table's part once per engine), and it may
  be a sum or difference whose only reader is that product (``shifted - log(sum(exp))``):
  such a node does not run; its terms (:class:`Terms`) are weighted one by one, so a
  rank-one term and a term broadcast along an axis never meet as a dense array;
- ``exp`` of a rank-one change whose only reader sums along axes where the factor is
  constant (a softmax's normalizer over the classes): :func:`exp_sum`.
  ``sum(y expm1(t s)) = sum_p s^p sum(y t^p) / p!``, the truncated series of ``expm1``
  (never a derivative), certified per chunk: where ``|t s| <`` :data:`SERIES_BELOW` the
  terms left out are below 2**-60 of the change. The sums over the table are kept per
  engine; a perturbation costs a few numbers per slice of the sum instead of an ``expm1``
  per entry. A chunk that fails the certificate takes the plain path;
- an elementwise operation without branches whose only reader indexes it (``(e / s)[c, 0]``,
  ``probs[np.arange(N), y]``): the index is taken first, of the inputs' changes and base
  values, and the rule runs on the entries read only (:func:`picked`).
"""

from __future__ import annotations

import math

import numpy as np

from ...core.series import SERIES_BELOW  # expm1's series below it: its terms past x^5/5! below 2**-80 |x|
from .changes import Change, gather, lift
from .contract import STACK, contract
from .factored import TABLE_ENTRIES, Factored, expand, lifted, row_runs
from .graph import Node

__all__ = ["Terms", "weighted_sum", "exp_sum", "picked", "SERIES_BELOW"]

#: The series is cut where the next term is below this fraction of the first.
_SERIES_CUT = 2.0**-60
_DEGREE = 5


class Terms:
    """The change of a sum or difference not run: ``sum(sign * term)``, each term a change of one of its inputs."""

    __slots__ = ("items", "shape")

    def __init__(self, items: list, shape: tuple):
        self.items, self.shape = items, tuple(shape)

    @classmethod
    def of(cls, node, inputs) -> Terms:
        signs = {"add": (1.0, 1.0), "subtract": (1.0, -1.0), "negative": (-1.0,), "positive": (1.0,)}[node.op]
        items = []
        for sign, c in zip(signs, inputs):
            if isinstance(c, Terms):
                items += [(sign * s, t) for s, t in c.items]
            elif c is not None:
                items.append((sign, c))
        return cls(items, node.value.shape)

    @property
    def k(self) -> int:
        return self.items[0][1].k

    @property
    def nbytes(self) -> int:
        return sum((t.factor if isinstance(t, Factored) else t.values).nbytes for _, t in self.items)


def weighted_sum(ev, node, reader, changes) -> Change:
    """The change of ``reader`` (a sum or mean over all axes) of the product ``node`` of a change and an array.

    ``sum(c * (x + d)) - sum(c * x) = sum(c * d)``: one contraction of the stacked changes
    with the unchanged operand ``c`` per term of ``d``, exact as any sum is.
    """
    i = next(j for j, c in enumerate(changes) if c is not None)
    shape = node.value.shape
    weights = np.asarray(ev.base(node.args[1 - i]), dtype=np.float64)
    weights = weights.reshape((1,) * (len(shape) - weights.ndim) + weights.shape)
    terms = changes[i].items if isinstance(changes[i], Terms) else [(1.0, changes[i])]
    values = None
    for sign, term in terms:
        part = _factored_sum(ev, node, term, weights) if isinstance(term, Factored) else None
        if part is None:
            part = _plain_sum(lift(expand(term), shape), weights, shape)
        values = sign * part if values is None else values + sign * part
    if reader.op == "mean":
        values = values / reader.kw["count"]
    if reader.kw["keepdims"]:
        values = values.reshape((len(values),) + (1,) * len(shape))
    return Change(values, {}, reader.value.shape)


def _plain_sum(change: Change, weights: np.ndarray, shape: tuple) -> np.ndarray:
    values = change.floats()
    # the weights summed first along the axes the change is constant on (broadcast): fewer products, same sum
    constant = tuple(a for a in range(len(shape)) if values.shape[a + 1] == 1 and weights.shape[a] > 1
                     and a not in change.windows)
    if constant:
        weights = weights.sum(axis=constant, keepdims=True)
    weights = gather(weights, change.windows, change.k, len(shape))
    letters = "".join(chr(ord("a") + a) for a in range(len(shape)))
    if weights.shape[0] == 1:  # the same weights for every perturbation
        lw, weights = letters, weights[0]
    else:
        lw = STACK + letters
    return contract(STACK + letters, values, lw, weights, STACK)  # size-1 axes left broadcast: no copy


def _factored_sum(ev, node, f: Factored, weights: np.ndarray):
    """``sum(w * T[rows] * factor)`` through the table: ``(w T)`` summed where the factor is constant, once."""
    shape = node.value.shape
    t, factor = lifted(f, shape)
    if len(t) * math.prod(shape) > TABLE_ENTRIES:
        return None
    key = (node.id, id(f.table), "weighted")
    table = ev.tables.get(key)
    if table is None:
        constant = tuple(a + 1 for a, s in enumerate(factor.shape[1:]) if s == 1)
        table = ev.tables[key] = (np.broadcast_to(t, t.shape[:1] + shape) * weights).sum(axis=constant, keepdims=True)
    factor = np.broadcast_to(factor, factor.shape[:1] + table.shape[1:])
    out = np.empty(f.k)
    for lo, hi, row in row_runs(f.rows):
        out[lo:hi] = factor[lo:hi].reshape(hi - lo, -1) @ table[row].reshape(-1)
    return out


def exp_sum(ev, node, reader, f: Factored):
    """The change of ``reader`` (a sum or mean of ``node = exp(x)``) when ``x`` changes by the rank-one ``f``.

    NotImplemented where the factor varies along a summed axis or the chunk fails the
    certificate ``|T[g] s_k| < SERIES_BELOW``.
    """
    axes = tuple(reader.kw["axis"])
    if any(f.factor.shape[a + 1] != 1 for a in axes) or 5 * len(f.table) * math.prod(f.shape) > TABLE_ENTRIES:
        return NotImplemented
    key = (node.id, id(f.table), "exp_sum", axes)
    cached = ev.tables.get(key)
    if cached is None:
        cached = ev.tables[key] = _power_sums(np.broadcast_to(f.table, f.table.shape[:1] + f.shape),
                                              node.value, axes)
    sums, reach = cached
    if sums is None:
        return NotImplemented
    largest = float((reach[f.rows] * np.abs(f.factor).reshape(f.k, -1).max(axis=1)).max(initial=0.0))
    if not largest < SERIES_BELOW:
        return NotImplemented
    degree = next(p for p in range(1, _DEGREE + 1) if p == _DEGREE or largest**p / math.factorial(p + 1) < _SERIES_CUT)
    s = f.factor
    values = np.empty((f.k,) + np.broadcast_shapes(sums.shape[2:], s.shape[1:]))
    for lo, hi, row in row_runs(f.rows):
        acc = sums[row, degree - 1] * s[lo:hi]
        for p in range(degree - 2, -1, -1):  # Horner: ((c_d s + c_{d-1}) s + ...) s
            acc += sums[row, p]
            acc *= s[lo:hi]
        values[lo:hi] = acc
    if reader.op == "mean":
        values /= reader.kw["count"]
    if not reader.kw["keepdims"]:
        values = np.squeeze(values, tuple(a + 1 for a in axes))
    return Change(values, {}, reader.value.shape)


def _power_sums(table: np.ndarray, y: np.ndarray, axes: tuple):
    """``sum(y T^p, axes) / p!`` for p = 1..5 (rows, 5, *shape with ``axes`` of size 1), and ``max |T[g]|``."""
    summed = tuple(a + 1 for a in axes)
    power, sums = table, []
    with np.errstate(over="ignore", invalid="ignore"):
        for p in range(1, _DEGREE + 1):
            sums.append((y * power).sum(axis=summed, keepdims=True) / math.factorial(p))
            power = power * table
    sums = np.stack(sums, axis=1)
    if not np.isfinite(sums).all():  # an overflowing exp: the plain path decides
        return None, None
    return sums, np.abs(table).reshape(len(table), -1).max(axis=1)


def picked(ev, node, reader, inputs, rules):
    """The change of ``reader`` (an index of the elementwise ``node``) with the index taken first.

    Each input, broadcast to the node's shape, is indexed as the reader indexes the node:
    its change by the index's own rule, its base value once per engine. The rule then
    runs on a node of the indexed entries only: the same arithmetic on each entry read.
    """
    shape = node.value.shape
    key = ("picked", node.id)
    proxy = ev.graph.derive(key, lambda: Node(node.op, tuple(np.broadcast_to(ev.base(a), shape)[reader.kw["index"]]
                                                             for a in node.args), node.kw, reader.value, key))
    index = rules["getitem"]
    changes = [None if c is None else index(ev, reader, [lift(c, shape)]) for c in inputs]
    return rules[node.op](ev, proxy, changes)
