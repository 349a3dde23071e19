"""The planted errors of benchmarks/directions_study.py, and its user models through ``fc.check``.

An error E is a flat vector over theta added to the correct gradient G. Its label says
what it is: ``entry:<group>[<index>]:<size>`` (one entry off by size x ||G_group||),
``spread:<group>:<pattern>:<target>`` (a pattern over the group, scaled so that the
group's exhaustive relative difference is about ``target``, or at its ``natural`` size).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import fastcheck as fc
from fastcheck.core.directions import KINDS
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.core.signs import MAGNITUDES
from fastcheck.engines.reference import reference_engine

#: Directions drawn per group and over theta; the counts the verdicts are read for (first k of them).
K_MAX, COUNTS = 32, (4, 8, 16, 32)
#: A single wrong entry's error, in units of its group's gradient norm.
SIZES = (1e-1, 1e-2, 3e-3, 1e-3, 1e-4)
#: A spread error's exhaustive relative difference, about (each side of the bounds 1e-6 and 1e-3).
TARGETS = (3e-7, 1e-6, 3e-6, 1e-5, 1e-4, 1e-3, 3e-3)
#: Patterns that also go in at their own size (a row flipped, two entries swapped, a transpose).
NATURAL = ("row flip", "swap", "transpose")


def _entry_positions(shape):
    if len(shape) == 1:
        return [(0,), (shape[0] - 1,)]
    return [(0, 0), (shape[0] // 2, shape[1] // 3), (shape[0] - 1, shape[1] - 1)]


def entry_errors(case, quick: bool) -> list:
    """One wrong entry of W1 (3 positions) and of b2 (2), each off by every size of :data:`SIZES`."""
    out = []
    for name in ("W1", "b2"):
        g = case.layout.group(name)
        norm = np.linalg.norm(case.G[g.slice])
        for where in _entry_positions(g.shape)[:1 if quick else None]:
            for size in SIZES:
                e = np.zeros_like(case.G)
                e[g.start + int(np.ravel_multi_index(where, g.shape))] = size * norm
                out.append((f"entry:{name}{list(where)}:{size:g}", e))
    return out


def _patterns(G: np.ndarray, rng) -> dict:
    """Error patterns over one group's gradient G (a matrix, or a vector as a column (n, 1) flattened)."""
    G = G.ravel() if min(G.shape) == 1 else G
    out = {"gaussian": rng.standard_normal(G.shape), "constant": np.ones(G.shape)}
    flip, swap = np.zeros(G.shape), np.zeros(G.shape)
    i, j = ((1, 0), (G.shape[0] - 2, G.shape[1] - 1)) if G.ndim == 2 else ((1,), (G.shape[0] - 2,))
    if G.ndim == 2:
        row = np.zeros(G.shape)
        row[1] = G[1]
        out["one row"] = row
        out["rank one"] = np.outer(rng.standard_normal(G.shape[0]), rng.standard_normal(G.shape[1]))
        flip[1] = -2 * G[1]
        out["transpose"] = np.ascontiguousarray(G.T).reshape(G.shape) - G
    else:
        flip[1] = -2 * G[1]
    swap[i], swap[j] = G[j] - G[i], G[i] - G[j]
    out["row flip"], out["swap"] = flip, swap
    return {name: P for name, P in out.items() if np.linalg.norm(P) > 0}


def spread_errors(case, quick: bool) -> list:
    """Every pattern of :func:`_patterns` on W1, W2 and b2, at every target of :data:`TARGETS` and natural size."""
    out = []
    rng = np.random.default_rng(7)
    for name in ("W1", "W2", "b2"):
        g = case.layout.group(name)
        G = case.G[g.slice].reshape(g.shape)
        norm = np.linalg.norm(G)
        for pattern, P in _patterns(G, rng).items():
            scales = [(f"{t:g}", 2 * t * norm / np.linalg.norm(P)) for t in (TARGETS[1::2] if quick else TARGETS)]
            if pattern in NATURAL:
                scales.append(("natural", 1.0))
            for label, c in scales:
                e = np.zeros_like(case.G)
                e[g.slice] = (c * P).ravel()
                out.append((f"spread:{name}:{pattern}:{label}", e))
    return out


def _sixteenths() -> np.ndarray:
    """The magnitudes of a sign pattern's entries in sixteenths (integers 16 to 31)."""
    return np.rint(16 * MAGNITUDES).astype(np.int64)


def _zero_sum(n: int) -> float:
    """P(a sum of n entries, each a random sign times a random magnitude, is exactly 0), by convolution."""
    m = _sixteenths()
    top = int(m.max())
    one = np.zeros(2 * top + 1)
    np.add.at(one, top + np.concatenate([m, -m]), 1.0 / (2 * m.size))
    total = np.ones(1)
    for _ in range(n):
        total = np.convolve(total, one)
    return float(total[total.size // 2])


def _equal_products() -> float:
    """P(a_i b_j = a_k b_l) for four independent entries: the signs agree (1/2) and the magnitudes' products do."""
    _, counts = np.unique(np.outer(_sixteenths(), _sixteenths()), return_counts=True)
    return 0.5 * float((counts / counts.sum()) @ (counts / counts.sum()))


def cancel_errors(case) -> list:
    """Errors that a sign direction can see as exactly zero, on the small groups, at a difference of about 1e-2.

    Returns ``(label, E, p0)``: ``p0`` the chance that one sign direction's ``a^T E b`` is 0
    (a stray constant: ``(sum a)(sum b)``, a sum of signed magnitudes exactly 0; two entries
    swapped or both off by the same amount, the first and the last: ``a_i b_j -+ a_k b_l``,
    0 when sign and magnitude agree, 1/32 on a vector, where ``b`` is one entry, and
    about 1/243 on a matrix, where rows and columns differ and products of two magnitudes
    must agree).
    """
    out = []
    for name in ("b2", "W3", "b3"):
        g = case.layout.group(name)
        G = case.G[g.slice].reshape(g.shape)
        rows, cols = (g.shape[0], 1) if min(g.shape) == 1 else g.shape
        constant = 1.0 - (1.0 - _zero_sum(rows)) * (1.0 - _zero_sum(cols))
        equal = 1.0 / (2 * MAGNITUDES.size) if cols == 1 else _equal_products()
        flat = G.ravel()
        i, j = 0, g.size - 1
        swap, pair = np.zeros(g.size), np.zeros(g.size)
        swap[i], swap[j] = flat[j] - flat[i], flat[i] - flat[j]
        pair[i] = pair[j] = 1.0
        patterns = (("constant", np.ones(g.size), constant), ("swap", swap, equal), ("two entries", pair, equal))
        for pattern, P, p0 in patterns:
            e = np.zeros_like(case.G)
            e[g.slice] = 2e-2 * np.linalg.norm(G) / np.linalg.norm(P) * P
            out.append((f"cancel:{name}:{pattern}", e, p0))
    return out


# ---------------------------------------------------------------------- user models (traced engine)
def _models():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the user-style models live with the tests
    from traced_models import cnn, course_mlp, rnn

    return {"course MLP": (course_mlp, "W2"), "CNN": (cnn, "W1"), "RNN": (rnn, "Waa")}


def _correct_grads(cost, params, grads):
    """The model's own backprop, or (CNN, RNN: none) central differences at step 1e-5, as the tests take them."""
    layout, theta = Layout.from_params(params)
    if grads is not None:
        return layout, layout.flatten_grads(grads)
    return layout, reference_engine(CostObjective(cost, layout), theta, np.arange(layout.n_params), 1e-5).numeric


def _user_errors(G: np.ndarray, target: float = 5e-3) -> dict:
    """One group's planted bugs, each at an exhaustive relative difference of about ``target``."""
    norm = np.linalg.norm(G)
    entry = np.zeros(G.shape)
    entry.flat[G.size // 3] = 2 * target * norm
    constant = np.full(G.shape, 2 * target * norm / np.sqrt(G.size))
    return {"correct": np.zeros(G.shape), "one entry": entry, "scaled x1.01": 0.01 * G, "stray constant": constant}


def traced_study(seeds) -> list[str]:
    """Markdown rows: per model, planted bug and distribution, the planted group's fail rate and false alarms."""
    lines = ["| model | group (shape) | planted | exhaustive | " + " | ".join(
        f"{kind}: group fails / warns | {kind}: others warn/fail" for kind in KINDS) + " |",
        "|---|---|---|---|" + "---|---|" * len(KINDS)]
    for model, (build, name) in _models().items():
        cost, params, grads = build()[:3]
        layout, G = _correct_grads(cost, params, grads)
        g = layout.group(name)
        for label, e in _user_errors(G[g.slice].reshape(g.shape)).items():
            bad = G.copy()
            bad[g.slice] += e.ravel()
            given = layout.unflatten(bad)
            full = fc.check(cost, params, given, escalate=False)
            row = full.group(name)
            cells = [model, f"{name} {g.shape}", label, f"{row.verdict} ({row.difference:.1e})"]
            for kind in KINDS:
                mine, others = [], []
                for seed in seeds:
                    report = fc.check(cost, params, given, mode="directions", n_directions=16, distribution=kind,
                                      seed=seed, escalate=False)
                    mine.append(report.group(name).verdict)
                    others.append(any(r.verdict != "pass" for r in report.groups if r.name != name))
                cells += [f"{mine.count('fail')} / {mine.count('warn')} of {len(mine)}",
                          f"{sum(others)} of {len(others)}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines
