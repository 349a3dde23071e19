"""The traced engine: a user's numpy cost, traced once, every coordinate evaluated incrementally.

:func:`traced_engine` traces the cost (:mod:`~.trace`), then checks the trace before it is
trusted: the traced J(theta) and J(theta +- eps e_i) of a seeded sample of coordinates
(:data:`VERIFY_PER_GROUP` of every group) must equal the real cost's to within
:data:`TOLERANCE_ULPS` units in the last place of ``max(|J|, |J+-|)``, i.e.
``|J_traced - J_cost| <= TOLERANCE_ULPS * 2**-52 * max(|J_traced|, |J_cost|)``. Either
evaluation rounds like a full pass of the cost; a wrong change rule errs by the size of
the change itself, orders of magnitude above that. Any disagreement ends with
:class:`~.graph.NotTraceable` naming the coordinate. The sample runs as the first chunk of
its group (which measures the group's memory; a small group runs whole): once every
comparison passed, those traced values serve :meth:`TracedEngine.coordinates`, not run again.

Coordinates are evaluated in chunks of one group: the chunk's 2K perturbations (``+s`` and
``-s``, with ``s`` the step the reference engine takes, ``fl(theta_i +- eps) - theta_i``)
run as one stack (:func:`~.evaluate.run`). Chunks run on threads (numpy's BLAS and most
ufunc loops release the GIL), BLAS capped to one thread while they do and restored after
(:func:`~fastcheck.core.threads.blas_limited`). The chunk size of a group is set from the
bytes one perturbation's changes held in a first small chunk: all threads together stay
under ``max_memory``, and no single change of a chunk is much over :data:`WIDEST_BYTES`.

Why the second bound: every rule allocates its result and temporaries anew, and the
elementwise work is as fast as memory lets it be. Arrays of a few MiB are served again
and again from the heap once :func:`_keep_freed_memory` has shown the allocator one large
block being freed (glibc then stops returning each freed array to the system, so a new
one costs no page faults); far larger arrays would be mapped and faulted in afresh every
time, which costs more than the arithmetic on them.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...core.directions import direction_steps
from ...core.finite import central_difference, coordinate_gradient, step_at
from ...core.limits import DEFAULT_MAX_MEMORY  # bounds the changes held at once by all threads together
from ...core.objective import perturbation_label
from ...core.results import DirectionEvaluations, Evaluations
from ...core.threads import blas_limited, single_threaded
from .changes import Change
from .evaluate import PROBED_READERS, first_changes, leaf_readers, plan, point_changes, run
from .graph import NotTraceable
from .tracing import trace

__all__ = ["traced_engine", "TracedEngine", "DEFAULT_MAX_MEMORY", "TOLERANCE_ULPS", "VERIFY_PER_GROUP"]

#: Traced and real costs must agree to this many units in the last place of |J|.
TOLERANCE_ULPS = 2**10
#: Coordinates of each group evaluated by the real cost before the engine is trusted.
VERIFY_PER_GROUP = 3
#: Coordinates per chunk: the first chunk of a group (to measure its memory), and at most.
FIRST_CHUNK, MAX_CHUNK = 8, 4096
#: A group is split across threads only into chunks of at least this many coordinates: a run's Python
#: work (tens of microseconds per operation, under the GIL) would cost more than a second thread saves.
MIN_SPLIT = 256
#: Coordinates ordered by the first step they change are cut where that step moves on, into chunks of at
#: least this many (a chunk that starts late skips the steps before).
MIN_START_CUT = 256
#: Coordinates of a group probed at once for the first step they change (:meth:`TracedEngine._start_order`).
PROBE_CHUNK = 1024
#: Bytes of one change of a chunk, at most (to within the estimate of a first chunk): see the module docstring.
WIDEST_BYTES = 4 * 2**20
#: A block this large, allocated and freed once, raises glibc's thresholds for mapping and returning memory.
_FREED_BLOCK = 30 * 2**20
#: Temporaries of a rule, as a multiple of the changes it holds.
TEMPORARIES = 4


class TracedEngine:
    """Central differences of a traced cost; build it with :func:`traced_engine`.

    Attributes
    ----------
    name : str
        ``"traced"``.
    cost : float
        J(theta) as traced.
    graph : Graph
        The recorded cost.
    """

    name = "traced"

    def __init__(self, graph, objective, layout, theta: np.ndarray, eps: float, *, max_memory=None,
                 n_threads=None):
        self.graph, self.objective, self.layout = graph, objective, layout
        self.theta, self.eps, self.cost = theta, eps, graph.cost
        self.max_memory = DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
        self.n_threads = max(1, int(n_threads or os.cpu_count() or 1))
        self._plans, self._tables, self._bytes, self._widest = {}, {}, {}, {}
        self._starts = {}
        self._known = None  # (flat indices, dJ+, dJ-, kinks) evaluated while verifying, kept once it passed

    # ------------------------------------------------------------------ running
    def _plan(self, positions: tuple):
        if positions not in self._plans:
            self._plans[positions] = plan(self.graph, [self.graph.params[p] for p in positions])
            self._tables[positions] = {}
        return self._plans[positions]

    def _chunk(self, position: int, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dJ+ and dJ- of the coordinates ``local`` (flat, inside group ``position``), and their kinks."""
        group = self.layout.groups[position]
        original = self.theta[group.start + local]
        eps = step_at(self.eps, group.start + local)  # one step, or each coordinate's (eps="auto")
        steps = np.concatenate([(original + eps) - original, (original - eps) - original])
        leaf = point_changes(group.shape, np.concatenate([local, local]), steps)
        order = self._plan((position,))
        change, kinks, memory = run(self.graph, order, {self.graph.params[position]: leaf}, self._tables[(position,)])
        self._bytes[position] = max(self._bytes.get(position, 0), memory.peak / (2 * len(local)))
        self._widest[position] = max(self._widest.get(position, 0), memory.widest / (2 * len(local)))
        k = len(local)
        return change[:k], change[k:], kinks[:k] | kinks[k:]

    def _start_order(self, position: int, local: np.ndarray) -> np.ndarray:
        """An order of ``local`` by the first step each coordinate changes (:func:`~.evaluate.first_changes`),
        and those steps in that order (None where the group is not probed)."""
        if position not in self._starts:
            order, leaf = self._plan((position,)), self.graph.params[position]
            if len(leaf_readers(self.graph, order, leaf)) < PROBED_READERS:
                self._starts[position] = None  # read by one or two nodes: every coordinate starts early
            else:
                group = self.layout.groups[position]
                every = np.arange(group.size)
                step = np.full(group.size, float(np.max(step_at(self.eps, group.start + every))))
                self._starts[position] = np.concatenate([
                    first_changes(self.graph, order, leaf, point_changes(group.shape, every[lo:lo + PROBE_CHUNK],
                                                                          step[lo:lo + PROBE_CHUNK]))
                    for lo in range(0, group.size, PROBE_CHUNK)])
        starts = self._starts[position]
        if starts is None:
            return np.arange(local.size), None
        order = np.argsort(starts[local], kind="stable")
        return order, starts[local][order]

    def _chunk_size(self, position: int) -> int:
        per_coordinate = 2 * TEMPORARIES * max(self._bytes[position], 8.0)
        widest = 2 * max(self._widest[position], 8.0)
        return int(np.clip(min(self.max_memory / (self.n_threads * per_coordinate), WIDEST_BYTES / widest),
                           1, MAX_CHUNK))

    def coordinates(self, indices) -> Evaluations:
        """J(theta +- eps e_i) of ``indices``, exactly, by incremental evaluation.

        Coordinates the verification evaluated (and vouched for) are taken from it, not run again.

        Parameters
        ----------
        indices : ndarray of int, shape (k,)
            Flat coordinates of theta, any order.

        Returns
        -------
        Evaluations
            Aligned with ``indices``; ``n_evaluations = 2 * len(indices)``.
        """
        indices = np.asarray(indices, dtype=np.int64)
        k = indices.size
        if self._known is None:
            d_plus, d_minus, kinks = self._changes(indices)
        else:
            known, known_plus, known_minus, known_kinks = self._known
            at = np.minimum(np.searchsorted(known, indices), known.size - 1)
            hit = known[at] == indices
            d_plus, d_minus, kinks = np.zeros(k), np.zeros(k), np.zeros(k, dtype=bool)
            d_plus[hit], d_minus[hit], kinks[hit] = known_plus[at[hit]], known_minus[at[hit]], known_kinks[at[hit]]
            rest = np.flatnonzero(~hit)
            d_plus[rest], d_minus[rest], kinks[rest] = self._changes(indices[rest])
        cost_plus, cost_minus = self.cost + d_plus, self.cost + d_minus
        # the steps taken are the rounded ones (fl(theta_i +- eps) - theta_i): divide by them, not by 2 eps
        numeric = coordinate_gradient(d_plus, d_minus, self.theta[indices], step_at(self.eps, indices))
        return Evaluations(indices, cost_plus, cost_minus, numeric, kinks, 2 * k)

    def _changes(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dJ+, dJ- and the kinks of ``indices``, in chunks of one group, on threads."""
        k = indices.size
        d_plus, d_minus, kinks = np.zeros(k), np.zeros(k), np.zeros(k, dtype=bool)
        if not k:
            return d_plus, d_minus, kinks
        groups = self.layout.group_ids(indices)
        tasks = []

        def store(rows, position, local):
            d_plus[rows], d_minus[rows], kinks[rows] = self._chunk(position, local)

        _keep_freed_memory()
        with blas_limited():
            for position in np.unique(groups):
                rows = np.flatnonzero(groups == position)
                local = indices[rows] - self.layout.groups[position].start
                starts = None
                if rows.size > MIN_START_CUT:  # coordinates that change nothing until late run together
                    order, starts = self._start_order(position, local)
                    rows, local = rows[order], local[order]
                done = 0
                if position not in self._bytes:  # a first small chunk measures the memory of one coordinate
                    # (a small group whose dense changes fit runs whole: a second run would cost more than it saves)
                    done = rows.size if rows.size <= self._whole_first else min(FIRST_CHUNK, rows.size)
                    store(rows[:done], position, local[:done])
                share = max(-(-(rows.size - done) // self.n_threads), MIN_SPLIT)
                size = max(1, min(self._chunk_size(position), share))
                cuts = _cuts(None if starts is None else starts[done:], rows.size - done, size)
                tasks += [(rows[done + lo:done + hi], position, local[done + lo:done + hi])
                          for lo, hi in zip(cuts[:-1], cuts[1:])]
            tasks.sort(key=lambda task: -task[0].size * self._bytes[task[1]])  # the longest first: threads end together
            if self.n_threads > 1 and len(tasks) > 1:
                with ThreadPoolExecutor(max_workers=self.n_threads) as pool:
                    for future in [pool.submit(store, *task) for task in tasks]:
                        future.result()
            else:
                for task in tasks:
                    store(*task)
        return d_plus, d_minus, kinks

    @functools.cached_property
    def _whole_first(self) -> int:
        """Coordinates a group's first chunk may hold before its memory is measured: at most :data:`MIN_SPLIT`
        (above, the group is split across threads anyway), and as many as fit if every change were dense.
        Worked out from the graph once, for every group."""
        dense = max(self._dense_bytes, 8)
        widest = max((node.value.size for node in self.graph.nodes), default=1) * 8
        return int(min(MIN_SPLIT, self.max_memory / (self.n_threads * 2 * TEMPORARIES * dense),
                       WIDEST_BYTES / (2 * widest)))

    def directions(self, directions: list, analytic: np.ndarray) -> DirectionEvaluations:
        """Directional central differences, each direction a dense change of one group or of all theta."""
        k = len(directions)
        numeric, values, kinks = np.zeros(k), np.zeros(k), np.zeros(k, dtype=bool)
        spans = {}
        for j, d in enumerate(directions):
            spans.setdefault((d.start, d.stop), []).append(j)
        _keep_freed_memory()
        with blas_limited():
            for (start, stop), rows in spans.items():
                positions = tuple(p for p, g in enumerate(self.layout.groups) if g.start < stop and g.stop > start)
                size = max(1, int(self.max_memory / (TEMPORARIES * 16 * max(1, self._dense_bytes))))
                for lo in range(0, len(rows), size):
                    part = rows[lo:lo + size]
                    steps = direction_steps(self.theta, analytic, [directions[j] for j in part], self.eps)
                    both = np.concatenate([steps.plus, -steps.minus])
                    leaves = {}
                    for p in positions:
                        g = self.layout.groups[p]
                        block = both[:, g.start - start:g.stop - start].reshape((len(both),) + g.shape)
                        leaves[self.graph.params[p]] = Change(block, {}, g.shape)
                    change, flips, _ = run(self.graph, self._plan(positions), leaves, self._tables[positions])
                    n = len(part)
                    numeric[part] = central_difference(change[:n], change[n:], self.eps)
                    values[part], kinks[part] = steps.analytic, flips[:n] | flips[n:]
        return DirectionEvaluations(list(directions), values, numeric, kinks, 2 * k)

    @functools.cached_property
    def _dense_bytes(self) -> int:
        """Bytes of every node's value: what one dense perturbation can hold at most."""
        return sum(node.value.size for node in self.graph.nodes) * 8

    # ------------------------------------------------------------------ trust and time
    def verify(self, seed: int = 0) -> None:
        """Compare a seeded sample of coordinates with the real cost; raise NotTraceable on disagreement.

        The sample runs as the first chunk of its group (a small group whole, :attr:`_whole_first`): once
        every comparison passed, those traced values are kept for :meth:`coordinates`; before, none is.
        """
        rng = np.random.default_rng(seed)
        sample = np.concatenate([g.start + rng.choice(g.size, min(g.size, VERIFY_PER_GROUP), replace=False)
                                 for g in self.layout.groups])
        whole = [np.arange(g.start, g.stop) for g in self.layout.groups if g.size <= self._whole_first]
        run = np.unique(np.concatenate([sample] + whole))  # sorted, for the lookup in coordinates
        d_plus, d_minus, kinks = self._changes(run)
        cost_plus, cost_minus = self.cost + d_plus, self.cost + d_minus
        row = np.searchsorted(run, sample)
        work = self.theta.copy()
        with single_threaded():  # the real cost runs as in every other path of a check (core.threads)
            self._agree(self.cost, self.objective.evaluate(self.theta), "the unperturbed parameters")
            for p, i in zip(row, sample):
                original = work[i]
                for sign, traced in ((+1, cost_plus[p]), (-1, cost_minus[p])):
                    if not np.isfinite(traced):  # not vouched for (a guard changed): the real cost evaluates it
                        continue
                    work[i] = original + sign * step_at(self.eps, i)
                    self._agree(traced, self.objective.evaluate(work, int(i), sign),
                                perturbation_label(self.layout, int(i), sign))
                work[i] = original
        self._known = (run, d_plus, d_minus, kinks)

    def _agree(self, traced: float, real: float, where: str) -> None:
        tolerance = TOLERANCE_ULPS * 2.0**-52 * max(abs(traced), abs(real))
        if not abs(traced - real) <= tolerance:
            raise NotTraceable(f"the traced evaluation of {where} differs from the cost: "
                               f"{float(traced)!r} vs {float(real)!r}")


def _cuts(starts, n: int, size: int) -> list:
    """Bounds of the chunks of ``n`` coordinates: at most ``size`` each, and, where ``starts`` (sorted) is
    given, cut where the first step changed moves on once a chunk has :data:`MIN_START_CUT` coordinates (a
    chunk that starts late skips the steps before: its changes are zero there)."""
    if starts is None:
        return list(range(0, n, size)) + [n]
    cuts = [0]
    # only where the first step moves on, and every `size` between: no Python loop over the coordinates
    for moved in (np.flatnonzero(np.asarray(starts[1:n]) != np.asarray(starts[: n - 1])) + 1).tolist():
        while cuts[-1] + size <= moved:
            cuts.append(cuts[-1] + size)
        if moved - cuts[-1] >= MIN_START_CUT:
            cuts.append(moved)
    while cuts[-1] + size < n:
        cuts.append(cuts[-1] + size)
    return cuts + [n] if n else cuts


def _keep_freed_memory() -> None:
    """Let the allocator keep freed arrays of up to :data:`_FREED_BLOCK` bytes for reuse.

    glibc maps each block above its threshold (128 KiB to start with) afresh and returns it
    on free, and trims the heap above a second threshold; both rise, by its own rule, to
    the size of the largest mapped block freed (up to 32 MiB). Freeing one such block (not
    written to, so never faulted in) is what a numpy program does all the time; other
    allocators ignore it.
    """
    block = np.empty(_FREED_BLOCK // 8)
    del block


def traced_engine(objective, layout, theta: np.ndarray, eps: float, *, max_memory=None, n_threads=None,
                  seed: int = 0) -> TracedEngine:
    """Trace ``objective``'s cost at ``theta`` and return the verified engine.

    Parameters
    ----------
    objective : CostObjective
        The user's cost as fastcheck calls it (used to verify the trace).
    layout : Layout
    theta : ndarray of shape (n_params,), float64
    eps : float, or ndarray of float64 of shape (n_params,)
        The step, or each coordinate's (``eps="auto"``); directions take a float.
    max_memory : int, optional
        Bytes of changes held at once by all threads (default :data:`DEFAULT_MAX_MEMORY`).
    n_threads : int, optional
        Threads evaluating chunks (default: the machine's cores).
    seed : int
        Seed of the verification sample.

    Returns
    -------
    TracedEngine

    Raises
    ------
    NotTraceable
        When the cost cannot be traced or the trace disagrees with the cost; ``reason`` says why.
    """
    # a cost returning (loss, grads): the loss is traced, the gradient code may leave the trace
    with single_threaded():
        graph = trace(objective.cost, layout, theta, loss_only=getattr(objective, "returns_grads", False))
    engine = TracedEngine(graph, objective, layout, theta, eps, max_memory=max_memory, n_threads=n_threads)
    engine.verify(seed)
    return engine
