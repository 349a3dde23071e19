"""The traced engine, operation by operation: incremental changes equal differences of full evaluations.

For every supported operation and every kind of footprint a perturbation can reach it
with (one entry, one row, one column, a contiguous range, dense), the cost
``sum(R * op(Z))`` is evaluated at theta +- s e_i for every coordinate, incrementally and
by full evaluations; they must agree to rounding. The step is large (1e-3) so that a
wrong rule errs far above rounding, and maxima, ties and masks really flip.
"""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from fastcheck.core.layout import Layout
from fastcheck.engines.traced.evaluate import plan, point_changes, run
from fastcheck.engines.traced.tracing import trace

rng = np.random.default_rng(7)
A = rng.standard_normal((5, 6))
B = rng.standard_normal((6, 4))
MASK = rng.random((4, 6)) > 0.5


def incremental_and_full(cost, params, step=1e-3, factored=True):
    """(J+- from the traced engine, J+- from full evaluations, kinks) over every coordinate.

    ``factored``: rank-one changes may stay factored (as in the engine), else every change is plain.
    """
    layout, theta = Layout.from_params(params)
    graph = trace(cost, layout, theta)
    traced, full, kinks = [], [], []
    for position, g in enumerate(layout.groups):
        local = np.arange(g.size)
        original = theta[g.start + local]
        steps = np.concatenate([(original + step) - original, (original - step) - original])
        leaf = point_changes(g.shape, np.concatenate([local, local]), steps)
        change, flips, _ = run(graph, plan(graph, [graph.params[position]]), {graph.params[position]: leaf},
                               {} if factored else None)
        traced.append(graph.cost + change)
        kinks.append(flips)
        for i, s in zip(np.concatenate([local, local]), steps):
            work = theta.copy()
            work[g.start + i] += s
            full.append(cost(layout.unflatten(work)))
    return np.concatenate(traced), np.array(full), np.concatenate(kinks)


def assert_exact(cost, params, step=1e-3, magnitude=1.0):
    """J+- agree to 64 units in the last place of ``magnitude`` (the size of the terms summed into J)."""
    scale = max(1.0, magnitude, np.max(np.abs(incremental_and_full(cost, params, step)[1])))
    for factored in (True, False):
        traced, full, _ = incremental_and_full(cost, params, step, factored)
        np.testing.assert_allclose(traced, full, rtol=0, atol=64 * 2.0**-52 * scale)


# how a perturbation of P (4, 5) reaches the operation: its footprint there
FOOTPRINTS = {
    "entry": lambda P: P @ np.eye(5, 6),  # (4, 6), but the identity keeps one entry
    "row": lambda P: P @ A,  # one row of (4, 6)
    "column": lambda P: (A.T[:4, :4] @ P @ np.eye(5, 6)),  # one column
    "range": lambda P: (P @ A).reshape(1, 24).reshape(4, 6),  # a contiguous range, then back
    "dense": lambda P: np.tanh(A.T[:4, :4] @ P) @ A,
}

UNARY = {
    "exp": lambda z: np.exp(0.5 * z),
    "log": lambda z: np.log(z * z + 0.5),
    "log1p": lambda z: np.log1p(z * z),
    "expm1": np.expm1,
    "tanh": np.tanh,
    "sqrt": lambda z: np.sqrt(z * z + 0.1),
    "square": np.square,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "reciprocal": lambda z: 1.0 / (z * z + 1.0),
    "power": lambda z: (z * z + 1.0) ** 1.5,
    "cube": lambda z: z**3,
    "exp2": lambda z: 2.0**z,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "stable_sigmoid": lambda z: np.exp(-np.logaddexp(0.0, -3 * z)),  # the built-in network's sigmoid
    "logaddexp_both": lambda z: np.logaddexp(z, 2 * z[::-1]),  # both operands changed
    "log2": lambda z: np.log2(z * z + 1.0),
    "negative": lambda z: -z,
    "relu": lambda z: np.maximum(z, 0),
    "minimum": lambda z: np.minimum(0.1, z),
    "clip": lambda z: np.clip(z, -0.5, 0.5),
    "leaky": lambda z: np.where(z > 0, z, 0.01 * z),
    "mask_multiply": lambda z: z * (z > 0),
    "mask_astype": lambda z: z * (z <= 0.2).astype(np.float64),
    "const_where": lambda z: np.where(MASK, z, -2 * z),
    "self_product": lambda z: z * z,
    "quotient": lambda z: z / (z * z + 1.0),
    "const_broadcast": lambda z: (z - A[0]) * B[:4, :1] / (1.0 + A[1:2] ** 2),
    "logical": lambda z: z * np.logical_and(z > -0.5, ~(z > 0.8)),
    "sum_axis0": lambda z: np.tanh(z.sum(axis=0)),
    "sum_keepdims": lambda z: z - z.sum(axis=1, keepdims=True),
    "mean": lambda z: np.exp(z.mean(axis=1)),
    "max_axis1": lambda z: z.max(axis=1),
    "max_all": lambda z: np.max(z) * z,
    "min_keepdims": lambda z: z - np.min(z, axis=0, keepdims=True),
    "var": lambda z: z.var(axis=0),
    "std": lambda z: np.std(z, axis=1, keepdims=True) * z,
    "logsumexp": lambda z: np.log(np.sum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)),
    "reshape": lambda z: np.sin(z.reshape(2, 12)),
    "ravel": lambda z: np.cos(z.ravel()),
    "transpose": lambda z: z.T @ A[:4, :5],
    "swapaxes": lambda z: np.swapaxes(z[None], 0, 2) ** 2,
    "expand_squeeze": lambda z: np.squeeze(np.expand_dims(z, 1)) ** 2,
    "concatenate": lambda z: np.concatenate([z, A[:4, :2], z ** 2], axis=1),
    "stack": lambda z: np.stack([z, np.ones((4, 6))], axis=0) ** 2,
    "slice": lambda z: z[1:3, ::2] ** 2,
    "int_index": lambda z: z[2] * z[:, 1:2],
    "fancy": lambda z: z[np.arange(4), [0, 5, 2, 2]] ** 2,
    "bool_const_index": lambda z: z[MASK] ** 2,
    "ellipsis_none": lambda z: z[..., None, 2:5] ** 2,
    "pad": lambda z: np.pad(z, ((1, 0), (2, 1))) ** 2,
    "sliding_window": lambda z: np.einsum("ijk,k->ij", sliding_window_view(z, 3, axis=1), [1.0, -2.0, 0.5]) ** 2,
    "repeat": lambda z: np.repeat(z, 2, axis=0) ** 2,
    "broadcast_to": lambda z: np.broadcast_to(z[:, :1], (4, 6)) * z,
    "matmul": lambda z: z @ B[:6, :3] @ np.ones((3, 2)),
    "matmul_left": lambda z: A[:3, :4] @ z,
    "self_matmul": lambda z: z @ z.T,
    "einsum": lambda z: np.einsum("ij,jk,k->i", z, B, np.ones(4)),
    "tensordot": lambda z: np.tensordot(z, B, axes=([1], [0])),
    "dot": lambda z: np.dot(z, B),
    "outer": lambda z: np.outer(z[0], z[1]),
    "norm": lambda z: np.linalg.norm(z) + np.linalg.norm(z, axis=1),
    "trace": lambda z: np.trace(z @ z.T) * z,
}


def _setitem(z):
    out = z * 1.0
    out[z < 0] = 0.0
    out[1:3, 2] = 5.0 * z[0, :2]
    out += z ** 2
    return out


UNARY["setitem"] = _setitem


@pytest.mark.parametrize("footprint", list(FOOTPRINTS))
@pytest.mark.parametrize("op", list(UNARY))
def test_operation_changes_equal_full_evaluations(op, footprint):
    assert_operation_exact(op, UNARY[op], footprint)


def assert_operation_exact(op, f, footprint):
    """``sum(R * f(Z))``, Z reached with ``footprint``'s footprint, exact at every coordinate."""
    P = np.random.default_rng(zlib.crc32(f"{op} {footprint}".encode())).standard_normal((4, 5)) * 0.8
    prefix = FOOTPRINTS[footprint]
    probe = np.asarray(f(prefix(P)))
    R = np.random.default_rng(3).standard_normal(probe.shape)

    def cost(p):
        return np.sum(R * f(prefix(p["P"])))

    assert_exact(cost, {"P": P}, magnitude=np.sum(np.abs(R * probe)))


def test_max_pool_ties_are_kinks():
    P = np.array([[1.0, 1.0, 0.5, 2.0], [3.0, 3.0, 0.0, -1.0]])

    def cost(p):
        return np.sum(p["P"].reshape(2, 2, 2).max(axis=2) ** 2)

    traced, full, kinks = incremental_and_full(cost, {"P": P})
    np.testing.assert_allclose(traced, full, rtol=0, atol=1e-14)
    n = P.size
    # the tied pairs (0,0),(0,1) and (1,0),(1,1) change their winners under either sign
    assert set(np.flatnonzero(kinks[:n] | kinks[n:]).tolist()) == {0, 1, 4, 5}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([(4, 1), (1, 6), (6,), (4, 6), (1, 1, 6)]),
       st.sampled_from(["add", "multiply", "divide", "maximum", "subtract"]))
def test_broadcast_binary_with_traced_operands(seed, other_shape, name):
    """Both operands depend on the parameters, with different footprints and broadcasting."""
    gen = np.random.default_rng(seed)
    P = gen.standard_normal((4, 5))
    Q = gen.standard_normal(other_shape) + 3.0
    op = getattr(np, name)

    def cost(p):
        return np.sum(np.tanh(op(p["P"] @ A, p["Q"] ** 2 + 1.0)))

    assert_exact(cost, {"P": P, "Q": Q})


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("keepdims", [True, False])
def test_extreme_of_one_changed_entry_per_slice(op, keepdims, monkeypatch):
    """A softmax's shift: one entry per row changes; winners that change (ties too) are kinks, found by brute force."""
    from fastcheck.engines.traced import reductions

    calls = []
    one_entry = reductions._one_entry
    monkeypatch.setattr(reductions, "_one_entry", lambda *a: calls.append(1) or one_entry(*a))
    sign = 1.0 if op == "max" else -1.0
    P = sign * np.array([[2.0, 2.0005, -1.0, 0.3],  # runner-up within the step: the winner changes
                         [1.0, 1.0, 0.0, -2.0],  # a tie
                         [0.5, -3.0, 4.0, 3.9995],
                         [-1.0, -2.0, -3.0, -4.0]])
    R = np.random.default_rng(5).standard_normal((4, 1) if keepdims else (4,))

    def extreme(z):
        return getattr(z, op)(axis=1, keepdims=keepdims)

    def cost(p):
        return np.sum(R * extreme(p["P"])) + np.sum(np.exp(p["P"] - extreme(p["P"]).reshape(4, 1)))

    traced, full, kinks = incremental_and_full(cost, {"P": P})
    assert calls
    np.testing.assert_allclose(traced, full, rtol=0, atol=64 * 2.0**-52 * np.abs(full).max())
    base = getattr(P, op)(axis=1, keepdims=True) == P
    tied = base.sum(axis=1) > 1  # any change of a tied slice counts, as with the whole axis opened
    expected = []
    for s in (1e-3, -1e-3):
        for i in range(P.size):
            work = P.copy()
            work.flat[i] = (work.flat[i] + s)
            changed = not np.array_equal(getattr(work, op)(axis=1, keepdims=True) == work, base)
            expected.append(changed or tied[i // 4])
    np.testing.assert_array_equal(kinks, expected)
