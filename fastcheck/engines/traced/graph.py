"""The recorded cost: :class:`Graph`, its :class:`Node` s and the :class:`Ref` s between them, and
:class:`NotTraceable`, the end of a trace (or of a verification) the engine cannot vouch for.

:mod:`~.trace` records a graph as the cost runs; :mod:`~.evaluate` runs it on changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NotTraceable", "Graph", "Node", "Ref"]


class NotTraceable(Exception):
    """The traced engine cannot vouch for this cost; ``reason`` says why in one sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Ref:
    """An argument of a node that is another node's value."""

    __slots__ = ("id",)

    def __init__(self, node_id: int):
        self.id = node_id

    def __repr__(self) -> str:
        return f"Ref({self.id})"


@dataclass(eq=False)
class Node:
    """One recorded operation: ``op`` on ``args`` (Refs or constants) with settings ``kw``; its value."""

    op: str
    args: tuple
    kw: dict
    value: np.ndarray
    id: int = -1


@dataclass
class Graph:
    """The recorded cost: nodes in execution order, the node of each parameter group, the output."""

    nodes: list
    params: list
    output: int
    cost: float
    guards: tuple = ()  # nodes of masks and counts the cost read as plain values (see Tracer.guard)
    derived: dict = field(default_factory=dict)  # arrays rules derive from base values, once per node

    def derive(self, key, compute):
        """``compute()``, kept under ``key`` for every later chunk (a race only computes it twice)."""
        value = self.derived.get(key)
        if value is None:
            value = self.derived[key] = compute()
        return value

    def value(self, arg):
        """The base value of an argument (a Ref's node value, or the constant itself)."""
        return self.nodes[arg.id].value if isinstance(arg, Ref) else arg
