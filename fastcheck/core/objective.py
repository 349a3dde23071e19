"""Costs as the engines see them: theta in, a validated float64 cost out.

An objective wraps the user's ``cost(params)`` (or the built-in MLP's cost) so that
every evaluation is validated the same way and every failure names the coordinate
being evaluated. :class:`CostObjective` is a module-level class, so it pickles for
process pools.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import (
    CostError,
    CostTimeoutError,
    DtypeError,
    MutationError,
    NondeterministicCostError,
    a_type,
    ends_run,
    message_of,
)
from .deadline import time_limit
from .layout import Layout

__all__ = ["CostObjective", "as_cost_value", "describe_value", "perturbation_label", "item_label", "span",
           "require_deterministic", "recheck_sample", "require_unchanged", "RECHECK_MIN", "RECHECK_FRACTION"]

#: Every chunk of perturbed evaluations evaluates a seeded sample of them again, so that a cost
#: that changes only now and then is refused instead of failing a correct gradient: at least
#: this many (all of a smaller chunk) ...
RECHECK_MIN = 4
#: ... and this fraction of the chunk's items (one evaluation in 128 more).
RECHECK_FRACTION = 1 / 64


def perturbation_label(layout: Layout, coordinate: int | None, sign: int) -> str:
    """``'W2[3, 7] + eps'``, or ``'the unperturbed parameters'``."""
    if coordinate is None:
        return "the unperturbed parameters"
    return f"{layout.describe(coordinate)} {'+' if sign > 0 else '-'} eps"


def item_label(layout: Layout, item, sign: int) -> str:
    """``'W1[2, 3] + eps'`` for a coordinate, ``'direction 3 of W1 (+eps)'`` for a direction."""
    if isinstance(item, (int, np.integer)):
        return perturbation_label(layout, int(item), sign)
    return f"direction {item.number} of {item.group} ({'+' if sign > 0 else '-'}eps)"


def span(layout: Layout, items) -> str:
    """``'coordinates W1[0, 0]..W1[0, 6]'`` or ``'directions 0 of W1..3 of b1'``: the first and last item."""
    if isinstance(items, np.ndarray):
        first, last = layout.describe(int(items[0])), layout.describe(int(items[-1]))
        noun = "coordinates"
    else:
        first, last = (f"{d.number} of {d.group}" for d in (items[0], items[-1]))
        noun = "directions"
    return f"{noun} {first}" if len(items) == 1 else f"{noun} {first}..{last}"


def describe_value(value) -> str:
    """A short description of what user code returned, for messages: arrays by shape, never whole."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(repr, list(value)[:8]))}{', ...' if len(value) > 8 else ''}"
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} items ({kinds})"
    text = repr(value.item() if isinstance(value, np.generic) else value)  # 2.5, not np.float64(2.5)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def as_cost_value(value, where: str) -> float:
    """Return ``value`` as a Python float, or raise :class:`CostError` naming ``where``."""
    if isinstance(value, tuple) and len(value) == 2:
        raise CostError(f"the cost returned {describe_value(value)} at {where}; it must return a float. A cost "
                        "that returns (loss, grads), as CS231n's model.loss does, is read as such when `grads` "
                        "is not given: fc.check(loss_fn, params), or a factory returning (cost, params) on the "
                        "command line")
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

    The cost receives read-only views of theta in the caller's structure, and theta
    itself is read-only while the cost runs (a view's ``.base`` is theta), so an in-place
    write is caught at once as a :class:`MutationError`. A cost can still get around
    that (``flags.writeable = True`` on the base, ctypes): the engines compare the
    parameters with theta after each chunk (:func:`require_unchanged`).

    A cost that keeps its argument (``model.params = params``, CS231n's pattern) keeps
    the views of its last call: :meth:`release`, at the end of a check, makes those
    writable again, so that the model trains on afterwards. They are fastcheck's copies
    at theta (the caller's own arrays are never handed to the cost).
    """

    has_kinks = False

    def __init__(self, cost, layout: Layout, returns_grads: bool = False, timeout: float | None = None):
        if not callable(cost):
            raise CostError(f"`cost` is {a_type(cost)}, not a callable cost(params) -> float")
        self.cost = cost
        self.layout = layout
        self.returns_grads = returns_grads  # the cost returns (loss, grads): only the loss is used
        self.timeout = timeout  # seconds an evaluation may take (None: no limit; see fastcheck.core.deadline)
        self._handed = None  # the read-only views of the last call, which the cost may have kept

    def __getstate__(self) -> dict:  # workers get the cost, not the views this process handed out
        return {**self.__dict__, "_handed": None}

    def release(self) -> None:
        """Make the arrays the cost last received writable again (the check is over: nothing to catch)."""
        handed, self._handed = self._handed, None
        if handed is None:
            return
        arrays = [handed] if isinstance(handed, np.ndarray) else list(
            handed.values() if isinstance(handed, dict) else handed)
        for array in arrays:
            try:
                array.flags.writeable = True
            except ValueError:  # its base is read-only (the cost made it so): leave it
                pass

    def evaluate(self, theta: np.ndarray, coordinate: int | None = None, sign: int = 0,
                 where: str | None = None) -> float:
        """J at ``theta``; errors name ``where``, or the coordinate and sign being evaluated."""
        params = self._handed = self.layout.unflatten(theta, readonly=True)
        if where is None:
            where = perturbation_label(self.layout, coordinate, sign)
        writeable = theta.flags.writeable
        theta.flags.writeable = False  # else `params[...].base` is a writable way into theta
        try:
            if self.timeout is None:
                value = self.cost(params)
            else:
                with time_limit(self.timeout, f"at {where}"):
                    value = self.cost(params)
        except CostTimeoutError:
            raise
        except ValueError as exc:
            if "read-only" in str(exc):
                raise MutationError(
                    f"the cost tried to modify the parameters it was given at {where}; "
                    "it must leave them unchanged (work on a copy)"
                ) from exc
            raise CostError(f"the cost raised {type(exc).__name__} at {where}{message_of(exc)}") from exc
        except Exception as exc:
            raise CostError(f"the cost raised {type(exc).__name__} at {where}{message_of(exc)}") from exc
        except BaseException as exc:  # user code ending the run is a failure of the check, never a pass
            if not ends_run(exc):
                raise
            raise CostError(_ended_by(exc, where)) from exc
        finally:
            theta.flags.writeable = writeable
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


def _ended_by(exc: BaseException, where: str) -> str:
    if isinstance(exc, SystemExit):
        return f"the cost called sys.exit({exc.code!r}) at {where}; a cost must return its value"
    return (f"the cost raised {type(exc).__name__} at {where}{message_of(exc)}; a BaseException that is not an "
            "Exception ends the run: a cost must return its value (or raise an Exception)")


def require_deterministic(first: float, second: float, where: str | None = None) -> None:
    """Raise :class:`NondeterministicCostError` unless two evaluations at the same point agree.

    They may differ by 4 units in the last place: that moves a central difference by less
    than the rounding of J itself, which the check tolerates anyway (``|J| 2^-52 / eps``).
    ``where``: the perturbed point evaluated again (default: the unperturbed parameters).
    """
    if abs(first - second) > 4 * np.spacing(max(abs(first), abs(second))):
        first, second = float(first), float(second)
        seen = (f"{first!r} and then {second!r} at the same parameters" if where is None
                else f"{first!r} at {where} and then {second!r} when evaluated there again")
        raise NondeterministicCostError(
            f"the cost returned {seen}. Gradient checking needs a deterministic cost: switch off dropout "
            "(keep_prob = 1) and any random sampling, shuffling or caching that changes its value"
        )


def recheck_sample(k: int, key) -> list[tuple[int, int]]:
    """``(position, sign)`` of the perturbed evaluations of a chunk of ``k`` items to evaluate again.

    At least :data:`RECHECK_MIN` (all of a smaller chunk), and :data:`RECHECK_FRACTION`
    of the chunk; seeded by ``key`` (ints naming the chunk, e.g. its first coordinate),
    so the same chunk re-evaluates the same points.
    """
    n = min(k, max(RECHECK_MIN, math.ceil(RECHECK_FRACTION * k)))
    rng = np.random.default_rng([20_26, *np.atleast_1d(key).tolist()])
    positions = np.sort(rng.choice(k, size=n, replace=False))
    return [(int(p), int(s)) for p, s in zip(positions, rng.choice([1, -1], size=n))]


def require_unchanged(work: np.ndarray, theta: np.ndarray, layout: Layout, where: str) -> None:
    """Raise :class:`MutationError` if the cost wrote into ``work``, which should hold ``theta`` again.

    Every entry is compared (exactly: a checksum such as a sum misses a write that keeps
    it, e.g. entries swapped). ``where``: the evaluations since ``work`` last held theta.
    """
    if np.array_equal(work, theta):
        return
    changed = np.flatnonzero(work != theta)
    j = int(changed[0])
    more = f" (and {changed.size - 1} other entries)" if changed.size > 1 else ""
    raise MutationError(
        f"the cost modified the parameters it was given while evaluating {where}: {layout.describe(j)} became "
        f"{float(work[j])!r} instead of {float(theta[j])!r}{more}. It must leave them unchanged (work on a copy); "
        "the arrays it gets are read-only, and so is their `.base`, but setting `flags.writeable` gets around that"
    )
