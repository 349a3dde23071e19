"""The traced engine's certified shortcuts: taken where their certificate holds, exact either way.

Each shortcut skips work only when a certificate says the skipped work cannot change the
result (a max's winner keeps its lead, a rank-one change stays below its margin). Each is
run at a tiny step, where the certificate holds, and at a large one, where it fails for
some perturbations; both times every J+- must equal a full evaluation to rounding.
"""

import numpy as np
import pytest
from test_traced_ops import assert_exact, incremental_and_full

from fastcheck.engines.traced import factored, reductions

rng = np.random.default_rng(11)
X = rng.standard_normal((5, 9))
W = rng.standard_normal((6, 4))
R = rng.standard_normal((6, 9))


def _record(monkeypatch):
    """Outcomes of the dense max certificate and of the factored max rule, as they happen."""
    seen = {"dense": [], "factored": []}
    certified = reductions._certified

    def dense(*args):
        seen["dense"].append(certified(*args))
        return seen["dense"][-1]

    def winner(ev, node, changes):
        out = factored._winner(ev, node, changes)
        seen["factored"].append(out is not NotImplemented)
        return out

    monkeypatch.setattr(reductions, "_certified", dense)
    monkeypatch.setitem(factored.FACTORED, "max", winner)
    monkeypatch.setitem(factored.FACTORED, "min", winner)
    return seen


def _softmax_loss(p):
    """A softmax over the 6 rows of a rank-one change (a one-row change of relu(P @ X), times W)."""
    Z = W @ np.maximum(p["P"] @ X, 0)
    shifted = Z - np.max(Z, axis=0, keepdims=True)
    return np.sum(R * (shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True))))


def _pool(p):
    """A 2x2 max-pool (two reduced axes) of a dense change, and a min over one axis."""
    Z = np.tanh(p["P"] @ p["P"].T)  # (4, 4), dense
    pooled = Z.reshape(2, 2, 2, 2).max(axis=(1, 3))
    return np.sum(pooled ** 2) + np.sum(np.min(Z, axis=1) * np.arange(4))


@pytest.mark.parametrize("cost", [_softmax_loss, _pool])
def test_max_certificates_hold_at_small_steps_and_fail_at_large_ones(cost, monkeypatch):
    P = rng.standard_normal((4, 5))
    seen = _record(monkeypatch)
    assert_exact(cost, {"P": P}, step=1e-7)
    small = {kind: list(v) for kind, v in seen.items()}
    for v in seen.values():
        v.clear()
    assert_exact(cost, {"P": P}, step=0.5)
    large = seen
    kind = "factored" if cost is _softmax_loss else "dense"
    assert small[kind] and all(small[kind])
    assert large[kind] and not all(large[kind])


@pytest.mark.parametrize("one_entry", [False, True])
def test_max_ties_fail_the_certificate_and_are_kinks(one_entry, monkeypatch):
    P = np.array([[1.0, 1.0, 0.5, 2.0], [3.0, 3.0, 0.0, -1.0]])

    def cost(p):
        return np.sum(p["P"].reshape(2, 2, 2).max(axis=2) ** 2)

    if not one_entry:  # one changed entry per pair has its own rule: without it, the dense certificate decides
        monkeypatch.setattr(reductions, "_one_entry_axis", lambda change, axes: False)
    seen = _record(monkeypatch)
    traced, full, kinks = incremental_and_full(cost, {"P": P}, step=1e-9)
    np.testing.assert_allclose(traced, full, rtol=0, atol=1e-14)
    assert (not seen["dense"]) if one_entry else (seen["dense"] and not all(seen["dense"]))
    n = P.size
    assert set(np.flatnonzero(kinks[:n] | kinks[n:]).tolist()) == {0, 1, 4, 5}


def test_winners_lead():
    x = np.array([[3.0, 1.0, 2.5], [1.0, 1.0, 0.0], [-np.inf, 2.0, -np.inf]])
    best, tied, lead = reductions.winners(x, (1,), True)
    np.testing.assert_array_equal(best[:, 0], [0, 0, 1])
    np.testing.assert_array_equal(tied[:, 0], [False, True, False])
    np.testing.assert_array_equal(lead[:, 0], [0.5, 0.0, np.inf])
    best, tied, lead = reductions.winners(x[:2], (0, 1), False)
    assert best.shape == (1, 1) and best[0, 0] == 5 and lead[0, 0] == 1.0 and not tied[0, 0]


@pytest.mark.parametrize("footprint", ["entry", "row", "dense"])
@pytest.mark.parametrize("reduce", ["sum", "mean_keepdims", "mask_weights"])
def test_weighted_sums_run_as_one_product_and_stay_exact(footprint, reduce, monkeypatch):
    """``sum(c * x)`` over all axes with an unchanged ``c``: fused into one contraction, still exact."""
    from fastcheck.engines.traced import evaluate

    calls = []
    fused = evaluate.weighted_sum
    monkeypatch.setattr(evaluate, "weighted_sum", lambda *a: calls.append(1) or fused(*a))
    prefix = {"entry": lambda P: P @ np.eye(5, 9), "row": lambda P: P @ X, "dense": lambda P: np.tanh(P.T @ P) @ X}
    f = prefix[footprint]
    weights = rng.standard_normal((1, 9))  # broadcast along the rows

    def cost(p):
        z = np.exp(0.3 * f(p["P"]))
        if reduce == "sum":
            return np.sum(weights * z)
        if reduce == "mean_keepdims":
            return np.mean(z * weights, keepdims=True)[0, 0]
        return np.sum((z > 1.0) * z)  # a mask times a change: not fused (both change), still exact

    assert_exact(cost, {"P": rng.standard_normal((4, 5)) * 0.5})
    assert bool(calls) == (reduce != "mask_weights")


@pytest.mark.parametrize("n_runs", [1, 3, factored.RUNS + 2])
def test_factored_changes_expand_run_by_run_bit_for_bit(n_runs):
    table = rng.standard_normal((12, 3, 1, 7))
    rows = np.repeat(rng.choice(12, n_runs), rng.integers(1, 5, n_runs))
    factor = rng.standard_normal((rows.size, 1, 4, 7))
    out = factored.expand(factored.Factored(table, rows, factor, (3, 4, 7)))
    np.testing.assert_array_equal(out.values, table[rows] * factor)
    assert out.values.shape == (rows.size, 3, 4, 7) and not out.windows


def _normalizer(reduce):
    """Softmax normalizers of a rank-one change (a one-row change of relu(P @ X), times W), summed three ways."""
    def cost(p):
        Z = W @ np.maximum(p["P"] @ X, 0)
        if reduce == "sum":
            return np.sum(R[0] * np.log(np.sum(np.exp(Z), axis=0)))
        if reduce == "mean_keepdims":
            return np.sum(R[:1] * np.log(np.mean(np.exp(0.5 * Z - 1.0), axis=0, keepdims=True)))
        return np.sum(np.exp(Z) * R)  # a weighted sum of exp: the series does not apply (no sum reads exp)

    return cost


@pytest.mark.parametrize("reduce", ["sum", "mean_keepdims", "weighted"])
def test_exp_sums_take_the_series_at_small_steps_and_the_plain_path_at_large_ones(reduce, monkeypatch):
    from fastcheck.engines.traced import evaluate

    seen = []
    series = evaluate.exp_sum
    monkeypatch.setattr(evaluate, "exp_sum", lambda *a: seen.append(series(*a)) or seen[-1])
    P = rng.standard_normal((4, 5))
    cost = _normalizer(reduce)
    assert_exact(cost, {"P": P}, step=1e-7)
    small = [c is not NotImplemented for c in seen]
    seen.clear()
    assert_exact(cost, {"P": P}, step=0.5)
    large = [c is not NotImplemented for c in seen]
    if reduce == "weighted":
        assert not small and not large
    else:
        assert small and all(small)
        assert large and not any(large)


@pytest.mark.parametrize("step", [1e-7, 3e-6, 1e-3])
def test_exp_sums_by_series_equal_the_plain_rule(step):
    """The series and ``exp`` then ``sum`` agree to rounding of the change itself, not only of J."""
    from fastcheck.core.layout import Layout
    from fastcheck.engines.traced.evaluate import plan, point_changes, run
    from fastcheck.engines.traced.tracing import trace

    cost = _normalizer("sum")
    params = {"P": rng.standard_normal((4, 5))}
    layout, theta = Layout.from_params(params)
    graph = trace(cost, layout, theta)
    local = np.arange(theta.size)
    steps = np.concatenate([np.full(20, step), np.full(20, -step)])
    leaf = point_changes((4, 5), np.concatenate([local, local]), steps)
    order = plan(graph, [graph.params[0]])
    series, _, _ = run(graph, order, {graph.params[0]: leaf}, {})
    order.series = {}
    plain, _, _ = run(graph, order, {graph.params[0]: leaf}, {})
    np.testing.assert_allclose(series, plain, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("shape", ["difference", "nested", "broadcast"])
def test_sums_and_differences_read_by_a_weighted_sum_are_weighted_term_by_term(shape, monkeypatch):
    from fastcheck.engines.traced import evaluate, fused

    made = []
    monkeypatch.setattr(evaluate, "Terms", type("Counted", (fused.Terms,), {
        "of": classmethod(lambda cls, node, inputs: made.append(1) or fused.Terms.of.__func__(cls, node, inputs))}))

    def cost(p):
        Z = W @ np.maximum(p["P"] @ X, 0)  # rank one: weighted through its table
        row = np.tanh(p["P"][:1] @ X)  # (1, 9): broadcast along the rows of Z
        if shape == "difference":
            inner = Z - row
        elif shape == "nested":
            inner = -(Z + row) - (np.square(Z) - Z)
        else:
            inner = row + np.log(np.sum(np.exp(Z), axis=0, keepdims=True))
        return np.sum(R * inner) + np.mean(inner * 0.5)  # the second weighted sum reads inner too: not fused

    assert_exact(cost, {"P": rng.standard_normal((4, 5))}, step=1e-7)
    assert_exact(cost, {"P": rng.standard_normal((4, 5))})
    assert not made  # two readers: inner runs

    def single(p):
        Z = W @ np.maximum(p["P"] @ X, 0)
        row = np.tanh(p["P"][:1] @ X)
        inner = {"difference": lambda: Z - row, "nested": lambda: -(Z + row) - (np.square(Z) - Z),
                 "broadcast": lambda: row + np.log(np.sum(np.exp(Z), axis=0, keepdims=True))}[shape]()
        return np.sum(R * inner)

    assert_exact(single, {"P": rng.standard_normal((4, 5))}, step=1e-7)
    assert_exact(single, {"P": rng.standard_normal((4, 5))})
    assert made


@pytest.mark.parametrize("index", ["one", "fancy", "slice"])
def test_elementwise_operations_read_by_an_index_run_on_the_entries_read(index, monkeypatch):
    from fastcheck.engines.traced import evaluate

    calls = []
    picked = evaluate.picked
    monkeypatch.setattr(evaluate, "picked", lambda *a: calls.append(1) or picked(*a))
    y = np.array([2, 0, 5, 1, 3, 2, 4, 0, 1])

    def cost(p):
        Z = np.tanh(p["P"].T @ p["P"]) @ X  # (5, 9), dense
        e = np.exp(Z - np.max(Z, axis=0))
        probs = e / np.sum(e, axis=0)  # read only by the index below
        if index == "one":
            return -np.log(probs[2, 3]) + np.sum((Z * Z)[1])
        if index == "fancy":
            return -np.sum(np.log(probs[y[:5] % 5, np.arange(5)]))
        return np.sum(np.sqrt(probs + 1.0)[1:4, ::2])

    P = rng.standard_normal((4, 5))
    assert_exact(cost, {"P": P})
    assert_exact(cost, {"P": P}, step=1e-7)
    assert calls


def test_zero_changes_stop_where_they_are(monkeypatch):
    """A recurrence from a zero state: ``W @ zeros`` does not change, and nothing runs on from it; exact."""
    from fastcheck.engines.traced import evaluate

    dropped = []
    nonzero = evaluate._nonzero
    monkeypatch.setattr(evaluate, "_nonzero", lambda c, k: (lambda out: dropped.append(out is None and c is not None)
                                                            or out)(nonzero(c, k)))

    def cost(p):
        h = np.zeros((4, 1))
        total = 0.0
        for t in range(3):
            h = np.tanh(p["W"] @ h + p["U"] @ X[:, t:t + 1])
            total = total + np.sum(h * R[:4, t:t + 1])
        return total

    params = {"W": rng.standard_normal((4, 4)), "U": rng.standard_normal((4, 5))}
    assert_exact(cost, params)
    assert any(dropped)


def test_coordinates_that_change_nothing_until_late_run_together_and_stay_exact(monkeypatch):
    """An RNN's input weights: a character's column changes nothing before the character is read."""
    from traced_models import rnn

    from fastcheck.core.layout import Layout
    from fastcheck.core.objective import CostObjective
    from fastcheck.engines.traced import engine as traced

    cost, params, _ = rnn(n_a=32, vocab=27, T=20)
    layout, theta = Layout.from_params(params)
    objective = CostObjective(cost, layout)
    objective.base(theta)
    wax = layout.groups[0]
    assert wax.name == "Wax" and wax.size > traced.MIN_START_CUT
    indices = np.arange(layout.n_params)
    engine = traced.traced_engine(objective, layout, theta, 1e-4, n_threads=2)
    chunks = []
    chunk = engine._chunk
    monkeypatch.setattr(engine, "_chunk", lambda position, local: chunks.append((position, local)) or chunk(position,
                                                                                                             local))
    ev = engine.coordinates(indices)
    order, starts = engine._start_order(0, np.arange(wax.size))
    assert starts is not None and len(set(starts.tolist())) > 2  # columns start at different steps
    assert sum(1 for p, _ in chunks if p == 0) > 2  # and run in chunks cut where they start
    last = wax.start + int(order[-1])  # a column never read: the last chunk
    for i in np.random.default_rng(3).choice(layout.n_params, 60, replace=False).tolist() + [last]:
        for sign, traced_value in ((1, ev.cost_plus[i]), (-1, ev.cost_minus[i])):
            work = theta.copy()
            work[i] += sign * 1e-4
            np.testing.assert_allclose(traced_value, cost(layout.unflatten(work)), rtol=0, atol=64 * 2.0**-52 * 30)
    monkeypatch.setattr(traced.TracedEngine, "_start_order", lambda self, p, local: (np.arange(local.size), None))
    plain = traced.traced_engine(objective, layout, theta, 1e-4, n_threads=2).coordinates(indices)
    np.testing.assert_allclose(ev.cost_plus, plain.cost_plus, rtol=0, atol=64 * 2.0**-52 * 30)
    np.testing.assert_allclose(ev.numeric, plain.numeric, rtol=1e-9, atol=1e-12)
