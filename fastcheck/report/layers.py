"""Diagnoses across groups: where, in a layered network, the error enters; and a group whose
analytic gradient is another group's.

Backprop runs from the last layer down: an error made in layer l's backward (a wrong
``dZl``, or a wrong ``dAl`` sent down from layer l+1) makes every gradient of layer l and
below wrong and leaves the layers above right. So when the failing groups are exactly the
bottom layers, the first wrong layer from the top is where to look. Layers are read from
the names: a trailing number is the layer (``W1, b1, gamma1, beta1`` are layer 1); names
without one (``Wax, Waa, Wya`` of a recurrent cell) are one layer and take no part.
"""

from __future__ import annotations

import re

import numpy as np

from .diagnose import EXPLAINED, explained_by

__all__ = ["LAYERS", "layer_number", "where_error_enters", "neighbour_gradient"]

#: The key of ``Report.diagnoses`` that says where, in a layered network, the error enters.
LAYERS = "(layers)"

_TRAILING = re.compile(r"(\d+)$")


def layer_number(name: str) -> int | None:
    """The layer a group belongs to, from its name's trailing number (``W12`` -> 12), else None."""
    found = _TRAILING.search(name)
    return int(found.group(1)) if found else None


def _names(rows) -> str:
    return ", ".join(g.name for g in rows)


def where_error_enters(rows, all_zero=()) -> str | None:
    """The sentence naming the layer where the error enters, or None.

    ``rows`` are the report's :class:`~fastcheck.report.rows.GroupRow` s that checked something
    (coordinates, or directions: a group a cheap mode found right is evidence too). Said
    when the groups have at least two numbered layers, at least two groups fail, and the
    failing groups are a contiguous block from the bottom: with l the highest layer with a
    failing group, every group above layer l passes and every group below it fails (except
    groups whose gradient is zero to rounding, such as a bias before a batch norm, which no
    error reaches). Layer l itself may have right groups: those its backward computes
    before the error (a batch norm's dgamma, dbeta before its dx). Not said when a right
    group differs as much as a wrong one (the sentence would contradict its numbers), nor when every
    failing group's analytic gradient is all zeros (named in ``all_zero``): nothing was
    computed, no error entered anywhere.
    """
    layered = [(layer_number(g.name), g) for g in rows if g.checked]
    layered = [(n, g) for n, g in layered if n is not None]
    numbers = sorted({n for n, _ in layered})
    failing = [g for _, g in layered if g.verdict == "fail"]
    if len(numbers) < 2 or len(failing) < 2 or all(g.name in all_zero for g in failing):
        return None
    top = max(n for n, g in layered if g.verdict == "fail")
    below = [g for n, g in layered if n < top]
    if any(g.verdict != "fail" and not g.zero_to_rounding for g in below):
        return None
    above = [g for n, g in layered if n > top]
    before = [g for n, g in layered if n == top and g.verdict != "fail"]  # right in the layer the error enters
    if (above or before) and max(g.difference for g in above + before) >= min(g.difference for g in failing):
        return None  # the "right" groups differ as much as the "wrong" ones: the verdicts are not a layer's error
    evidence = f"the wrong groups differ by {min(g.difference for g in failing):.1e} or more"
    if above or before:
        evidence += f", the right ones by {max(g.difference for g in above + before):.1e} or less"
    wrong = f"({_names(failing)}; {evidence})"
    if before:
        after = ", ".join(f"d{g.name}" for g in before)
        return (f"the error enters in layer {top}'s backward, after {after} (right): "
                + (f"the groups of layer {min(n for n, _ in layered if n > top)} and above are right "
                   f"({_names(above)}), " if above else "")
                + f"the rest of layer {top} and every group below it are wrong {wrong}: look at what layer {top}'s "
                f"backward computes after {after} (dZ{top}, or a batch norm's dx)")
    if not above:
        return (f"every layer is wrong, from the top (layer {top}) down {wrong}: the error enters at the output: "
                f"look at dZ{top} / dA{top} (the cost's derivative, or the output activation's)")
    first = min(n for n, _ in layered if n > top)
    return (f"the error enters at layer {top}: the groups of layer {first} and above are right ({_names(above)}), "
            f"every group of layer {top} and below is wrong {wrong}: look at dZ{top} / dA{top} "
            f"(the derivative of layer {top}'s activation, or what layer {first} passes back)")


def neighbour_gradient(name: str, analytic: np.ndarray, numeric: np.ndarray, others: dict) -> str | None:
    """The sentence saying group ``name``'s analytic gradient is another group's numeric one, or None.

    ``analytic`` and ``numeric`` are the whole group's (flat); ``others`` maps every other
    group checked in full to its flat numeric gradient. Groups of the same size are compared
    (the nearest layer first, so a swap of dW1 and dW2 names its neighbour).
    """
    mine = layer_number(name)

    def distance(other):
        n = layer_number(other)
        return (abs(n - mine) if n is not None and mine is not None else np.inf, other)

    for other in sorted((o for o, v in others.items() if o != name and v.shape == numeric.shape), key=distance):
        residual = explained_by(analytic, others[other], numeric)
        if residual <= EXPLAINED:
            return (f"the analytic gradient is the numeric gradient of {other} (fit residual {residual:.1e}): "
                    f"d{other} returned as d{name}?")
    return None
