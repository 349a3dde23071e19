"""Running a graph on changes: K stacked perturbations of some parameter groups -> K exact cost changes.

Only the nodes downstream of the perturbed parameters that the output depends on run,
in recording order, each on the changes of its inputs (:data:`RULES`); everything
upstream is the base pass, reused as it is. A change is freed after its last reader.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .changes import Change, gather, lift, unify
from .contraction import CONTRACTIONS
from .elementwise import BRANCHING, ELEMENTWISE
from .factored import FACTORED, Factored, expand
from .fused import Terms, exp_sum, picked, weighted_sum
from .graph import Graph, Ref
from .reductions import REDUCTIONS
from .shapes import SHAPES

__all__ = ["RULES", "Plan", "plan", "run", "point_changes", "first_changes", "leaf_readers", "PROBED_READERS",
           "Evaluation", "Memory"]


class _Inputs:
    """What an elementwise rule reads: base values and changes of its inputs in the common windows."""

    def __init__(self, ev, node, changes):
        shape = node.value.shape
        self.changes = unify([None if c is None else lift(c, shape) for c in changes])
        ref = next(c for c in self.changes if c is not None)
        self.windows, self.k, self.ndim = ref.windows, ref.k, len(shape)
        self.ev, self.node, self.n_args = ev, node, len(node.args)
        self._bases = {}

    def x(self, i):
        """Base value of input ``i`` in the windows (broadcastable to ``(K, *window shape)``)."""
        if i not in self._bases:
            self._bases[i] = gather(self.ev.base(self.node.args[i]), self.windows, self.k, self.ndim)
        return self._bases[i]

    def y(self):
        """Base value of the output in the windows."""
        if "y" not in self._bases:
            self._bases["y"] = gather(self.node.value, self.windows, self.k, self.ndim)
        return self._bases["y"]

    def derived(self, name, compute):
        """``compute()`` (a full-shape array from base values, kept per node) in the windows."""
        key = (name, self.node.id)
        if key not in self._bases:
            full = self.ev.graph.derive(key, compute)
            self._bases[key] = gather(full, self.windows, self.k, self.ndim)
        return self._bases[key]

    def d(self, i):
        """Change of input ``i`` as float64, or None."""
        c = self.changes[i]
        return None if c is None else c.floats()

    def raw(self, i):
        """Change of input ``i`` as stored (int8 for masks), or None."""
        c = self.changes[i]
        return None if c is None else c.values

    def kink(self, flips):
        self.ev.kink(flips)


def _elementwise(rule):
    def apply(ev, node, changes):
        inputs = _Inputs(ev, node, changes)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = rule(inputs)
        if values is None:
            return None
        return Change(values, inputs.windows, node.value.shape)

    return apply


#: The change rule of every op a trace can record (``param`` is a leaf and never runs).
RULES = {**{op: _elementwise(rule) for op, rule in ELEMENTWISE.items()}, **REDUCTIONS, **CONTRACTIONS, **SHAPES}


class Evaluation:
    """The state of one run: the graph's base values, the kinks found, the memory held by changes."""

    def __init__(self, graph: Graph, k: int, tables: dict | None = None):
        self.graph, self.kinks = graph, np.zeros(k, dtype=bool)
        self.tables = tables  # tables of factored changes, shared by the chunks of one plan (None: never factor)

    def base(self, arg):
        return self.graph.value(arg)

    def kink(self, flips) -> None:
        flips = np.asarray(flips)
        if flips.ndim:
            self.kinks |= flips.reshape(flips.shape[0], -1).any(axis=1)


class Plan:
    """The nodes to run, in order, when the given parameter nodes change; when each change can be freed.

    ``fused`` maps a product with an unchanged array (``Y * logp``) whose only reader is a
    sum or mean over all its axes to that reduction: the two run as one contraction
    (:func:`~.fused.weighted_sum`), a matrix-vector product instead of two passes;
    ``deferred`` are the sums and differences whose only reader is such a product: they do
    not run, their terms are weighted one by one (:class:`~.fused.Terms`). ``series`` maps
    an ``exp`` whose only reader is a sum to that sum (:func:`~.fused.exp_sum`), ``picks`` an
    elementwise node without branches whose only reader indexes it to that index (:func:`~.fused.picked`).
    """

    def __init__(self, order: list, last_use: dict, fused: dict | None = None, deferred=(), series=None,
                 picks=None):
        self.order, self.last_use, self.fused = order, last_use, fused or {}
        self.deferred, self.series, self.picks = frozenset(deferred), series or {}, picks or {}


def plan(graph: Graph, leaves) -> Plan:
    live = {graph.output, *graph.guards}
    for node in reversed(graph.nodes):
        if node.id in live:
            live.update(a.id for a in node.args if isinstance(a, Ref))
    reached = set(leaves)
    order = []
    for node in graph.nodes:
        if node.id in reached:
            continue
        if any(isinstance(a, Ref) and a.id in reached for a in node.args):
            reached.add(node.id)
            if node.id in live:
                order.append(node.id)
    last_use = {}
    for position, node_id in enumerate(order):
        for a in graph.nodes[node_id].args:
            if isinstance(a, Ref):
                last_use[a.id] = position
    readers = _readers(graph, live)
    fused = _fusable(graph, order, reached, readers)
    series, picks = _series(graph, order, readers)
    return Plan(order, last_use, fused, _deferred(graph, fused, reached, readers), series, picks)


def _readers(graph: Graph, live: set) -> dict:
    readers = {}
    for node in graph.nodes:
        if node.id in live:
            for a in node.args:
                if isinstance(a, Ref):
                    readers.setdefault(a.id, []).append(node.id)
    return readers


def _sole_reader(graph: Graph, node_id: int, readers: dict):
    """The only reader of a node that is neither the output nor a guard, nor read by a guard; else None."""
    mine = readers.get(node_id, ())
    if len(mine) != 1 or node_id == graph.output or node_id in graph.guards or mine[0] in graph.guards:
        return None
    return graph.nodes[mine[0]]


def _deferred(graph: Graph, fused: dict, reached: set, readers: dict) -> set:
    """Sums and differences (and their own such inputs) read only by a fused product."""
    deferred, todo = set(), [a.id for m in fused for a in graph.nodes[m].args if isinstance(a, Ref) and a.id in reached]
    while todo:
        node_id = todo.pop()
        node = graph.nodes[node_id]
        reader = _sole_reader(graph, node_id, readers)
        if node.op in ("add", "subtract", "negative", "positive") and reader is not None and (
                reader.id in fused or reader.id in deferred):
            deferred.add(node_id)
            todo += [a.id for a in node.args if isinstance(a, Ref) and a.id in reached]
    return deferred


def _series(graph: Graph, order: list, readers: dict) -> tuple[dict, dict]:
    """Exps read only by a sum; elementwise nodes without branches read only by an index."""
    series, picks = {}, {}
    for node_id in order:
        reader, op = _sole_reader(graph, node_id, readers), graph.nodes[node_id].op
        if reader is not None and op == "exp" and reader.op in ("sum", "mean"):
            series[node_id] = reader.id
        elif reader is not None and op in ELEMENTWISE and op not in BRANCHING and reader.op == "getitem":
            picks[node_id] = reader.id
    return series, picks


def _fusable(graph: Graph, order: list, reached: set, readers: dict) -> dict:
    fused = {}
    for node_id in order:
        node = graph.nodes[node_id]
        if node.op != "multiply" or node_id == graph.output or len(readers.get(node_id, ())) != 1:
            continue
        reader = graph.nodes[readers[node_id][0]]
        if node_id in graph.guards or reader.id in graph.guards:  # their changes are looked at: computed as such
            continue
        changed = [isinstance(a, Ref) and a.id in reached for a in node.args]
        whole = tuple(reader.kw.get("axis", ())) == tuple(range(node.value.ndim))  # a loss's final sum
        if reader.op in ("sum", "mean") and whole and sum(changed) == 1:
            other = node.args[changed.index(False)]
            if np.size(graph.value(other)) > 1:  # an array: a scalar factor gains nothing
                fused[node_id] = reader.id
    return fused


def _apply(ev, node, inputs, changes):
    if any(isinstance(c, Factored) for c in inputs):
        rule = FACTORED.get(node.op)
        change = NotImplemented if rule is None else rule(ev, node, inputs)
        if change is not NotImplemented:
            return change
        for i, (a, c) in enumerate(zip(node.args, inputs)):
            if isinstance(c, Factored):  # expanded once, for every later reader too
                inputs[i] = changes[a.id] = expand(c)
    return RULES[node.op](ev, node, inputs)


class Memory(NamedTuple):
    """Bytes held by the changes of one run: all live ones at once at most, and the largest single one."""

    peak: int
    widest: int


def _nbytes(change) -> int:
    if isinstance(change, Terms):
        return change.nbytes
    return (change.factor if isinstance(change, Factored) else change.values).nbytes


def _fused(ev, steps: Plan, node, inputs):
    """(node id, change) when ``node`` runs with its reader as one (:mod:`~.fused`), else (None, None)."""
    if node.id in steps.deferred:  # read only by a fused product, which weights its terms
        return node.id, Terms.of(node, inputs)
    if node.id in steps.fused:  # the reader will find no input
        reader = steps.fused[node.id]
        return reader, weighted_sum(ev, node, ev.graph.nodes[reader], inputs)
    if node.id in steps.series and isinstance(inputs[0], Factored):
        reader = steps.series[node.id]
        change = exp_sum(ev, node, ev.graph.nodes[reader], inputs[0])
        if change is not NotImplemented:
            return reader, change
    if node.id in steps.picks and not any(isinstance(c, Factored) for c in inputs):
        reader = steps.picks[node.id]
        return reader, picked(ev, node, ev.graph.nodes[reader], inputs, RULES)
    return None, None


def run(graph: Graph, steps: Plan, leaf_changes: dict, tables: dict | None = None
        ) -> tuple[np.ndarray, np.ndarray, Memory]:
    """Exact changes of the cost for K stacked perturbations of the parameter nodes in ``leaf_changes``.

    Returns
    -------
    change : ndarray of shape (K,)
        ``J(theta + D_k) - J(theta)``; NaN where a guard changes (a mask or count that plain code read,
        :meth:`~.trace.Tracer.guard`): the engine cannot vouch for those, the real cost must evaluate them.
    kinks : ndarray of bool, shape (K,)
        Perturbations that flipped a comparison, a maximum/minimum/abs or the winner of a max.
    memory : Memory
        Largest number of bytes held by live changes at once, and by one change.

    ``tables`` (a dict kept by the caller for all chunks of one plan) lets rank-one changes
    stay factored (:mod:`~.factored`); without it every change is a plain one.
    """
    k = next(iter(leaf_changes.values())).k
    ev = Evaluation(graph, k, tables)
    unvouched = np.zeros(k, dtype=bool)
    changes = dict(leaf_changes)
    held = {i: c.values.nbytes for i, c in changes.items()}
    peak = widest = live = sum(held.values())  # live: the sum of held, kept as it changes
    for position, node_id in enumerate(steps.order):
        node = graph.nodes[node_id]
        inputs = [changes.get(a.id) if isinstance(a, Ref) else None for a in node.args]
        if any(c is not None for c in inputs):
            target, change = _fused(ev, steps, node, inputs)
            if change is None:
                target, change = node_id, _nonzero(_apply(ev, node, inputs, changes), k)
                if change is not None and node_id in graph.guards:  # plain code read it: where it changes, no vouching
                    unvouched |= _changed(change, k)
            if change is not None:
                changes[target] = change
                size = _nbytes(change)
                live += size - held.get(target, 0)
                held[target] = size
                peak, widest = max(peak, live), max(widest, size)
        for a in node.args:
            if isinstance(a, Ref) and steps.last_use.get(a.id) == position and a.id != graph.output:
                changes.pop(a.id, None)
                live -= held.pop(a.id, 0)
    out = expand(changes.get(graph.output))
    total = np.zeros(k) if out is None else out.stacked().reshape(k, -1).sum(axis=1)
    total[unvouched] = np.nan  # NaN: the caller evaluates these perturbations with the real cost
    return total, ev.kinks, Memory(peak, widest)


#: A change of at most this many numbers per perturbation is checked for being zero (then none runs on from it).
ZERO_CHECKED = 8


def _nonzero(change, k: int):
    """The change, or None where it is a small one that is zero for every perturbation (``W @ zeros``).

    Dropping it is exact; it spares the nodes downstream (an RNN's first step from a zero state).
    """
    if isinstance(change, Change) and change.values.size <= ZERO_CHECKED * k and not change.values.any():
        return None
    return change


def _changed(change, k: int) -> np.ndarray:
    """Perturbations whose change is not zero everywhere."""
    values = expand(change).values
    return np.broadcast_to((values != 0).reshape(values.shape[0], -1).any(axis=1), (k,))


def point_changes(shape: tuple, local: np.ndarray, steps: np.ndarray) -> Change:
    """The change of a parameter array when entry ``local[k]`` (flat, C order) moves by ``steps[k]``."""
    k = len(steps)
    if not shape:
        return Change(np.asarray(steps, dtype=np.float64).copy(), {}, ())
    coordinates = np.unravel_index(local, shape)
    windows = {a: (np.asarray(c, dtype=np.int64), 1) for a, c in enumerate(coordinates)}
    return Change(np.asarray(steps, dtype=np.float64).reshape((k,) + (1,) * len(shape)), windows, shape)



#: A parameter read by fewer nodes than this is not probed (:func:`first_changes`): its readers all run early.
PROBED_READERS = 3
#: A reader whose value times the probe's perturbations has more entries than this is not run by the probe.
PROBED_ENTRIES = 2**22
def leaf_readers(graph: Graph, steps: Plan, leaf: int) -> list:
    """Positions in ``steps.order`` of the nodes that read ``leaf``."""
    return [p for p, node_id in enumerate(steps.order)
            if any(isinstance(a, Ref) and a.id == leaf for a in graph.nodes[node_id].args)]


def first_changes(graph: Graph, steps: Plan, leaf: int, leaf_change: Change) -> np.ndarray:
    """For each perturbation, the position (in ``steps.order``) of the first reader of ``leaf`` it changes.

    Only the leaf's own readers run, each on the leaf's change alone. This only orders the
    coordinates of a group (those that change nothing until late, an RNN's input weights of
    a character not seen yet, go together, and their chunks skip the steps before: a small
    change that is zero for a whole chunk stops there). Nothing computed here is used as a
    result, so an approximation costs time, never exactness.
    """
    k = leaf_change.k
    readers = leaf_readers(graph, steps, leaf)
    first = np.full(k, len(steps.order), dtype=np.int64)
    ev = Evaluation(graph, k)
    for p in readers[::-1]:  # the earliest last
        node = graph.nodes[steps.order[p]]
        if node.value.size * k > PROBED_ENTRIES:  # a reader too large to run on the whole probe: taken as changed
            first[:] = p
            continue
        inputs = [leaf_change if isinstance(a, Ref) and a.id == leaf else None for a in node.args]
        try:
            with np.errstate(all="ignore"):
                change = RULES[node.op](ev, node, inputs)
        except Exception:  # noqa: BLE001 -- a reader that cannot run on the leaf alone: taken as changed
            change = NotImplemented
        if change is None:
            continue
        moved = _changed(change, k) if isinstance(change, Change) else np.ones(k, dtype=bool)
        first[moved] = p
    return first
