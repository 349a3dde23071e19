"""What every user-style model and layer hands to the tests: a case and its planted bugs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class Bug:
    """A planted bug: the buggy gradient and where a checker must find it.

    Attributes
    ----------
    name : str
        What the user did wrong, as they would say it.
    raw : callable ``raw(params) -> dict``
        The buggy backward at any parameters, its dict as the user's code returns it.
    wrong : tuple of str
        Groups that must fail.
    right : tuple of str
        Groups that must still pass.
    entry : tuple (group, index) or None
        The one wrong entry, for a single-entry bug.
    kink : bool
        Not a bug at all: the backward is a valid subgradient at a kink or tie.
    doc : str
        The line the user got wrong (the first line of the buggy function's docstring).
    """

    name: str
    raw: Callable
    wrong: tuple[str, ...]
    right: tuple[str, ...] = ()
    entry: tuple | None = None
    kink: bool = False
    doc: str = ""

    def grads(self, params) -> dict:
        """The buggy gradient at ``params``, parameter keys only (what ``fc.check`` takes today)."""
        return param_grads(self.raw(params), params)



def first_line(fn) -> str:
    """The first line of ``fn``'s docstring: what a planted bug does."""
    return fn.__doc__.strip().splitlines()[0] if fn.__doc__ else ""


def param_grads(grads: dict, params: dict) -> dict:
    """Only the gradients of parameters (``W1`` or ``dW1``) of a user's gradient dict."""
    return {k: v for k, v in grads.items() if k in params or k[1:] in params}


class Case(NamedTuple):
    """``(cost, params, grads, meta)``: what ``fc.check(cost, params, grads)`` takes, and more.

    ``grads`` is the user's gradient dict as their code returns it (with the course's
    ``dA``/``dZ``/``da_next`` keys where the model has them); ``meta["grads_clean"]``
    holds only the parameter gradients; ``meta["bugs"]`` maps a bug's name to its
    :class:`Bug`; the rest of ``meta`` is the model's sizes, data and functions.
    """

    cost: Callable
    params: dict
    grads: dict
    meta: dict


@dataclass(frozen=True)
class LayerCase:
    """A layer as CS231n checks it: ``out, cache = forward(**inputs)``, ``backward(dout, cache)``.

    ``backward`` returns the gradients in the order of ``inputs`` (one array for one
    input); ``bugs`` maps a name to a :class:`Bug` whose ``raw`` is a :class:`LayerGrads`
    of a buggy backward. :meth:`as_cost` gives the same layer in today's form for
    ``fc.check``: the checked scalar is ``sum(out * dout)``, the inputs are the parameters.
    """

    name: str
    forward: Callable
    inputs: dict
    backward: Callable
    dout: np.ndarray
    bugs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def grads(self, backward: Callable | None = None) -> LayerGrads:
        return LayerGrads(self.forward, backward or self.backward, self.dout)

    def bug(self, backward: Callable, wrong, right=(), entry=None, kink=False, name=None) -> Bug:
        """A :class:`Bug` for a buggy ``backward`` of this layer, named after it unless ``name`` is given."""
        return Bug(name or backward.__name__, self.grads(backward), tuple(wrong), tuple(right), entry, kink,
                   first_line(backward))

    def as_cost(self) -> Case:
        grads = self.grads()(self.inputs)
        meta = {"layout": "layer", "layer": self.name, "grads_clean": grads, "bugs": self.bugs,
                "n_params": sum(v.size for v in self.inputs.values()), **self.meta}
        return Case(LayerCost(self.forward, self.dout), dict(self.inputs), grads, meta)


class LayerCost:
    """``sum(forward(**params)[0] * dout)``: a layer seen as a scalar cost (picklable)."""

    def __init__(self, forward: Callable, dout):
        self.forward = forward
        self.dout = dout

    def __call__(self, params) -> float:
        out, _ = self.forward(**params)
        return float(np.sum(out * self.dout))


class LayerGrads:
    """``params -> {name: d name}``: a layer's backward for ``dout`` at the inputs ``params``."""

    def __init__(self, forward: Callable, backward: Callable, dout):
        self.forward = forward
        self.backward = backward
        self.dout = dout

    def __call__(self, params) -> dict:
        _, cache = self.forward(**params)
        grads = self.backward(self.dout, cache)
        if isinstance(grads, np.ndarray):
            grads = (grads,)
        return {"d" + name: g for name, g in zip(params, grads)}
