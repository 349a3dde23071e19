"""``np.einsum`` with a letter repeated in one operand (``'ii->i'``, ``'ii'``, ``'iij,j->i'``).

The product rules follow einsum nodes whose operands have distinct letters
(:mod:`~.products`). A repeated letter asks for a diagonal; it is taken first, with the
fancy index numpy's einsum means by it (``a[arange(n), arange(n)]``, a gather the indexing
rules follow), and the rest is an ordinary einsum. Implicit output (no ``->``) is made
explicit from the original subscripts, where a repeated letter is summed.
"""

from __future__ import annotations

import numpy as np

from .products import einsum as _einsum
from .sites import at, site
from .trace import Traced

__all__ = ["einsum", "trace_"]


def _shape(a) -> tuple:
    return a.shape if isinstance(a, Traced) else np.shape(a)


def einsum(*operands, **kwargs):
    """``np.einsum``; a letter repeated in one operand (``'ii->i'``, ``'ii'``) takes that diagonal first."""
    spec = operands[0]
    if not isinstance(spec, str) or "..." in spec:
        return _einsum(*operands, **kwargs)
    inputs, arrow, output = spec.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if all(len(set(term)) == len(term) for term in terms) or len(terms) != len(operands) - 1:
        return _einsum(*operands, **kwargs)
    if not arrow:  # numpy's implicit output: the letters that appear once, in order
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    arrays = list(operands[1:])
    for n, term in enumerate(terms):
        arrays[n], terms[n] = _diagonal(arrays[n], term)
    return _einsum(",".join(terms) + "->" + output, *arrays, **kwargs)


def _diagonal(a, term: str):
    """``a`` with the diagonal of every letter its ``term`` repeats taken (as einsum does), and its letters."""
    while True:
        repeated = next((c for c in term if term.count(c) > 1), None)
        if repeated is None:
            return a, term
        where = [i for i, c in enumerate(term) if c == repeated]
        index = [slice(None)] * len(term)
        for i in where:
            index[i] = np.arange(_shape(a)[where[0]])
        a = a[tuple(index)]  # numpy's advanced indexing: the diagonal in place if adjacent, else first
        if where == list(range(where[0], where[0] + len(where))):
            term = term[:where[0]] + repeated + term[where[-1] + 1:]
        else:
            term = repeated + "".join(c for i, c in enumerate(term) if i not in where)


def trace_(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``np.trace`` of a square matrix: the einsum ``'ii'``."""
    if offset or (axis1, axis2) != (0, 1) or len(_shape(a)) != 2 or dtype is not None or out is not None:
        Traced._live((a,)).fail("np.trace other than of a 2-D array without offset=, axis1=, axis2=, dtype= or "
                                f"out= is not supported{at(site())}")
    return einsum("ii", a)
