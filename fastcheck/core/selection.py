"""Which coordinates a check looks at: all of them, or a seeded stratified subset.

A subset is stratified by parameter group: every group gets at least
``min_per_group`` entries (all of a smaller group) and the rest in proportion to its
size, so a small group such as ``b2`` is never left out. Sampling is without
replacement, so a bug that corrupts a fraction f of a group's entries escapes k
samples of that group with probability at most (1 - f)^k.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .layout import Layout

__all__ = ["stratified_subset", "subset_sizes", "escape_probability", "DEFAULT_MIN_PER_GROUP"]

#: Entries every group gets in a subset, at the least (all of a smaller group).
DEFAULT_MIN_PER_GROUP = 32


def subset_sizes(layout: Layout, *, fraction: float | None = None, n_samples: int | None = None,
                 min_per_group: int = DEFAULT_MIN_PER_GROUP) -> list[int]:
    """How many entries of each group a subset checks.

    Exactly one of ``fraction`` (in (0, 1]) and ``n_samples`` (>= 1) is given. Each
    group gets ``max(min(min_per_group, size), round(fraction * size))`` entries, capped
    at its size; ``n_samples`` is turned into ``fraction = n_samples / n_params``.
    """
    if (fraction is None) == (n_samples is None):
        raise InputError("mode='subset' needs exactly one of `fraction` (in (0, 1]) or `n_samples`")
    if n_samples is not None:
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise InputError(f"`n_samples`={n_samples!r} must be a positive integer")
        fraction = min(1.0, n_samples / layout.n_params)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise InputError(f"`fraction`={fraction!r} must be in (0, 1], e.g. 0.01 for 1% of the coordinates")
    if not isinstance(min_per_group, (int, np.integer)) or min_per_group < 1:
        raise InputError(f"`min_per_group`={min_per_group!r} must be a positive integer")
    return [min(g.size, max(min(min_per_group, g.size), round(fraction * g.size))) for g in layout.groups]


def stratified_subset(layout: Layout, *, fraction: float | None = None, n_samples: int | None = None,
                      min_per_group: int = DEFAULT_MIN_PER_GROUP, seed: int = 0) -> np.ndarray:
    """Sorted flat indices of a seeded, stratified random subset of theta."""
    rng = np.random.default_rng(seed)
    sizes = subset_sizes(layout, fraction=fraction, n_samples=n_samples, min_per_group=min_per_group)
    parts = [g.start + np.sort(rng.choice(g.size, size=k, replace=False)) for g, k in zip(layout.groups, sizes)]
    return np.concatenate(parts).astype(np.int64)


def escape_probability(checked: int, size: int, corrupted_fraction: float) -> float:
    """Upper bound on the chance that ``checked`` samples (without replacement) of a
    group of ``size`` entries all miss a bug corrupting ``corrupted_fraction`` of them.

    The exact chance is hypergeometric; ``(1 - f)^k`` bounds it, and a full check
    (``checked == size``) misses nothing.
    """
    if checked >= size:
        return 0.0
    return math.pow(1.0 - corrupted_fraction, checked)
