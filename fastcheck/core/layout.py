"""Parameter layout: an ordered dict of named float64 arrays <-> one flat vector theta.

The method reshapes W1, b1, ..., WL, bL into one big vector theta and dW1, db1, ... into
d-theta. :class:`Layout` remembers, for every group, its name, shape and slice of theta,
so a coordinate of theta can always be named back (``W2[3, 7]``).
"""

from __future__ import annotations

import bisect
import contextlib
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DtypeError, InputError, a_type, message_of, user_failure
from .gradkeys import match_grad_keys

__all__ = ["Group", "Layout", "CastWarning", "call_grads"]


class CastWarning(UserWarning):
    """An array was up-cast to float64 because the caller asked for ``cast=True``."""


@dataclass(frozen=True)
class Group:
    """One named parameter array inside theta.

    Attributes
    ----------
    name : str
        The parameter's name (``"W1"``), or ``"theta"`` for a flat input.
    shape : tuple of int
        The array's shape.
    start, stop : int
        Its slice ``theta[start:stop]`` (C order inside the array).
    """

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


class Layout:
    """The ordered groups of theta, built from ``params`` by :meth:`from_params`.

    Parameters
    ----------
    groups : sequence of Group
        Consecutive groups covering ``theta[0:n_params]``.
    flat : bool
        True when the caller gave a flat 1-D array rather than a dict.
    sequence : type, optional
        ``list`` or ``tuple`` when the caller gave a sequence of arrays: the cost then
        receives one of that type.
    """

    def __init__(self, groups, flat: bool = False, sequence: type | None = None):
        self.groups = tuple(groups)
        self.flat = flat
        self.sequence = sequence  # list or tuple when params came as one
        self._starts = [g.start for g in self.groups]
        self.n_params = self.groups[-1].stop if self.groups else 0

    def __repr__(self) -> str:
        inner = ", ".join(f"{g.name}{g.shape}" for g in self.groups)
        return f"Layout({inner})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and (self.groups, self.flat, self.sequence) == (
            other.groups, other.flat, other.sequence)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise InputError(f"no parameter group named {name!r}; groups are {', '.join(self.names)}")

    # ------------------------------------------------------------------ building
    @classmethod
    def from_params(cls, params, *, cast: bool = False) -> tuple[Layout, np.ndarray]:
        """Validate ``params`` and return its layout and a fresh flat copy theta.

        Parameters
        ----------
        params : dict of str -> ndarray, list or tuple of ndarray, or ndarray of shape (n,) or (n, 1)
            float64 arrays; the dict (or sequence) order is theta's order. A sequence's
            arrays are named ``params[0]``, ``params[1]``, ... An (n, 1) column (the
            course's ``dictionary_to_vector``) is theta as it is: the cost receives a column.
        cast : bool
            Up-cast real non-float64 arrays to float64 with one :class:`CastWarning`
            instead of raising :class:`DtypeError`.

        Returns
        -------
        layout : Layout
        theta : ndarray of shape (n_params,), float64
        """
        if isinstance(params, np.ndarray):
            if not _is_vector(params.shape):
                raise InputError(
                    f"`params` is an array of shape {params.shape}; pass a flat 1-D array (or an (n, 1) "
                    "column) or a dict name -> array (e.g. {'W1': ..., 'b1': ...})"
                )
            with _casts(cast) as up:
                arr = up(params, "params")
            _require_finite(arr, "params")
            if arr.size == 0:
                raise InputError("`params` is empty: there is nothing to check")
            layout = cls([Group("theta", arr.shape, 0, arr.size)], flat=True)
            return layout, arr.astype(np.float64, copy=True).ravel()
        sequence = type(params) if isinstance(params, (list, tuple)) else None
        if sequence is not None:
            params = {f"params[{i}]": value for i, value in enumerate(params)}
        if not isinstance(params, Mapping):
            raise InputError(
                f"`params` is {a_type(params)}; pass a dict name -> float64 ndarray, "
                "a list of float64 ndarrays or a flat 1-D float64 ndarray"
            )
        if len(params) == 0:
            kind = "dict" if sequence is None else sequence.__name__
            raise InputError(f"`params` is an empty {kind}: there is nothing to check")
        groups, arrays, start = [], [], 0
        with _casts(cast) as up:
            for name, value in params.items():
                if not isinstance(name, str):
                    raise InputError(f"`params` has a key {name!r} of type {type(name).__name__}; keys must be str")
                where = name if sequence is not None else f"params[{name!r}]"
                arr = up(value, where)
                _require_finite(arr, where)
                if arr.size == 0:
                    raise InputError(f"`{where}` is empty (shape {arr.shape}): remove it or give it entries")
                groups.append(Group(name, tuple(arr.shape), start, start + arr.size))
                arrays.append(arr.ravel(order="C"))
                start += arr.size
        return cls(groups, sequence=sequence), np.concatenate(arrays).astype(np.float64, copy=False)

    def flatten_grads(self, grads, *, cast: bool = False) -> np.ndarray:
        """Validate ``grads`` against this layout and return them as a flat float64 vector.

        ``grads`` has the structure of ``params``; a dict may name its entries as the
        parameters (``"W1"``) or with the course's ``"d"`` prefix (``"dW1"``), and may
        hold other gradients too (see :meth:`grad_keys`).
        """
        if self.flat:
            if isinstance(grads, Mapping) or not isinstance(grads, np.ndarray):
                raise InputError(
                    f"`params` is a flat array but `grads` is {a_type(grads)}; "
                    "pass grads as a flat float64 array of the same length"
                )
            with _casts(cast) as up:
                arr = up(grads, "grads")
            if arr.shape != self.groups[0].shape:
                raise InputError(
                    f"`grads` has shape {arr.shape} but `params` has shape {self.groups[0].shape}"
                )
            _require_finite(arr, "grads")
            return arr.astype(np.float64, copy=True).ravel()
        if self.sequence is not None:
            return self._flatten_sequence(grads, cast)
        if not isinstance(grads, Mapping):
            raise InputError(
                f"`grads` is {a_type(grads)}; pass a dict with the same names as "
                f"`params` ({', '.join(self.names)}) or their 'd' forms (d{self.names[0]}, ...)"
            )
        chosen, _ = self.grad_keys(grads)
        return self._flatten_groups([grads[chosen[g.name]] for g in self.groups],
                                    [f"grads[{chosen[g.name]!r}]" for g in self.groups],
                                    [f"params[{g.name!r}]" for g in self.groups], cast)

    def _flatten_sequence(self, grads, cast: bool) -> np.ndarray:
        """The gradient of a list (or tuple) of parameters: a list or tuple in the same order."""
        kind = self.sequence.__name__
        if not isinstance(grads, (list, tuple)):
            raise InputError(f"`params` is a {kind} of {len(self.groups)} arrays but `grads` is "
                             f"{'a dict' if isinstance(grads, Mapping) else a_type(grads)}; "
                             f"pass grads as a {kind} of arrays in the order of `params`")
        if len(grads) != len(self.groups):
            raise InputError(f"`grads` has {len(grads)} arrays but `params` has {len(self.groups)}")
        return self._flatten_groups(list(grads), [f"grads[{i}]" for i in range(len(grads))],
                                    [g.name for g in self.groups], cast)

    def _flatten_groups(self, values, wheres, params, cast: bool) -> np.ndarray:
        """Each group's gradient validated (``wheres``: how the messages name it, ``params``: its parameter)."""
        parts = []
        with _casts(cast) as up:
            for g, value, where, param in zip(self.groups, values, wheres, params):
                arr = up(_zero_d(value) if g.shape == () else value, where)
                if arr.shape != g.shape:
                    raise InputError(f"`{where}` has shape {arr.shape} but `{param}` has shape {g.shape}")
                _require_finite(arr, where)
                parts.append(arr.ravel(order="C"))
        return np.concatenate(parts).astype(np.float64, copy=True)

    def grad_keys(self, grads: Mapping) -> tuple[dict[str, str], list[str]]:
        """Which key of a gradients dict holds each group's gradient, and the keys left aside
        (:func:`fastcheck.core.gradkeys.match_grad_keys`)."""
        return match_grad_keys(self.names, grads)

    # ------------------------------------------------------------------ views
    def unflatten(self, theta: np.ndarray, *, readonly: bool = False):
        """Views of ``theta`` in the caller's structure (a dict, or theta itself if flat)."""
        if self.flat:
            out = theta.view().reshape(self.groups[0].shape)  # (n,) or the course's (n, 1) column
            if readonly:
                out.flags.writeable = False
            return out
        out = {}
        for g in self.groups:
            view = theta[g.start : g.stop].reshape(g.shape)
            if readonly:
                view.flags.writeable = False
            out[g.name] = view
        return out if self.sequence is None else self.sequence(out.values())

    def locate(self, flat_index: int) -> tuple[Group, tuple[int, ...]]:
        """The group holding ``theta[flat_index]`` and the index into that group's array."""
        if not 0 <= flat_index < self.n_params:
            raise IndexError(f"coordinate {flat_index} is outside theta of length {self.n_params}")
        g = self.groups[bisect.bisect_right(self._starts, flat_index) - 1]
        index = np.unravel_index(flat_index - g.start, g.shape) if g.shape else ()
        return g, tuple(int(i) for i in index)

    def describe(self, flat_index: int) -> str:
        """``'W2[3, 7]'`` for a coordinate of theta."""
        g, index = self.locate(flat_index)
        return f"{g.name}[{', '.join(map(str, index))}]"

    def group_ids(self, flat_indices: np.ndarray) -> np.ndarray:
        """For each coordinate, the position of its group in :attr:`groups`."""
        return np.searchsorted(np.asarray(self._starts), flat_indices, side="right") - 1

    # ------------------------------------------------------------------ helpers
    def resolve_grads(self, grads, params, *, cast: bool = False) -> np.ndarray:
        """Like :meth:`flatten_grads`, calling ``grads(params)`` first when it is callable."""
        return self.flatten_grads(call_grads(grads, params), cast=cast)


def call_grads(grads, params):
    """``grads(params)`` when ``grads`` is callable (a user's backprop), else ``grads`` itself."""
    if isinstance(grads, Callable) and not isinstance(grads, (Mapping, np.ndarray)):
        try:
            return grads(params)
        except BaseException as exc:  # report the user's failure with context
            if isinstance(exc, SystemExit) or not user_failure(exc):  # sys.exit ends the run: the caller says so
                raise
            raise InputError(f"`grads` is callable and raised {type(exc).__name__}{message_of(exc)}") from exc
    return grads


@contextlib.contextmanager
def _casts(cast: bool):
    """Yield ``up(value, where)``, the float64 array of ``value``; with ``cast``, one warning for all up-casts."""
    done = []

    def up(value, where: str) -> np.ndarray:
        if isinstance(value, Mapping):
            raise InputError(f"`{where}` is a dict: nested dicts are not supported; flatten them into one dict "
                             "of arrays (e.g. {'l1.W': ..., 'l1.b': ...}) and rebuild the nesting inside the cost")
        if not isinstance(value, np.ndarray):
            raise DtypeError(
                f"`{where}` is {a_type(value)}, not a numpy array; "
                "convert it with np.asarray(value, dtype=np.float64)"
            )
        if value.dtype == np.float64:
            return value
        integer = np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_
        real = integer or np.issubdtype(value.dtype, np.floating)
        if cast and real:
            done.append(f"{where} {value.dtype} to float64")
            return value.astype(np.float64)
        why = ("an integer array cannot take a step of eps" if integer
               else f"central differences with eps=1e-7 drown in {value.dtype} rounding" if real
               else "the check works on real float64 values")
        hint = ", or pass cast=True (on the command line: --cast) to up-cast with a warning" if real else ""
        raise DtypeError(f"`{where}` has dtype {value.dtype}; gradient checks need float64 ({why}): "
                         f"convert it with .astype(np.float64){hint}")

    yield up
    if done:
        warnings.warn(f"up-cast (cast=True): {', '.join(done)}", CastWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """``warnings.warn``'s stacklevel of the line that called into fastcheck (its caller's caller counts as 1).

    The number of fastcheck frames between the user and a warning depends on the entry point
    (``fc.check``, ``fc.plan``, the CLI, a ``with`` block's exit), so it is counted, not written down.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frames = []
    frame = sys._getframe(1)  # the frame that calls warnings.warn: stacklevel 1
    while frame is not None:
        frames.append(frame.f_code.co_filename.startswith(package))
        frame = frame.f_back
    outermost = max((i for i, ours in enumerate(frames) if ours), default=-1)
    return outermost + 2  # the frame just outside the outermost fastcheck frame


def _is_vector(shape: tuple[int, ...]) -> bool:
    """A flat theta: 1-D, or the (n, 1) column the course's ``dictionary_to_vector`` returns."""
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _zero_d(value):
    """A scalar gradient of a 0-d parameter (``np.sum(...)`` returns an ``np.float64``) as a 0-d array."""
    if isinstance(value, np.generic):
        return np.asarray(value)  # its dtype kept: an np.float32 is refused as such
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return np.asarray(value, dtype=np.float64)
    return value


def _require_finite(arr: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"`{where}` has a non-finite value {arr[index]} at index {index} "
            f"({int(bad.sum())} non-finite in all); fix the values before checking"
        )
