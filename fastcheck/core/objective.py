"""Costs as the engines see them: theta in, a validated float64 cost out.

An objective wraps the user's ``cost(params)`` (or the built-in MLP's cost) so that
every evaluation is validated the same way and every failure names the coordinate
being evaluated. :class:`CostObjective` is a module-level class, so it pickles for
process pools.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import CostError, DtypeError, MutationError, NondeterministicCostError
from .layout import Layout

__all__ = ["CostObjective", "as_cost_value", "describe_value", "perturbation_label", "require_deterministic"]


def perturbation_label(layout: Layout, coordinate: int | None, sign: int) -> str:
    """``'W2[3, 7] + eps'``, or ``'the unperturbed parameters'``."""
    if coordinate is None:
        return "the unperturbed parameters"
    return f"{layout.describe(coordinate)} {'+' if sign > 0 else '-'} eps"


def describe_value(value) -> str:
    """A short description of what user code returned, for messages: arrays by shape, never whole."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(repr, list(value)[:8]))}{', ...' if len(value) > 8 else ''}"
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} items ({kinds})"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def as_cost_value(value, where: str) -> float:
    """Return ``value`` as a Python float, or raise :class:`CostError` naming ``where``."""
    if isinstance(value, tuple) and len(value) == 2:
        raise CostError(f"the cost returned {describe_value(value)} at {where}; it must return a float. A cost "
                        "that returns (loss, grads), as CS231n's model.loss does, is read as such when `grads` "
                        "is not given: fc.check(loss_fn, params)")
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise CostError(
                f"the cost returned an array of shape {value.shape} at {where}; "
                "it must return one scalar (sum or average the losses)"
            )
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise CostError(f"the cost returned {describe_value(value)} at {where}; it must return a float")
    if isinstance(value, np.floating) and value.dtype != np.float64:
        raise DtypeError(
            f"the cost returned {value.dtype} at {where}; compute it in float64 so that "
            "central differences are not drowned in rounding"
        )
    value = float(value)
    if not np.isfinite(value):
        raise CostError(f"the cost returned {value} at {where}; it must be finite")
    return value


class CostObjective:
    """A user's ``cost(params)`` seen as a function of flat theta.

    The cost receives read-only views of theta in the caller's structure, so an
    in-place write is caught at once as a :class:`MutationError`.
    """

    has_kinks = False

    def __init__(self, cost, layout: Layout, returns_grads: bool = False):
        if not callable(cost):
            raise CostError(f"`cost` is a {type(cost).__name__}, not a callable cost(params) -> float")
        self.cost = cost
        self.layout = layout
        self.returns_grads = returns_grads  # the cost returns (loss, grads): only the loss is used

    def evaluate(self, theta: np.ndarray, coordinate: int | None = None, sign: int = 0,
                 where: str | None = None) -> float:
        """J at ``theta``; errors name ``where``, or the coordinate and sign being evaluated."""
        params = self.layout.unflatten(theta, readonly=True)
        if where is None:
            where = perturbation_label(self.layout, coordinate, sign)
        try:
            value = self.cost(params)
        except ValueError as exc:
            if "read-only" in str(exc):
                raise MutationError(
                    f"the cost tried to modify the parameters it was given at {where}; "
                    "it must leave them unchanged (work on a copy)"
                ) from exc
            raise CostError(f"the cost raised {type(exc).__name__} at {where}: {exc}") from exc
        except Exception as exc:
            raise CostError(f"the cost raised {type(exc).__name__} at {where}: {exc}") from exc
        except SystemExit as exc:  # user code ending the run is a failure of the check, never a pass
            raise CostError(f"the cost called sys.exit({exc.code!r}) at {where}; a cost must return its value") \
                from exc
        if self.returns_grads and isinstance(value, tuple) and len(value) == 2:
            value = value[0]
        return as_cost_value(value, where)

    def __call__(self, theta: np.ndarray, coordinate: int, sign: int) -> tuple[float, bool]:
        return self.evaluate(theta, coordinate, sign), False

    def base(self, theta: np.ndarray) -> float:
        """J(theta), evaluated twice: a cost that changes is refused."""
        snapshot = theta.copy()
        first = self.evaluate(theta)
        second = self.evaluate(theta)
        if not np.array_equal(theta, snapshot):
            raise MutationError("the cost modified the parameters it was given; it must work on a copy")
        require_deterministic(first, second)
        return first


def require_deterministic(first: float, second: float) -> None:
    if abs(first - second) > 4 * np.spacing(max(abs(first), abs(second))):
        raise NondeterministicCostError(
            f"the cost returned {first!r} and then {second!r} at the same parameters. "
            "Gradient checking needs a deterministic cost: switch off dropout "
            "(keep_prob = 1) and any random sampling or shuffling inside the cost"
        )
