"""The change rule of einsum nodes (every product): bilinear, stacked, footprint-aware.

``C = einsum(A, B)`` changes by ``einsum(dA, B) + einsum(A, dB) + einsum(dA, dB)``, each term
exact; where ``dB`` is dense, as ``einsum(dA, B + dB) + einsum(A, dB)`` (one product fewer).
In a term, a letter windowed in a change (a row of ``W1``, a channel of a conv weight)
restricts every operand carrying that letter to the window of each perturbation: a one-entry
change of ``W1`` times ``X`` reads one row of ``X``; a one-row change of ``A1`` times ``W2``
reads one column of ``W2`` and gives a rank-one change; a contracted window (a flattened
channel) reads the matching rows of the dense weights. Output letters keep their windows.
Each term is one batched matrix product (:func:`contract`), BLAS-sized when the
perturbations are stacked as its batch or its rows.
"""

from __future__ import annotations

import numpy as np

from .changes import Change, gather, move_axis, restrict, same_window, unify, widen
from .contract import STACK, contract
from .factored import make_factored

__all__ = ["CONTRACTIONS", "add_changes"]


def add_changes(changes: list, shape: tuple) -> Change | None:
    """The sum of changes of one array (None for no change).

    Changes with the same windows add directly; a change windowed on one axis is added
    into a less windowed one at its windows' positions (no zero-filled copy of it). The
    changes are the caller's own new arrays: the sum is formed in the widest one.
    """
    changes = [c for c in changes if c is not None]
    if not changes:
        return None
    changes.sort(key=lambda c: len(c.windows))
    total = changes[0]
    values = total.stacked()
    if not values.flags.writeable:  # broadcast along an axis: made real
        values = np.array(values)
    for c in changes[1:]:
        extra = [a for a in c.windows if a not in total.windows]
        same = all(a in c.windows and same_window(c.windows[a], w) for a, w in total.windows.items())
        if same and not extra:
            values += c.floats()
        elif same and len(extra) == 1:
            a = extra[0]
            starts, length = c.windows[a]
            target = move_axis(values, a + 1, 1)
            rows = np.arange(c.k)[:, None]
            index = starts[:, None] + np.arange(length)
            target[rows, index] += move_axis(c.stacked(), a + 1, 1)
        else:
            total, other = unify([Change(values, total.windows, shape), c])
            values = np.array(total.stacked()) + other.floats()
    return Change(values, total.windows, shape)


def _term(la: str, x, lb: str, y, lo: str, shape: tuple) -> Change:
    k = (x if isinstance(x, Change) else y).k
    windows, conflicts = {}, set()
    for letters, op in ((la, x), (lb, y)):
        if isinstance(op, Change):
            for a, w in op.windows.items():
                c = letters[a]
                if c in windows and not same_window(windows[c], w):
                    conflicts.add(c)
                windows.setdefault(c, w)
    if conflicts:  # two changes windowed differently on one letter: open both there
        x = widen(x, [a for a, c in enumerate(la) if c in conflicts]) if isinstance(x, Change) else x
        y = widen(y, [a for a, c in enumerate(lb) if c in conflicts]) if isinstance(y, Change) else y
        windows = {c: w for c, w in windows.items() if c not in conflicts}

    def prepare(letters, op):
        if isinstance(op, Change):
            v = op.stacked()
            for a, c in enumerate(letters):
                if c in windows and a not in op.windows:
                    v = restrict(v, a, windows[c])
            return STACK + letters, v
        own = {a: windows[c] for a, c in enumerate(letters) if c in windows}
        if own:
            return STACK + letters, gather(op, own, k, len(letters))
        return letters, np.asarray(op, dtype=np.float64)

    lx, vx = prepare(la, x)
    ly, vy = prepare(lb, y)
    values = contract(lx, vx, ly, vy, STACK + lo)
    return Change(values, {i: windows[c] for i, c in enumerate(lo) if c in windows}, shape)


def _einsum(ev, node, changes):
    letters, lo = node.kw["specs"]
    shape = node.value.shape
    if len(letters) == 1:
        change = changes[0]
        v = change.stacked()
        keep = [i for i, c in enumerate(letters[0]) if c in lo]
        v = v.sum(axis=tuple(i + 1 for i, c in enumerate(letters[0]) if c not in lo))
        kept = "".join(letters[0][i] for i in keep)
        v = np.transpose(v, [0] + [kept.index(c) + 1 for c in lo])
        windows = {lo.index(letters[0][a]): w for a, w in change.windows.items() if letters[0][a] in lo}
        return Change(v, windows, shape)
    (la, lb), (ca, cb) = letters, changes
    a, b = ev.base(node.args[0]), ev.base(node.args[1])
    if (ca is None) != (cb is None):  # one row of a contracted letter: a rank-one change, kept factored
        factored = make_factored(ev, node, la, ca, lb, b, lo) if ca is not None else make_factored(
            ev, node, lb, cb, la, a, lo)
        if factored is not None:
            return factored
    if ca is None:
        return _term(la, a, lb, cb, lo, shape)
    if cb is None:
        return _term(la, ca, lb, b, lo, shape)
    # both change: dA (B + dB) + A dB, the new operand (if dense) beside the other change, restricted to its windows
    if not cb.windows:
        terms = [_term(la, ca, lb, _moved(b, cb, lb, la, ca), lo, shape), _term(la, a, lb, cb, lo, shape)]
    elif not ca.windows:
        terms = [_term(la, _moved(a, ca, la, lb, cb), lb, cb, lo, shape), _term(la, ca, lb, b, lo, shape)]
    else:
        terms = [_term(la, ca, lb, b, lo, shape), _term(la, a, lb, cb, lo, shape), _term(la, ca, lb, cb, lo, shape)]
    return add_changes(terms, shape)


def _moved(base, change: Change, letters: str, other_letters: str, other: Change) -> Change:
    """The perturbed value ``base + change`` (a dense change) in the windows ``other`` has on shared letters.

    Outside those windows the term ``other * (base + change)`` reads nothing, so only they are formed.
    """
    own = {a: other.windows[other_letters.index(c)] for a, c in enumerate(letters)
           if c in other_letters and other_letters.index(c) in other.windows}
    values = change.floats()
    for a, window in own.items():
        values = restrict(values, a, window)
    values = gather(base, own, change.k, len(change.shape)) + values
    return Change(values, own, change.shape)


CONTRACTIONS = {"einsum": _einsum}
