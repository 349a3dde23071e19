"""Change rules of elementwise operations: exact, from the inputs, without cancellation where it can be avoided.

Each rule gets the base values of its inputs and output gathered in the perturbations'
windows (``ctx.x(i)``, ``ctx.y()``) and the inputs' changes (``ctx.d(i)``, None where an
input did not change) and returns the output's change in the same windows:

- ``exp(x + d) - exp(x) = exp(x) expm1(d)``; ``log(x + d) - log(x) = log1p(d / x)``;
- ``tanh(x + d) - tanh(x) = (1 - t)(1 + t) tanh(d) / (1 + t tanh(d))`` with ``t = tanh(x)``
  (``1 / tanh(d)`` from its series where every ``|d|`` is below :data:`COTH_SERIES`);
- ``(x + d)^2 - x^2 = d (2x + d)``; ``sqrt(x + d) - sqrt(x) = d / (sqrt(x + d) + sqrt(x))``;
- products ``dx y + x dy + dx dy``, quotients ``(dx y - x dy) / (y (y + dy))``;
- ``maximum``, ``minimum``, ``abs``, ``sign``: the change of the winning branch where no branch
  changes, recomputed from the perturbed inputs where one does, and those perturbations are
  kinks; comparisons give the change of the mask, and any flipped entry is a kink.

Nothing comes from a derivative. A rule with no identity computes ``f(x + d) - f(x)``
directly: exact to the rounding of a full evaluation, only noisier.
"""

from __future__ import annotations

import numpy as np

from ...core.series import SERIES_BELOW

__all__ = ["ELEMENTWISE", "BRANCHING"]

_LN2, _LN10 = np.log(2.0), np.log(10.0)


def _add(c):
    d0, d1 = c.d(0), c.d(1)
    return d1 if d0 is None else (d0 if d1 is None else d0 + d1)


def _subtract(c):
    d0, d1 = c.d(0), c.d(1)
    return -d1 if d0 is None else (d0 if d1 is None else d0 - d1)


def _multiply(c):
    d0, d1 = c.d(0), c.d(1)
    if d0 is None:
        return c.x(0) * d1
    if d1 is None:
        return d0 * c.x(1)
    return d0 * (c.x(1) + d1) + c.x(0) * d1


def _divide(c):
    d0, d1 = c.d(0), c.d(1)
    if d1 is None:
        return d0 / c.x(1)
    y = c.x(1)
    top = -c.x(0) * d1 if d0 is None else d0 * y - c.x(0) * d1
    return _into(np.divide, top, _into(np.multiply, y + d1, y))


def _power(c):
    d0, d1 = c.d(0), c.d(1)
    x, p, y = c.x(0), c.x(1), c.y()
    with np.errstate(all="ignore"):
        if d1 is None:
            if np.ndim(p) == 0 or p.size == 1:
                q = float(np.reshape(p, -1)[0])
                if q == 2.0:
                    return d0 * (2.0 * x + d0)
                if q == 1.0:
                    return d0
            r = d0 / x
            good = (x != 0) & (r > -1.0)
            return np.where(good, y * np.expm1(p * np.log1p(np.where(good, r, 0.0))), (x + d0) ** p - y)
        if d0 is None:
            good = x > 0
            return np.where(good, y * np.expm1(d1 * np.log(np.where(good, x, 1.0))), x ** (p + d1) - y)
        return (x + d0) ** (p + d1) - y


def _unary(f):
    def rule(c):
        return f(c, c.d(0))

    return rule


def _sqrt(c, d):
    with np.errstate(invalid="ignore"):
        return d / (np.sqrt(c.x(0) + d) + c.y())


def _into(ufunc, fresh: np.ndarray, other) -> np.ndarray:
    """``ufunc(fresh, other)``, written into ``fresh`` (a temporary of the rule) where the shapes allow it.

    The rules' arrays are the size of K stacked changes: reusing one saves an allocation and a pass.
    """
    if np.shape(other) == fresh.shape or np.broadcast_shapes(fresh.shape, np.shape(other)) == fresh.shape:
        return ufunc(fresh, other, out=fresh)
    return ufunc(fresh, other)


#: Below this |d|, 1 / tanh(d) = 1/d + d/3 - d^3/45 + ... is 1/d + d/3 to far below rounding: the first term
#: left out is d^4/45 of the first, under 2**-69 (the package's one series bound).
COTH_SERIES = SERIES_BELOW


def _tanh(c, d):
    # (1 - t^2) u / (1 + t u) as (1 - t^2) / (1 / u + t), u = tanh(d): two passes fewer (u = 0 gives 1 / u = inf, 0)
    y = c.node.value
    if d.size and max(d.max(), -d.min()) < COTH_SERIES:  # (NaN compares false: the general form)
        # the changes of a finite difference are this small: the series saves tanh, the costliest pass
        below = _into(np.add, np.divide(d, 3.0), c.y())
        below = _into(np.add, below, np.reciprocal(d))  # (rules run with divide-by-zero ignored)
    else:
        below = _into(np.add, np.reciprocal(np.tanh(d)), c.y())
    return np.divide(c.derived("1 - t^2", lambda: (1.0 - y) * (1.0 + y)), below, out=below)


def _exp(c, d):
    return _into(np.multiply, np.expm1(d), c.y())


def _logaddexp(c):
    # log(e^(a+da) + e^(b+db)) - log(e^a + e^b) = log1p(w_a expm1(da) + w_b expm1(db)) with w = e^(x - y), each
    # input's share of the sum (at most 1): no difference of two logarithms (the softplus of a sigmoid layer)
    inside = None
    for i in (0, 1):
        d = c.d(i)
        if d is not None:
            y = c.node.value  # the share comes from base values alone: computed once per node, not per chunk
            share = c.derived(f"share {i}", lambda i=i, y=y: np.broadcast_to(np.exp(c.ev.base(c.node.args[i]) - y),
                                                                              y.shape))
            term = share * np.expm1(d)
            inside = term if inside is None else inside + term
    return np.log1p(inside)


def _reciprocal(c, d):
    x = c.x(0)
    return -d / (x * (x + d))


def _absolute(c, d):
    x = c.x(0)
    new = x + d
    before, after = np.sign(x), np.sign(new)
    flips = before != after
    c.kink(flips)
    return np.where(flips, np.abs(new) - np.abs(x), before * d)


def _sign(c, d):
    x = c.x(0)
    change = np.sign(x + d) - np.sign(x)
    c.kink(change != 0)
    return change


def _extreme(larger: bool):
    def rule(c):
        d0, d1 = c.d(0), c.d(1)
        a, b = c.ev.base(c.node.args[0]), c.ev.base(c.node.args[1])
        shape = c.node.value.shape
        gap = c.derived("gap", lambda: np.broadcast_to(np.subtract(a, b, dtype=np.float64), shape))
        first = c.derived("first", lambda: np.broadcast_to((np.subtract(a, b) >= 0) if larger
                                                           else (np.subtract(a, b) <= 0), shape))
        step = -d1 if d0 is None else (d0 if d1 is None else d0 - d1)
        new_first = (gap + step >= 0) if larger else (gap + step <= 0)  # the branch np.maximum/np.minimum returns
        flips = first != new_first
        if d1 is None:
            kept = d0 * first
        elif d0 is None:
            kept = d1 * ~first
        else:
            kept = np.where(first, d0, d1)
        if not flips.any():
            return kept
        c.kink(flips)
        a2 = c.x(0) if d0 is None else c.x(0) + d0
        b2 = c.x(1) if d1 is None else c.x(1) + d1
        pick = np.maximum if larger else np.minimum
        return np.where(flips, pick(a2, b2) - c.y(), kept)

    return rule


def _comparison(op):
    def rule(c):
        d0, d1 = c.d(0), c.d(1)
        a = c.x(0) if d0 is None else c.x(0) + d0
        b = c.x(1) if d1 is None else c.x(1) + d1
        delta = op(a, b).astype(np.int8) - c.y().astype(np.int8)
        flips = delta != 0
        if not flips.any():
            return None
        c.kink(flips)
        return delta

    return rule


def _logical(op):
    def rule(c):
        new = [c.x(i) if c.raw(i) is None else c.x(i) ^ (c.raw(i) != 0) for i in range(c.n_args)]
        delta = op(*new).astype(np.int8) - c.y().astype(np.int8)
        return delta if delta.any() else None

    return rule


def _where(c):
    dc, da, db = c.raw(0), c.d(1), c.d(2)
    condition = np.asarray(c.x(0), dtype=bool)
    kept = np.where(condition, 0.0 if da is None else da, 0.0 if db is None else db)
    if dc is None:
        return kept
    flipped = dc != 0
    a = c.x(1) if da is None else c.x(1) + da
    b = c.x(2) if db is None else c.x(2) + db
    return np.where(flipped, np.where(condition ^ flipped, a, b) - c.y(), kept)


def _cast(c):
    return c.d(0)


ELEMENTWISE = {
    "add": _add,
    "subtract": _subtract,
    "multiply": _multiply,
    "divide": _divide,
    "power": _power,
    "negative": _unary(lambda c, d: -d),
    "positive": _unary(lambda c, d: d),
    "square": _unary(lambda c, d: d * (2.0 * c.x(0) + d)),
    "sqrt": _unary(_sqrt),
    "exp": _unary(_exp),
    "expm1": _unary(lambda c, d: (c.y() + 1.0) * np.expm1(d)),
    "log": _unary(lambda c, d: np.log1p(d / c.x(0))),
    "log1p": _unary(lambda c, d: np.log1p(d / (1.0 + c.x(0)))),
    "log2": _unary(lambda c, d: np.log1p(d / c.x(0)) / _LN2),
    "log10": _unary(lambda c, d: np.log1p(d / c.x(0)) / _LN10),
    "logaddexp": _logaddexp,
    "tanh": _unary(_tanh),
    "sin": _unary(lambda c, d: 2.0 * np.cos(c.x(0) + 0.5 * d) * np.sin(0.5 * d)),
    "cos": _unary(lambda c, d: -2.0 * np.sin(c.x(0) + 0.5 * d) * np.sin(0.5 * d)),
    "reciprocal": _unary(_reciprocal),
    "absolute": _unary(_absolute),
    "sign": _unary(_sign),
    "maximum": _extreme(True),
    "fmax": _extreme(True),
    "minimum": _extreme(False),
    "fmin": _extreme(False),
    "greater": _comparison(np.greater),
    "greater_equal": _comparison(np.greater_equal),
    "less": _comparison(np.less),
    "less_equal": _comparison(np.less_equal),
    "equal": _comparison(np.equal),
    "not_equal": _comparison(np.not_equal),
    "logical_and": _logical(np.logical_and),
    "logical_or": _logical(np.logical_or),
    "logical_xor": _logical(np.logical_xor),
    "logical_not": _logical(np.logical_not),
    "where": _where,
    "cast": _cast,
}

#: Rules that compare (a branch, a kink, a mask): their flips anywhere in the array are looked at.
BRANCHING = frozenset({"absolute", "sign", "maximum", "fmax", "minimum", "fmin", "greater", "greater_equal", "less",
                       "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not",
                       "where"})
