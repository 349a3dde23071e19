"""The rules of the settings a check runs with, each written once.

:class:`fastcheck.pipeline.options.CheckOptions` and the pipeline's engine factories
validate a check's settings with these; an engine that can be called directly (the
black-box engine) asks the same functions of its own arguments. ``where`` names the
setting as the caller does (```n_jobs``` in Python, ``--jobs`` on the command line).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError

__all__ = ["is_int", "is_number", "type_name", "expect", "require_n_jobs", "require_count", "require_max_memory",
           "require_timeout", "require_n_threads", "available_threads"]


def is_int(value) -> bool:
    """An integer (Python or numpy), not a boolean."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number (Python or numpy), not a boolean."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table", type(None): "no value"}.get(type(value), type(value).__name__)


def expect(ok: bool, where: str, expected: str, value) -> None:
    """Raise ``InputError("where: expected ..., got value (its type)")`` unless ``ok``."""
    if not ok:
        raise InputError(f"{where}: expected {expected}, got {value!r} ({type_name(value)})")


def require_n_jobs(value, where: str = "`n_jobs`") -> int:
    """Workers: a non-zero integer (1: in this process, -1: every core)."""
    expect(is_int(value) and value != 0, where, "a non-zero integer (1: in this process, -1: all cores)", value)
    return int(value)


def require_count(value, where: str, what: str) -> int:
    """A positive integer, e.g. ``what="a positive number of coordinates per task"``."""
    expect(is_int(value) and value >= 1, where, what, value)
    return int(value)


def require_max_memory(value, where: str = "`max_memory`") -> int:
    """Bytes of stacked work: a positive integer (``2**28``, not ``"256MB"``)."""
    expect(is_int(value) and value > 0, where, "a positive number of bytes, e.g. 2**28 for 256 MiB", value)
    return int(value)


def require_timeout(value, where: str = "`timeout`") -> float | None:
    """Seconds one evaluation of the cost may take: None (no limit) or a positive number."""
    if value is None:
        return None
    expect(is_number(value) and value > 0, where, "a positive number of seconds per evaluation, or None", value)
    return float(value)


def available_threads() -> int:
    """The CPUs this process may run on: numba's limit on its threads (unless NUMBA_NUM_THREADS says less)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, int(os.environ.get("NUMBA_NUM_THREADS", "0") or 0) or count)


def require_n_threads(value, where: str = "`n_threads`") -> int | None:
    """numba threads of the batched engine: None (numba's own) or an integer in [1, available_threads()]."""
    if value is None:
        return None
    limit = available_threads()
    expect(is_int(value) and 1 <= value <= limit, where,
           f"None or an integer in [1, {limit}] (the threads numba may run here)", value)
    return int(value)
