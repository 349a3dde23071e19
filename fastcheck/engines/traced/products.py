"""Products of traced arrays, all recorded as einsum nodes with explicit letters.

``matmul`` (``@``), ``dot``, ``tensordot``, ``outer``, ``inner`` and ``einsum`` are bilinear
contractions; one node kind, ``einsum`` with ``specs = (operand letters, output letters)``,
lets a single change rule follow them all. The value is still computed by the function the
user called (BLAS for ``@``). An einsum of three or more operands is recorded as a chain of
two-operand ones.
"""

from __future__ import annotations

import string

import numpy as np

from .trace import Traced

__all__ = ["matmul", "dot", "tensordot", "einsum", "outer", "inner"]

_LETTERS = string.ascii_letters


def _val(x):
    return x._value if isinstance(x, Traced) else np.asarray(x)


def _tracer(*args):
    return Traced._live(args)


def _record(t, a, b, letters_a, letters_b, out, value):
    if b is None:
        return t.record("einsum", (a,), value, specs=((letters_a,), out))
    return t.record("einsum", (a, b), value, specs=((letters_a, letters_b), out))


def _matmul_letters(t, sa, sb):
    na, nb = len(sa), len(sb)
    if na == 0 or nb == 0:
        t.fail("matmul of a 0-d array")
    batch = max(na, nb) - 2
    pool = iter(_LETTERS[3:])
    batch_letters = "".join(next(pool) for _ in range(max(batch, 0)))
    la = (batch_letters[len(batch_letters) - (na - 2):] if na > 2 else "") + ("ik" if na > 1 else "k")
    lb = (batch_letters[len(batch_letters) - (nb - 2):] if nb > 2 else "") + ("kj" if nb > 1 else "k")
    for x, y in zip(sa[:-2][::-1], sb[:-2][::-1]):
        if x != y:
            t.fail("matmul with broadcast batch dimensions is not supported")
    out = batch_letters + ("i" if na > 1 else "") + ("j" if nb > 1 else "")
    return la, lb, out


def matmul(a, b):
    t = _tracer(a, b)
    la, lb, out = _matmul_letters(t, np.shape(_val(a)), np.shape(_val(b)))
    return _record(t, a, b, la, lb, out, np.matmul(_val(a), _val(b)))


def dot(a, b, out=None):
    t = _tracer(a, b)
    if out is not None:
        t.fail("np.dot with out= is not supported")
    sa, sb = np.shape(_val(a)), np.shape(_val(b))
    if not sa or not sb:
        return np.multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        la, lb, lo = _matmul_letters(t, sa, sb)
        return _record(t, a, b, la, lb, lo, np.dot(_val(a), _val(b)))
    la = _LETTERS[:len(sa)]
    lb = _LETTERS[len(sa):len(sa) + len(sb)]
    k = -2 if len(sb) > 1 else -1
    lb = lb[:len(sb) + k] + la[-1] + (lb[k + 1:] if k == -2 else "")
    lo = la[:-1] + lb[:len(sb) + k] + (lb[-1] if k == -2 else "")
    return _record(t, a, b, la, lb, lo, np.dot(_val(a), _val(b)))


def tensordot(a, b, axes=2):
    t = _tracer(a, b)
    sa, sb = np.shape(_val(a)), np.shape(_val(b))
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        ax_a, ax_b = (list(np.atleast_1d(x)) for x in axes)
    ax_a, ax_b = [int(x) % len(sa) for x in ax_a], [int(x) % len(sb) for x in ax_b]
    la = list(_LETTERS[:len(sa)])
    lb = list(_LETTERS[len(sa):len(sa) + len(sb)])
    for x, y in zip(ax_a, ax_b):
        lb[y] = la[x]
    lo = [c for i, c in enumerate(la) if i not in ax_a] + [c for i, c in enumerate(lb) if i not in ax_b]
    return _record(t, a, b, "".join(la), "".join(lb), "".join(lo), np.tensordot(_val(a), _val(b), axes))


def outer(a, b, out=None):
    return einsum("i,j->ij", np.ravel(a), np.ravel(b))


def inner(a, b):
    sa, sb = np.shape(_val(a)), np.shape(_val(b))
    if not sa or not sb:
        return np.multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def _parse(t, spec, shapes):
    spec = spec.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        t.fail("an einsum whose subscripts do not match its operands")
    used = set(c for c in spec if c in _LETTERS)
    spare = iter(c for c in _LETTERS if c not in used)
    n_ellipsis = max((len(s) - (len(x) - 3) for x, s in zip(terms, shapes) if "..." in x), default=0)
    ellipsis = "".join(next(spare) for _ in range(n_ellipsis))
    expanded = []
    for x, s in zip(terms, shapes):
        if "..." in x:
            k = len(s) - (len(x) - 3)
            x = x.replace("...", ellipsis[len(ellipsis) - k:] if k else "")
        if len(x) != len(s) or len(set(x)) != len(x):
            t.fail("an einsum with a repeated index in one operand (a trace or diagonal) is not supported")
        expanded.append(x)
    if arrow:
        out = output.replace("...", ellipsis)
    else:
        letters = "".join(expanded)
        out = ellipsis + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis))
    return expanded, out


def einsum(*operands, out=None, optimize=False, **kwargs):
    spec, arrays = operands[0], list(operands[1:])
    t = _tracer(*arrays)
    if not isinstance(spec, str) or out is not None or kwargs:
        t.fail("np.einsum is supported with a subscripts string only (no out=, dtype=, or sublists)")
    letters, lo = _parse(t, spec, [np.shape(_val(x)) for x in arrays])
    if len(arrays) == 1:
        return _record(t, arrays[0], None, letters[0], None, lo, np.einsum(spec, _val(arrays[0])))
    if len(arrays) == 2:
        value = np.einsum(spec, _val(arrays[0]), _val(arrays[1]), optimize=optimize)
        return _record(t, arrays[0], arrays[1], letters[0], letters[1], lo, value)
    current, lc = arrays[0], letters[0]
    for i in range(1, len(arrays)):
        later = "".join(letters[i + 1:]) + lo
        if i == len(arrays) - 1:
            li = lo
        else:
            li = "".join(dict.fromkeys(c for c in lc + letters[i] if c in later))
        value = np.einsum(f"{lc},{letters[i]}->{li}", _val(current), _val(arrays[i]))
        if isinstance(current, Traced) or isinstance(arrays[i], Traced):
            current = _record(t, current, arrays[i], lc, letters[i], li, value)
        else:
            current = value
        lc = li
    return current
