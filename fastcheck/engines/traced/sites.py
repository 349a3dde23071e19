"""Where in the user's code a trace ends, and what to write instead: the words of a fallback reason.

A reason that says only "converts a traced value" leaves the user searching their model;
:func:`site` names the line (``layers.py:37``) and the expression being evaluated there
(``x.reshape(x.shape[0], -1).dot(w)``), read from the innermost frame outside numpy and
fastcheck. :func:`plain_array_reason` recognises the one conversion users meet first: a
plain array's ``.dot()`` method with a traced argument (CS231n's ``affine_forward``), which
:mod:`~.plaindot` follows where it can, and names ``np.dot(a, b)`` and ``a @ b`` (which
numpy dispatches) where it cannot.
"""

from __future__ import annotations

import ast
import dis
import linecache
import os
import re
import sys

import numpy as np

__all__ = ["Site", "site", "at", "user_frame", "dot_receiver", "plain_array_reason", "mid_graph_reason", "MAX_DOT_ROWS"]

#: A plain ``.dot()`` is followed through an identity of its argument's rows (:mod:`~.plaindot`): at most
#: this many (128 MiB of identity).
MAX_DOT_ROWS = 4096

_INTERNAL = tuple(os.path.dirname(path) + os.sep for path in (np.__file__, os.path.dirname(os.path.dirname(__file__))))


def user_frame(frame=None):
    """The innermost frame of the user's code (outside numpy and fastcheck) from ``frame`` out, or None."""
    frame = sys._getframe(1) if frame is None else frame
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
    return frame


class Site:
    """A point of the user's code: its code object, instruction and line (rendered only when a reason needs it)."""

    __slots__ = ("code", "lasti", "lineno")

    def __init__(self, frame):
        self.code, self.lasti, self.lineno = frame.f_code, frame.f_lasti, frame.f_lineno

    @property
    def place(self) -> str:
        return f"{os.path.basename(self.code.co_filename)}:{self.lineno}"

    @property
    def expression(self) -> str:
        """The source of the expression being evaluated (Python 3.11+), else the line."""
        positions = getattr(self.code, "co_positions", None)
        if positions is not None and self.lasti >= 0:
            try:
                start, end, col, end_col = list(positions())[self.lasti // 2]
            except (IndexError, ValueError):
                start = None
            if start is not None and start == end and col is not None and end_col is not None:
                raw = linecache.getline(self.code.co_filename, start).encode()
                return raw[col:end_col].decode(errors="replace").strip()
        return linecache.getline(self.code.co_filename, self.lineno).strip()

    @property
    def method(self) -> str | None:
        """The name of the method the instruction calls, as far as the bytecode tells (the nearest one loaded)."""
        loads = [i for i in dis.get_instructions(self.code) if i.offset <= self.lasti
                 and i.opname in ("LOAD_METHOD", "LOAD_ATTR")]
        return loads[-1].argval if loads else None

    @property
    def stores(self) -> bool:
        """Whether the instruction stores into a subscript (``out[i, j] = value``)."""
        return any(i.offset == self.lasti and i.opname == "STORE_SUBSCR" for i in dis.get_instructions(self.code))


def site() -> Site | None:
    """Where the user's code stands (the innermost frame outside numpy and fastcheck), or None."""
    frame = user_frame()
    return None if frame is None else Site(frame)


def at(where: Site | None) -> str:
    """`` at file.py:37 (`expression`)`` for a reason, or nothing when the site is unknown."""
    if where is None:
        return ""
    expression = where.expression
    return f" at {where.place}" + (f" (`{expression}`)" if expression else "")


def _dot_call(expression: str):
    """``(a, b)`` as source when ``expression`` is ``a.dot(b)``, else None."""
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return None
    if (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Attribute) and tree.func.attr == "dot"
            and len(tree.args) == 1 and not tree.keywords):
        return ast.unparse(tree.func.value), ast.unparse(tree.args[0])
    return None


def dot_receiver(frame) -> bool:
    """Whether ``frame`` is calling ``a.dot(b)`` (one positional argument, nothing else), as far as can be read."""
    return getattr(frame.f_code, "co_positions", None) is not None and _dot_call(Site(frame).expression) is not None


def plain_array_reason() -> str:
    """Why a traced float array handed to plain numpy ends the trace, and what to write instead."""
    where = site()
    expression = "" if where is None else where.expression
    dot = _dot_call(expression) if expression else None
    if dot is not None:
        a, b = dot
        return (f"a plain numpy array's .dot() is called with a traced argument{at(where)} that the engine cannot "
                f"follow (ndarray.dot is a method, which numpy does not dispatch; the engine follows it for a "
                f"float64 argument of 1 or 2 dimensions and at most {MAX_DOT_ROWS} rows, on Python 3.11 or later); "
                f"write np.dot({a}, {b}) (the same computation) or {a} @ {b} there")
    if where is not None and not expression and where.method == "dot":
        return (f"a plain numpy array's .dot() is called with a traced argument{at(where)}, in code without a "
                "source file (`python -c`, exec of a string: the engine reads the call in the source to follow "
                "it); write x @ w or np.dot(x, w) there (the same computation)")
    if where is not None and where.stores:
        return mid_graph_reason(where)
    if _CONVERTS.search(expression):
        return (f"the cost converts a traced value to a plain numpy array{at(where)} (np.asarray or np.array); "
                "leave it traced, or copy it with .copy()")
    return (f"the cost converts a traced value to a plain numpy array{at(where)} (np.asarray, np.array, writing it "
            "into a plain array, or a plain array's .dot(): write X @ W or np.dot(X, W) instead of X.dot(W); "
            "copy with .copy() rather than np.array)")


_CONVERTS = re.compile(r"\b(asarray|asanyarray|ascontiguousarray|asfortranarray|array)\(")


def mid_graph_reason(where) -> str:
    """Why a traced number handed to Python before the cost's end ends the trace (``where``: its Site)."""
    if where is not None and where.stores:
        return (f"the cost writes a traced value into a plain numpy array{at(where)}; build the array from traced "
                "operations instead (np.stack of the pieces, or a vectorised form: np.pad, sliding_window_view, "
                "np.einsum)")
    return f"the cost converts a traced value to a Python number (float(), .item(), math.*) before its end{at(where)}"
