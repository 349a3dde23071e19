"""What the traced engine follows of user-style code, and what it refuses, with the reason and the line.

Each supported form is held to full evaluations (``assert_exact``: the incremental J+-
equal the cost's own at every coordinate); each refused one gives its reason, and through
``fc.check`` the right answer from the reference loop. The forms come from the courses'
code: CS231n's ``x.reshape(N, -1).dot(w)`` on the plain data, its ``svm_loss`` (masks and
counts of masks written into a plain ``dx``), ``np.float64(loss)`` as the last step,
in-place writes into a ``.copy()`` of a parameter.
"""

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from test_traced_ops import FOOTPRINTS, B, assert_exact, assert_operation_exact, incremental_and_full

import fastcheck as fc
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.engines.traced import NotTraceable, traced_engine
from fastcheck.engines.traced.tracing import trace

rng = np.random.default_rng(11)
X = rng.standard_normal((6, 2, 3))  # CS231n's images as rows: (N, d1, d2), flattened by the layer
Y = rng.integers(0, 4, 6)
PARAMS = {"W": 0.5 * rng.standard_normal((6, 4)), "b": 0.1 * rng.standard_normal(4)}


def _trace(cost, params=PARAMS):
    layout, theta = Layout.from_params(params)
    return trace(cost, layout, theta)


# ---------------------------------------------------------------------- 1. a plain array's .dot()
def _affine(p):  # CS231n's affine_forward, as the assignment writes it
    return np.sum(np.tanh(X.reshape(X.shape[0], -1).dot(p["W"]) + p["b"]))


def _softmax_scores(p):  # the product used as the array it stands for: attributes, methods, in-place, indexing
    scores = X.reshape(6, -1).dot(p["W"])
    N, C = scores.shape
    scores -= scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.sum(np.exp(scores), axis=1, keepdims=True))
    return -np.sum(log_probs[np.arange(N), Y]) / len(scores) + 0.0 * C


def _vector(p):  # a 1-D argument, a product on the right of a traced operand, in a function
    h = X.reshape(6, -1).dot(p["W"][:, 0])
    return np.sum(p["b"][0] * h) + np.sum(np.concatenate([h, X.reshape(6, -1).dot(p["b"][:1].repeat(6))]) ** 2)


def _chain(p):  # the product's own .dot() and @, and its transpose
    h = X.reshape(6, -1).dot(p["W"])
    return np.sum(h.dot(p["W"].T) ** 2) + np.sum((h.T @ h) * 0.1) + float(np.sum(h[0]) > 100)


def _in_a_loop(p):  # an RNN-like loop: the same line, one new product per step
    a = np.zeros(4)
    for t in range(3):
        a = np.tanh(X[t].reshape(-1).dot(p["W"]) + a * p["b"])
    return np.sum(a)


def _returned(p):  # the product itself is what the cost returns; integer data
    return (X[0] > 0).astype(int).reshape(-1).dot(p["W"][:, 0])


@pytest.mark.parametrize("cost", [_affine, _softmax_scores, _vector, _chain, _in_a_loop, _returned],
                         ids=lambda f: f.__name__)
def test_a_plain_arrays_dot_is_followed(cost):
    graph = _trace(cost)
    assert graph.cost == cost(PARAMS)
    assert sum(node.op == "einsum" for node in graph.nodes) >= 1
    assert_exact(cost, PARAMS, magnitude=10.0)


def _dot_of_a_product(p):
    return np.sum(np.ones((3, 6)).dot(X.reshape(6, -1).dot(p["W"])))


def _three_d_argument(p):
    return np.sum(np.ones((2, 4)).dot(p["W"].reshape(2, 3, 4)))


def _escaping_product(p):  # the product's memory read by np.asarray: poisoned, the verification refuses
    return np.sum(np.asarray(X.reshape(6, -1).dot(p["W"]))[:, :4]) + np.sum(p["W"] ** 2)


def _list_argument(p):  # numpy builds a plain array from the list: the product cannot be followed
    square = np.concatenate([p["W"], p["W"][:, :2]], axis=1)
    return np.sum(X.reshape(6, -1).dot([square[i] for i in range(6)]))


def _out_keyword(p):
    return np.sum(X.reshape(6, -1).dot(p["W"], out=np.empty((6, 4))))


@pytest.mark.parametrize(("cost", "reason"), [
    (_dot_of_a_product, r"used by code numpy does not dispatch \(another plain \.dot\(\)"),
    (_list_argument, r"could not be followed \(its argument was not the traced array itself"),
    (_out_keyword, r"to a plain numpy array at test_traced_coverage\.py:\d+ "
                   r"\(`X\.reshape\(6, -1\)\.dot\(p\[\"W\"\], out="),
    (_three_d_argument, r"a plain numpy array's \.dot\(\) is called with a traced argument at "
                        r"test_traced_coverage\.py:\d+ "
                        r"\(`np\.ones\(\(2, 4\)\)\.dot\(p\[.W.\]\.reshape\(2, 3, 4\)\)`\).*"
                        r"write np\.dot\(np\.ones\(\(2, 4\)\), p\[.W.\]\.reshape\(2, 3, 4\)\)"),
], ids=["dot_of_a_product", "list_argument", "out_keyword", "three_d_argument"])
def test_a_plain_dot_that_cannot_be_followed_says_what_to_write(cost, reason):
    with pytest.raises(NotTraceable, match=reason):
        _trace(cost)


def test_an_escaping_product_is_refused_by_the_verification():
    layout, theta = Layout.from_params(PARAMS)
    with pytest.raises(NotTraceable, match="differs from the cost"):
        traced_engine(CostObjective(_escaping_product, layout), layout, theta, 1e-7)
    report = fc.check(_escaping_product, PARAMS, {"W": 2 * PARAMS["W"], "b": np.zeros(4)}, mode="subset",
                      n_samples=6)
    assert report.settings["engine"] == "reference" and "differs from the cost" in report.settings["traced_not_used"]


# ---------------------------------------------------------------------- 2. the final conversion
FINAL = {
    "np.float64": lambda p: np.float64(np.sum(p["W"] ** 2) + np.sum(np.exp(p["b"]))),
    "float": lambda p: float(np.sum(p["W"] ** 2) + np.sum(np.exp(p["b"]))),
    "item": lambda p: (np.sum(p["W"] ** 2) + np.sum(np.exp(p["b"]))).item(),
    "np.float64 of an item": lambda p: np.float64(np.sum(p["W"] ** 2).item()),
}


@pytest.mark.parametrize("name", list(FINAL))
def test_converting_the_final_scalar_is_the_cost(name):
    cost = FINAL[name]
    graph = _trace(cost)
    assert graph.cost == cost(PARAMS) and graph.nodes[graph.output].op in ("add", "sum")
    assert_exact(cost, PARAMS, magnitude=10.0)


def _converted_then_computed(p):
    loss = float(np.sum(p["W"] ** 2))
    return loss * 2.0


def _converted_mid_graph(p):
    return float(np.sum(p["W"])) * np.sum(p["W"] ** 2)


@pytest.mark.parametrize("cost", [_converted_then_computed, _converted_mid_graph], ids=lambda f: f.__name__)
def test_a_conversion_before_the_end_names_its_line(cost):
    with pytest.raises(NotTraceable, match=r"to a Python number .* before its end at test_traced_coverage\.py:\d+ "
                                           r"\(`float\(np\.sum\(p\[\"W\"\]"):
        _trace(cost)


# ---------------------------------------------------------------------- 3. in-place writes into the cost's own arrays
def _masked_copy(p):
    W = p["W"].copy()
    W[np.abs(PARAMS["W"]) < 0.2] = 0.0
    W += 0.5 * p["W"]
    W[:, 1] *= 2.0
    return np.sum(np.tanh(X.reshape(6, -1) @ W + p["b"]))


def _derived(p):
    a = p["W"] * 1.5
    a[a < 0] = 0.0  # a mask of the array itself
    b = np.copy(p["b"])
    b[0] = 1.0
    b -= p["b"] ** 2
    return np.sum(a ** 2) + np.sum(np.exp(b))


@pytest.mark.parametrize("cost", [_masked_copy, _derived], ids=lambda f: f.__name__)
def test_in_place_updates_of_copies_and_derived_arrays(cost):
    assert _trace(cost).cost == cost(PARAMS)
    assert_exact(cost, PARAMS, magnitude=10.0)


def _through_a_view(p):  # numpy writes an update of a basic-index view through to its base
    W = p["W"] * 1.0
    W[1] += p["b"]
    column = W[:, 3]
    column *= 2.0
    del column  # a live view would go stale at the next update of W: refused (below)
    W[2:4, ::2] -= 0.5
    return np.sum(W ** 3)


def test_an_update_of_a_view_writes_through_to_its_base():
    assert _trace(_through_a_view).cost == _through_a_view(PARAMS)
    assert_exact(_through_a_view, PARAMS, magnitude=10.0)


def test_an_update_of_one_of_two_views_is_refused():
    def cost(p):
        W = p["W"] * 1.0
        row, column = W[0], W[:, 1]
        column *= 2.0
        return np.sum(row) + np.sum(W)

    with pytest.raises(NotTraceable, match=r"shares memory with another traced array \(a view\) at "):
        _trace(cost)


def test_in_place_update_of_a_parameter_is_refused_with_its_line():
    def cost(p):
        W = p["W"]
        W[0] = 0.0
        return np.sum(W)

    with pytest.raises(NotTraceable, match=r"modifies its parameters in place at test_traced_coverage\.py:\d+ "
                                           r"\(`W\[0\]`\); work on a \.copy\(\)"):
        _trace(cost)


# ---------------------------------------------------------------------- 4. masks and counts read by plain code
def _svm_loss(x, y):  # CS231n's svm_loss as the assignment writes it, dx and all
    N = x.shape[0]
    correct = x[np.arange(N), y]
    margins = np.maximum(0, x - correct[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    num_pos = np.sum(margins > 0, axis=1)
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx[np.arange(N), y] -= num_pos
    dx /= N
    return loss, dx


def _svm(p):
    return _svm_loss(X.reshape(6, -1).dot(p["W"]) + p["b"], Y)[0]


def test_svm_loss_is_traced_with_its_masks_as_guards():
    graph = _trace(_svm)
    assert graph.cost == _svm(PARAMS) and graph.guards
    assert sorted(graph.nodes[g].op for g in graph.guards) == ["greater", "sum"]  # the mask and its count
    assert_exact(_svm, PARAMS, magnitude=10.0)


def _mask_into_plain(p):  # plain code computes from a mask; its result reaches the cost
    z = X.reshape(6, -1) @ p["W"] + p["b"]
    active = np.asarray(z > 0.3).astype(np.float64)
    return np.sum(z * active) + 0.1 * np.sum(z ** 2)


def test_perturbations_that_change_a_guard_go_to_the_real_cost():
    """NaN exactly where a mask that plain code read flips (brute force); exact everywhere else."""
    traced, full, _ = incremental_and_full(_mask_into_plain, PARAMS, step=1e-1)
    layout, theta = Layout.from_params(PARAMS)
    base = (X.reshape(6, -1) @ PARAMS["W"] + PARAMS["b"]) > 0.3
    flipped = []
    for sign in (1, -1):
        for i in range(layout.n_params):
            work = theta.copy()
            work[i] = theta[i] + (sign * 0.1 + theta[i] - theta[i])
            p = layout.unflatten(work)
            flipped.append(bool(((X.reshape(6, -1) @ p["W"] + p["b"] > 0.3) != base).any()))
    groups = [np.arange(g.size) for g in layout.groups]
    order = np.concatenate([np.concatenate([g.start + local, layout.n_params + g.start + local])
                            for g, local in zip(layout.groups, groups)])
    flipped = np.array(flipped)[order]
    assert flipped.any() and not flipped.all()
    np.testing.assert_array_equal(np.isnan(traced), flipped)
    np.testing.assert_allclose(traced[~flipped], full[~flipped], rtol=0, atol=1e-13)


def test_a_guarded_cost_through_check_agrees_with_the_reference():
    """Example 1's unit 2 sits 1e-9 above the mask's threshold: perturbations of b2 and W[:, 2] flip it."""
    b = PARAMS["b"].copy()
    b[2] += 0.3 + 1e-9 - (X.reshape(6, -1) @ PARAMS["W"] + b)[1, 2]
    params = {"W": PARAMS["W"], "b": b}
    z = X.reshape(6, -1) @ params["W"] + b
    dz = (z > 0.3) + 0.2 * z
    grads = {"W": X.reshape(6, -1).T @ dz, "b": dz.sum(axis=0)}
    report = fc.check(_mask_into_plain, params, grads)
    reference = fc.check(_mask_into_plain, params, grads, engine="reference")
    assert report.settings["engine"] == "traced"
    assert [g.verdict for g in report.groups] == [g.verdict for g in reference.groups]
    assert report.n_kinks == reference.n_kinks == 7  # the jump of the mask, a tie as the reference sees it
    assert report.passed


# ---------------------------------------------------------------------- 6. branches: guards too
def _svm_loss_naive(p):  # CS231n's svm_loss_naive, as assignment 1 writes it: loops and an `if`
    W, Xf = p["W"], X.reshape(6, -1)
    dW = np.zeros(W.shape)
    loss = 0.0
    for i in range(Xf.shape[0]):
        scores = Xf[i].dot(W)
        correct_class_score = scores[Y[i]]
        for j in range(W.shape[1]):
            if j == Y[i]:
                continue
            margin = scores[j] - correct_class_score + 1
            if margin > 0:
                loss += margin
                dW[:, j] += Xf[i]
                dW[:, Y[i]] -= Xf[i]
    return loss / Xf.shape[0] + 0.5 * 0.1 * np.sum(W * W), dW / Xf.shape[0] + 0.1 * W


def test_svm_loss_naive_branches_are_guards():
    """Every `if margin > 0` is a guard: the check is traced, agrees with the reference, and names a bug."""
    params = {"W": PARAMS["W"]}
    graph = _trace(lambda p: _svm_loss_naive(p)[0], params)
    assert len(graph.guards) == 6 * 3
    _, grads = _svm_loss_naive(params)
    bad = grads.copy()
    bad[4, 2] *= 1.2
    for gradient, passed in ((grads, True), (bad, False)):
        report = fc.check(lambda p: _svm_loss_naive(p)[0], params, {"W": gradient})
        reference = fc.check(lambda p: _svm_loss_naive(p)[0], params, {"W": gradient}, engine="reference")
        assert report.settings["engine"] == "traced" and report.passed is passed is reference.passed
    assert (report.worst(1)[0].group, report.worst(1)[0].index) == ("W", (4, 2))


def test_a_branch_on_an_array_names_its_line():
    def cost(p):
        z = p["W"] @ np.ones(4)
        return np.sum(z) if (z > 0).any() and z else 0.0  # one guard, then an array's truth value

    with pytest.raises(NotTraceable, match=r"branches on a traced array of 6 entries at test_traced_coverage\.py:\d+"):
        _trace(cost)


def test_python_math_on_a_traced_value_names_its_line():
    def cost(p):
        return math.exp(p["b"][0]) + np.sum(p["W"])

    with pytest.raises(NotTraceable, match=r"before its end at test_traced_coverage\.py:\d+ \(`math\.exp\(p\[\"b\"\]"):
        _trace(cost)


# ------------------------------------------------------------ 5. the operations, beyond test_traced_ops
def _in_place_chain(z):
    a = z * 1.0
    a *= z
    a /= 2.0
    a -= z
    a **= 2
    np.tanh(a, out=a)
    return a


EXTRA = {
    "einsum_diagonal": lambda z: np.einsum("ii->i", z[:, :4]) ** 2,
    "einsum_trace": lambda z: np.einsum("ii", z[:, :4]) * z,
    "einsum_rowwise_dot": lambda z: np.einsum("ij,ij->i", z, z),
    "einsum_ellipsis": lambda z: np.einsum("...j,jk->...k", z, B),
    "einsum_optimize": lambda z: np.einsum("ij,jk,kl->il", z, B, B.T, optimize=True),
    "matmul_function": lambda z: np.matmul(z, B),
    "tensordot_int": lambda z: np.tensordot(z, B, 1),
    "tensordot_full": lambda z: np.tensordot(z, z, 2) * z,
    "dot_method": lambda z: z.dot(B),
    "dot_vectors": lambda z: np.dot(z[0], z[1]) * z,
    "maximum_traced_pair": lambda z: np.maximum(z, z[::-1]),
    "minimum_traced_pair": lambda z: np.minimum(z, 0.5 * z[:, ::-1]),
    "where_traced_condition": lambda z: np.where(z > z.mean(), np.exp(z), z ** 2),
    "stable_sigmoid": lambda z: np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z))),
    "mean_of_mask": lambda z: np.mean(z > 0) * z,
    "sum_negative_axis": lambda z: z.sum(axis=-1, keepdims=True) * z,
    "mean_axis_tuple": lambda z: z.reshape(2, 2, 6).mean(axis=(0, 2)),
    "max_axis_tuple": lambda z: z.reshape(2, 2, 6).max(axis=(1, 2)),
    "add_reduce": lambda z: np.add.reduce(z, axis=1) ** 2,
    "var_ddof": lambda z: np.var(z, axis=1, ddof=1),
    "std_all": lambda z: z.std() * z,
    "amin_all": lambda z: np.amin(z) * z,
    "clip_method": lambda z: z.clip(-0.3, 0.3),
    "clip_one_sided": lambda z: np.clip(z, 0, None),
    "log_of_clip": lambda z: np.log(np.clip(z * z, 1e-3, None)),
    "repeat_method": lambda z: z.repeat(3, axis=1) ** 2,
    "repeat_flat": lambda z: np.repeat(z, 2) ** 2,
    "stack_last": lambda z: np.stack([z, z ** 2], axis=-1),
    "hstack_vstack": lambda z: np.vstack([np.hstack([z, z[:, :1]]), np.ones((1, 7))]) ** 2,
    "concatenate_rows": lambda z: np.concatenate([z[:2], np.ones((1, 6)), z], axis=0) ** 2,
    "expand_dims_negative": lambda z: np.expand_dims(z, -1) * np.ones(3),
    "squeeze_axis": lambda z: np.squeeze(z[:, None, :], axis=1) ** 2,
    "transpose_axes": lambda z: np.transpose(z.reshape(2, 2, 6), (2, 0, 1)) ** 2,
    "moveaxis": lambda z: np.moveaxis(z.reshape(2, 2, 6), 0, -1) ** 2,
    "flatten": lambda z: np.sin(z.flatten()),
    "reshape_minus_one": lambda z: z.reshape(-1, 3) @ np.ones(3),
    "T_of_a_product": lambda z: (z @ B).T ** 2,
    "negative_indices": lambda z: z[-1] * z[:, -2:].sum(),
    "labels_picked": lambda z: np.log(np.sum(np.exp(z), axis=1))[None] - z[np.arange(4), [5, 0, 3, 3]],
    "broadcast_arrays": lambda z: np.broadcast_arrays(z[:, :1], z)[0] * z,
    "any_all": lambda z: z * (z > 0).any(axis=1, keepdims=True) + z * np.all(z > -1) + np.any(z, axis=0),
    "take": lambda z: np.take(z, [0, 2, 2], axis=1) ** 2,
    "pad_scalar_width": lambda z: np.pad(z, 1) ** 2,
    "pad_constant_value": lambda z: np.pad(z, ((0, 0), (1, 2)), constant_values=0.5) ** 2,
    "sliding_window_2d": lambda z: sliding_window_view(z, (2, 3)).max(axis=(2, 3)),
    "softmax": lambda z: np.exp(z - z.max(axis=1, keepdims=True)) / np.exp(z - z.max(axis=1, keepdims=True)).sum(
        axis=1, keepdims=True),
    "traced_exponent": lambda z: np.power(np.abs(z) + 1.0, z),
    "sqrt_of_sum": lambda z: np.sqrt(np.sum(z ** 2)) * z,
    "in_place_chain": _in_place_chain,
}


@pytest.mark.parametrize("footprint", list(FOOTPRINTS))
@pytest.mark.parametrize("op", list(EXTRA))
def test_more_operations_change_as_full_evaluations(op, footprint):
    assert_operation_exact(op, EXTRA[op], footprint)
