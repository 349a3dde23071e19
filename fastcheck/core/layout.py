"""Parameter layout: an ordered dict of named float64 arrays <-> one flat vector theta.

The method reshapes W1, b1, ..., WL, bL into one big vector theta and dW1, db1, ... into
d-theta. :class:`Layout` remembers, for every group, its name, shape and slice of theta,
so a coordinate of theta can always be named back (``W2[3, 7]``).
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DtypeError, InputError

__all__ = ["Group", "Layout", "CastWarning"]


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
    """

    def __init__(self, groups, flat: bool = False):
        self.groups = tuple(groups)
        self.flat = flat
        self._starts = [g.start for g in self.groups]
        self.n_params = self.groups[-1].stop if self.groups else 0

    def __repr__(self) -> str:
        inner = ", ".join(f"{g.name}{g.shape}" for g in self.groups)
        return f"Layout({inner})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and (self.groups, self.flat) == (other.groups, other.flat)

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
        params : dict of str -> ndarray, or ndarray of shape (n,)
            float64 arrays; dict order is theta's order.
        cast : bool
            Up-cast real non-float64 arrays to float64 with a :class:`CastWarning`
            instead of raising :class:`DtypeError`.

        Returns
        -------
        layout : Layout
        theta : ndarray of shape (n_params,), float64
        """
        if isinstance(params, np.ndarray):
            if params.ndim != 1:
                raise InputError(
                    f"`params` is an array of shape {params.shape}; pass a flat 1-D array "
                    "or a dict name -> array (e.g. {'W1': ..., 'b1': ...})"
                )
            arr = _as_float64(params, "params", cast)
            _require_finite(arr, "params")
            if arr.size == 0:
                raise InputError("`params` is empty: there is nothing to check")
            layout = cls([Group("theta", arr.shape, 0, arr.size)], flat=True)
            return layout, arr.astype(np.float64, copy=True)
        if not isinstance(params, Mapping):
            raise InputError(
                f"`params` is a {type(params).__name__}; pass a dict name -> float64 ndarray "
                "or a flat 1-D float64 ndarray"
            )
        if len(params) == 0:
            raise InputError("`params` is an empty dict: there is nothing to check")
        groups, arrays, start = [], [], 0
        for name, value in params.items():
            if not isinstance(name, str):
                raise InputError(f"`params` has a key {name!r} of type {type(name).__name__}; keys must be str")
            where = f"params[{name!r}]"
            arr = _as_float64(value, where, cast)
            _require_finite(arr, where)
            if arr.size == 0:
                raise InputError(f"`{where}` is empty (shape {arr.shape}): remove it or give it entries")
            groups.append(Group(name, tuple(arr.shape), start, start + arr.size))
            arrays.append(arr.ravel(order="C"))
            start += arr.size
        return cls(groups), np.concatenate(arrays).astype(np.float64, copy=False)

    def flatten_grads(self, grads, *, cast: bool = False) -> np.ndarray:
        """Validate ``grads`` against this layout and return them as a flat float64 vector.

        A dict may name its entries as the parameters (``"W1"``) or with the course's
        ``"d"`` prefix (``"dW1"``).
        """
        if self.flat:
            if isinstance(grads, Mapping) or not isinstance(grads, np.ndarray):
                raise InputError(
                    f"`params` is a flat array but `grads` is a {type(grads).__name__}; "
                    "pass grads as a flat float64 array of the same length"
                )
            arr = _as_float64(grads, "grads", cast)
            if arr.shape != self.groups[0].shape:
                raise InputError(
                    f"`grads` has shape {arr.shape} but `params` has shape {self.groups[0].shape}"
                )
            _require_finite(arr, "grads")
            return arr.astype(np.float64, copy=True)
        if not isinstance(grads, Mapping):
            raise InputError(
                f"`grads` is a {type(grads).__name__}; pass a dict with the same names as "
                f"`params` ({', '.join(self.names)}) or their 'd' forms (d{self.names[0]}, ...)"
            )
        used, parts = set(), []
        for g in self.groups:
            candidates = [k for k in (g.name, "d" + g.name) if k in grads]
            if not candidates:
                raise InputError(
                    f"`grads` has no entry for params[{g.name!r}] (looked for {g.name!r} and "
                    f"{'d' + g.name!r}); it has {', '.join(map(repr, grads)) or 'nothing'}"
                )
            if len(candidates) == 2:
                raise InputError(
                    f"`grads` has both {g.name!r} and {'d' + g.name!r}: keep only one of them"
                )
            key = candidates[0]
            used.add(key)
            where = f"grads[{key!r}]"
            arr = _as_float64(grads[key], where, cast)
            if arr.shape != g.shape:
                raise InputError(
                    f"`{where}` has shape {arr.shape} but `params[{g.name!r}]` has shape {g.shape}"
                )
            _require_finite(arr, where)
            parts.append(arr.ravel(order="C"))
        extra = [k for k in grads if k not in used]
        if extra:
            raise InputError(
                f"`grads` has {', '.join(map(repr, extra))} which match no parameter; "
                f"parameters are {', '.join(self.names)}"
            )
        return np.concatenate(parts).astype(np.float64, copy=True)

    # ------------------------------------------------------------------ views
    def unflatten(self, theta: np.ndarray, *, readonly: bool = False):
        """Views of ``theta`` in the caller's structure (a dict, or theta itself if flat)."""
        if self.flat:
            out = theta.view()
            if readonly:
                out.flags.writeable = False
            return out
        out = {}
        for g in self.groups:
            view = theta[g.start : g.stop].reshape(g.shape)
            if readonly:
                view.flags.writeable = False
            out[g.name] = view
        return out

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
        if isinstance(grads, Callable) and not isinstance(grads, (Mapping, np.ndarray)):
            try:
                grads = grads(params)
            except Exception as exc:  # report the user's failure with context
                raise InputError(f"`grads` is callable and raised {type(exc).__name__}: {exc}") from exc
        return self.flatten_grads(grads, cast=cast)


def _as_float64(value, where: str, cast: bool) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise DtypeError(
            f"`{where}` is a {type(value).__name__}, not a numpy array; "
            "convert it with np.asarray(value, dtype=np.float64)"
        )
    if value.dtype == np.float64:
        return value
    if cast and (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        warnings.warn(f"`{where}` up-cast from {value.dtype} to float64 (cast=True)", CastWarning, stacklevel=4)
        return value.astype(np.float64)
    hint = "" if np.issubdtype(value.dtype, np.complexfloating) else (
        ", or pass cast=True to up-cast with a warning"
    )
    raise DtypeError(
        f"`{where}` has dtype {value.dtype}; gradient checks need float64 "
        f"(central differences with eps=1e-7 drown in float32 rounding): "
        f"convert it with .astype(np.float64){hint}"
    )


def _require_finite(arr: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"`{where}` has a non-finite value {arr[index]} at index {index} "
            f"({int(bad.sum())} non-finite in all); fix the values before checking"
        )
