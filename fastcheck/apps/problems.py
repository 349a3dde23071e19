"""User problems named ``MODULE:FUNCTION``, as the CLI and nightly suites give them."""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
import traceback
from collections.abc import Mapping

from ..core.objective import describe_value
from ..errors import FastcheckError, InputError, a_type, message_of, user_failure
from ..pipeline.factories import FROM_COST

__all__ = ["import_function", "call_factory", "cost_problem", "factory_tuple", "parse_arguments", "user_tracebacks",
           "COST_PROBLEM_FORMS"]

#: what a factory of a cost problem returns, for ``fastcheck check`` and a nightly suite alike
COST_PROBLEM_FORMS = ("a tuple (cost, params, grads), (cost, params, grads, batch_cost) or (cost, params) for a cost "
                      "that returns (loss, grads), or a dict with the keys cost, params and optionally grads, "
                      "batch_cost")


def import_function(spec: str):
    """Import ``MODULE:FUNCTION`` and return the function; :class:`InputError` says what failed.

    The current directory is searched too, as ``python -m`` does, but after the installed
    packages: a file there named like a module fastcheck uses (``html.py``, ``joblib.py``)
    cannot shadow it. Whatever the module's import raises or exits with, SyntaxError and
    ``sys.exit`` included, is reported as an error of that module.
    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise InputError(f"{spec!r} must look like MODULE:FUNCTION, e.g. mypkg.problems:small_net")
    if "" not in sys.path and "." not in sys.path:
        sys.path.append("")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"cannot import module {module_name!r}: {exc}") from exc
    except SyntaxError as exc:
        raise InputError(f"cannot import module {module_name!r}: a SyntaxError in {exc.filename}, line "
                         f"{exc.lineno}: {exc.msg}") from exc
    except (Exception, SystemExit) as exc:  # the user's module failed or exited while importing
        raise InputError(f"cannot import module {module_name!r}: importing it raised "
                         f"{type(exc).__name__}: {exc}") from exc
    if not hasattr(module, func_name):
        raise InputError(f"module {module_name!r} has no function {func_name!r}")
    func = getattr(module, func_name)
    if not callable(func):
        raise InputError(f"{module_name}.{func_name} is {a_type(func)}, not a function")
    return func


def call_factory(spec: str, func, kwargs: dict | None = None, *, show_traceback: bool = False,
                 hint: str | None = "--traceback shows where"):
    """``func(**kwargs)``; what it raises (or exits with) becomes an :class:`InputError` naming ``spec``.

    A factory calling ``sys.exit`` (whatever its code) is a factory that failed: it never
    ends the caller's run, and never as a success. Without ``show_traceback`` (under
    :func:`user_tracebacks`, which prints the factory's own traceback), ``hint`` (how to
    see it) ends the message.
    """
    try:
        return func(**(kwargs or {}))
    except BaseException as exc:  # an Exception, sys.exit or a BaseException of the user's own: never Ctrl-C
        if not user_failure(exc):
            raise
        what = "exited" if isinstance(exc, SystemExit) else "raised"
        tail = f" ({hint})" if hint and not show_traceback else ""
        raise InputError(f"{spec} {what} {type(exc).__name__}{message_of(exc)}{tail}") from exc


def parse_arguments(pairs) -> dict:
    """``["m=64", "name=x"]`` -> ``{"m": 64, "name": "x"}``: Python literals, else strings."""
    out = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"--arg {pair!r} must look like KEY=VALUE, e.g. --arg m=64")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def cost_problem(spec: str, result) -> tuple:
    """``(cost, params, grads, batch_cost)`` from what the factory ``spec`` returned (:data:`COST_PROBLEM_FORMS`).

    ``grads`` is ``FROM_COST`` when omitted (the cost returns ``(loss, grads)``), ``batch_cost``
    None when omitted; anything else is an :class:`InputError` naming the forms.
    """
    if isinstance(result, Mapping):
        missing = {"cost", "params"} - set(result)
        unknown = set(result) - {"cost", "params", "grads", "batch_cost"}
        if missing or unknown:
            what = ("without " + ", ".join(sorted(missing)) if missing
                    else "with unknown keys " + ", ".join(sorted(map(str, unknown))))
            raise InputError(f"{spec} returned a dict {what}; it must return {COST_PROBLEM_FORMS}")
        result = (result["cost"], result["params"], result.get("grads", FROM_COST), result.get("batch_cost"))
    cost, params, *rest = factory_tuple(spec, result, (2, 3, 4), COST_PROBLEM_FORMS)
    return (cost, params, *rest, *(FROM_COST, None)[len(rest):])


def factory_tuple(spec: str, result, sizes: tuple[int, ...], expected: str) -> tuple:
    """``result``, what the factory ``spec`` returned, if it is a tuple of one of ``sizes`` items, a callable
    first; else an :class:`InputError` saying it must return ``expected``."""
    if not (isinstance(result, tuple) and len(result) in sizes):
        got = f"{len(result)} items" if isinstance(result, (tuple, list)) else describe_value(result)
        raise InputError(f"{spec} must return {expected}; got {got}")
    if not callable(result[0]):
        raise InputError(f"{spec} must return {expected}; its first item is {describe_value(result[0])}, "
                         "not a function")
    return result


@contextlib.contextmanager
def user_tracebacks(show: bool):
    """With ``show`` (``--traceback``), a fastcheck error raised inside that some user code caused (a factory,
    a cost, a backprop: its ``__cause__``) has that code's traceback printed to stderr first; the error itself
    stays the one line the command prints."""
    try:
        yield
    except FastcheckError as exc:
        if show and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        raise
