"""Layer checks, as CS231n's ``eval_numerical_gradient_array`` does them.

An array-valued layer ``out = forward(**inputs)`` with an upstream gradient ``dout`` is
checked through the scalar ``sum(out * dout)``: its gradient with respect to every input
is exactly what the layer's backward returns for that ``dout``. A random ``dout`` (the
default) checks every entry of the backward; ``dout = ones`` would only check the sum of
its columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputError

__all__ = ["LayerCost", "layer_output", "default_dout", "layer_gradients", "DOUT_NOTE", "SCALAR_DOUT_NOTE"]

#: How the report describes the default upstream gradient.
DOUT_NOTE = "dout: standard normal, seed {seed} (the checked scalar is sum(out * dout))"
#: ... and the one of a scalar output (a loss), where dout = 1 checks the loss itself.
SCALAR_DOUT_NOTE = "dout: 1, the output is a scalar (the checked scalar is out itself)"


def layer_output(result, where: str = "forward") -> np.ndarray:
    """The layer's output from what ``forward`` returned: ``out`` or ``(out, cache)``."""
    if isinstance(result, tuple):
        if not result:
            raise InputError(f"{where} returned an empty tuple; it must return out or (out, cache)")
        result = result[0]
    if not hasattr(result, "shape"):
        raise InputError(f"{where} returned {type(result).__name__}; it must return an array (or (out, cache))")
    return result


class LayerCost:
    """``sum(forward(**inputs) * dout)`` as a cost of the inputs (a class, so it pickles for workers)."""

    def __init__(self, forward, dout: np.ndarray):
        self.forward, self.dout = forward, dout

    def __call__(self, inputs) -> float:
        out = layer_output(self.forward(**inputs))
        return (out * self.dout).sum()


def default_dout(shape: tuple[int, ...], seed: int, given_grads: bool) -> tuple[np.ndarray, str]:
    """The upstream gradient when none is given, and how the report describes it.

    ``backward`` follows any ``dout``: it gets a seeded standard-normal one (a scalar output
    too, which checks that the backward scales by ``dout``). Gradients passed as ``grads``
    were computed for some ``dout`` of the user's, which fastcheck cannot guess, so they
    need it given; except for a scalar output (a loss such as ``softmax_loss``, returning
    ``(loss, dx)``), whose gradients are the loss's own: ``dout = 1``.
    """
    if given_grads and not shape:
        return np.ones(()), SCALAR_DOUT_NOTE
    if given_grads:
        raise InputError(f"`grads` were computed for some upstream gradient `dout` of out's shape {shape}, "
                         "which fastcheck cannot guess: pass that array as `dout=` (a --layer factory returns it "
                         "fourth), or pass `backward=` "
                         "(called as backward(dout, cache)) so fastcheck computes the gradients for its own "
                         "seeded dout")
    return np.random.default_rng(seed).standard_normal(shape), DOUT_NOTE.format(seed=seed)


def layer_gradients(inputs: Mapping, grads, backward, dout: np.ndarray, cache):
    """The analytic gradients to check: ``grads`` as given, or ``backward(dout, cache)`` by input."""
    if (grads is None) == (backward is None):
        raise InputError("give the analytic gradients as `grads` (a dict: dx, dw, ... or x, w, ...) or "
                         "`backward` (called as backward(dout, cache)), exactly one of them")
    if grads is not None:
        return grads
    if cache is None:
        raise InputError("`backward` needs the cache: forward must return (out, cache), as CS231n's layers do")
    result = backward(dout, cache)
    names = list(inputs)
    if isinstance(result, np.ndarray) and len(names) == 1:
        result = (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else type(result).__name__
        raise InputError(f"backward(dout, cache) must return one gradient per input, in the order of `inputs` "
                         f"({', '.join(names)}): got {got}")
    return dict(zip(names, result))
