"""User problems named ``MODULE:FUNCTION``, as the CLI and nightly suites give them."""

from __future__ import annotations

import importlib
import sys

from ..errors import InputError

__all__ = ["import_function"]


def import_function(spec: str):
    """Import ``MODULE:FUNCTION`` and return the function; :class:`InputError` says what failed.

    The current directory is searched too, as ``python -m`` does.
    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise InputError(f"{spec!r} must look like MODULE:FUNCTION, e.g. mypkg.problems:small_net")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import module {module_name!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputError(f"module {module_name!r} has no function {func_name!r}")
    return func
