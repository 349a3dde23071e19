"""The batched engine for the built-in MLP: every coordinate, exact reuse, Numba kernels.

A perturbation of ``Wl[j, k]`` or ``bl[j]`` cannot change anything before layer l and
changes only row j of Zl, by ``t_e = d * A_{l-1}[k, e]`` (``t_e = d`` for the bias), where
``d = fl(theta_i +- eps) - theta_i`` is the step the reference engine actually takes. The
engine caches the base forward pass once and, per coordinate and example, computes only
what changes:

* **general path** (any activation, any depth): the change of the row is pushed through
  the later layers as *changes* (``dZ_{h+1} = W_{h+1} dA_h``), each activation change
  and the loss change evaluated by exact identities without cancellation
  (:mod:`fastcheck.engines.mlp.kernels`);
* **smooth shortcut** (tanh, sigmoid; :mod:`fastcheck.engines.mlp.smooth`): each example's
  loss change in the change of row j is a Taylor polynomial whose coefficients every
  coordinate of row j shares, with a certified bound on its truncation remainder per
  example; the coordinates' sums are one matrix product per degree. Examples whose
  certificate fails take the general path;
* **linear shortcut** (relu, leaky relu, identity): while no hidden unit can change state
  (certified per example from the margins ``|Z|`` of every later hidden layer, with a
  factor 2 of safety), the logits change by exactly ``G[j, e] * t`` with
  ``G[j, e] = W_L diag(s_{L-1}) ... W_{l+1} diag(s_l) e_j``, ``s`` the slopes of the base
  pass; examples where a relu unit stays off change nothing and are skipped. Examples
  whose certificate fails take the general path.

The cost changes are summed per coordinate over the examples, in example order, by one
thread: ``dJ = sum_e dloss_e / m + (lambda / 2m) d (2 w + d)``. The numeric gradient is
``(dJ+ - dJ-) / (2 eps)`` and ``J +- = J + dJ+-``: no difference of two full costs.
"""

from __future__ import annotations

import numpy as np

from ...core.finite import coordinate_gradient, step_at
from ...core.layout import Layout
from ...core.limits import DEFAULT_MAX_MEMORY
from ...core.results import Evaluations
from ...core.threads import blas_limited, in_chunks, numba_threads
from ...mlp.functions import NEGATIVE_SLOPE, PIECEWISE_LINEAR, cost_from_logits, output_aux, sigmoid
from ..reference import reference_engine
from . import kernels, smooth
from .objective import MLPObjective

__all__ = ["batched_engine", "base_pass", "warm_kernels", "DEFAULT_MAX_MEMORY"]


HIDDEN_CODES = {"relu": kernels.RELU, "leaky_relu": kernels.LEAKY_RELU, "tanh": kernels.TANH,
                "sigmoid": kernels.SIGMOID, "identity": kernels.IDENTITY}
OUTPUT_CODES = {"softmax": kernels.SOFTMAX_CE, "sigmoid": kernels.SIGMOID_BCE, "identity": kernels.IDENTITY_MSE}
#: Certified changes stay below this fraction of the margin to the nearest kink.
SAFETY = 0.5

def batched_engine(net, params: dict, X: np.ndarray, Y: np.ndarray, indices: np.ndarray, eps: float, *,
                   max_memory: int | None = None, n_threads: int | None = None, base=None,
                   notes: dict | None = None) -> Evaluations:
    """Central differences of ``net``'s cost at ``indices``, exactly, by reuse of the base pass.

    Parameters
    ----------
    net : fastcheck.MLP
    params : dict of str -> ndarray
        ``W1 (n_1, n_0), b1 (n_1, 1), ...``: C-contiguous float64, already validated.
    X : ndarray of shape (n_0, m)
    Y : ndarray of shape (n_L, m)
    indices : ndarray of int64, shape (k,)
        Flat coordinates of theta (``W1.ravel(), b1.ravel(), W2.ravel(), ...``), any order.
    eps : float, or ndarray of float64 of shape (n,)
        The step, or each coordinate's (``eps="auto"``).
    max_memory : int, optional
        Bytes of kernel temporaries at once (default :data:`DEFAULT_MAX_MEMORY`); rows of
        coordinates are split into smaller tasks to fit. Results do not depend on it.
    n_threads : int, optional
        Numba threads (default: numba's current setting); restored afterwards.
    base : optional
        The base pass from :func:`base_pass` for these ``net, params, X, Y``, to reuse
        across calls on chunks of coordinates (it keeps what it derives per layer).
    notes : dict, optional
        Where coordinates were evaluated by full forward passes instead (below), their
        count is added to ``notes["full_passes"]``, for the report's settings.

    Returns
    -------
    Evaluations
        Aligned with ``indices``; ``n_evaluations = 2 * len(indices)``.

    Notes
    -----
    Every ``cost_plus[p]``/``cost_minus[p]`` equals ``net.cost`` on the perturbed
    parameters to float64 rounding; ``numeric = (dJ+ - dJ-) / (2 eps)`` where ``dJ+-`` are
    the exact cost changes, so the rounding noise of the two full costs never enters.
    ``kinks[p]`` is true when a relu-like hidden unit changes state (``Z > 0``) for some
    example under the + or - step, as :class:`fastcheck.engines.mlp.objective.MLPObjective` reports.
    Where the identities overflow (inputs of 1e8 and more saturate tanh and sigmoid units
    so that ``tanh(x) sech^2(z) / (1 + tanh(z) tanh(x))`` is 0/0), a coordinate whose change
    is not finite is evaluated again by full forward passes, as the reference engine does.
    """
    indices = np.asarray(indices, dtype=np.int64)
    max_memory = DEFAULT_MAX_MEMORY if max_memory is None else int(max_memory)
    with numba_threads(n_threads) as threads, blas_limited():  # numba's threads do the parallel work
        if base is None:
            base = _BasePass(net, params, X, Y)
        theta = np.concatenate([np.ravel(params[name]) for name in net.shapes])
        originals = theta[indices]
        nominal, eps = eps, step_at(eps, indices)  # one step, or each coordinate's (eps="auto")
        d_plus = (originals + eps) - originals
        d_minus = (originals - eps) - originals
        sum_plus, sum_minus = np.zeros(indices.size), np.zeros(indices.size)
        kinks = np.zeros(indices.size, dtype=bool)
        layer_of, row_of, col_of = _locate(net, indices)
        for layer in range(1, net.n_layers + 1):
            mine = np.flatnonzero(layer_of == layer)
            if mine.size == 0:
                continue
            width = net.layers[layer - 1] + 1
            order = mine[np.argsort(row_of[mine] * width + col_of[mine], kind="stable")]
            max_columns = _max_columns(net, max_memory, threads)
            tasks = _tasks(row_of[order], col_of[order], max_columns)
            steps = (d_plus[order], d_minus[order])
            if smooth.covers(net, layer):  # certified polynomials, the general path where they fail
                results = _smooth_sums(base, layer, nominal, tasks, steps, max_columns, threads)
            else:
                results = (np.empty(order.size), np.empty(order.size), np.empty(order.size, dtype=bool))
                ain_t = base.inputs_t(layer)
                _parallel(kernels.layer_kernel, tasks.rows.size, threads, base.codes, layer, tasks, steps, ain_t,
                          np.abs(ain_t).max(axis=1), base.linear(layer, max_memory, threads), base.packed, base.out,
                          results)
            sum_plus[order], sum_minus[order], kinks[order] = results
    m = X.shape[1]
    is_weight = col_of < np.array(net.layers)[layer_of - 1]
    l2_scale = net.l2 / (2.0 * m)
    dj_plus = sum_plus / m + np.where(is_weight, l2_scale * d_plus * (2.0 * originals + d_plus), 0.0)
    dj_minus = sum_minus / m + np.where(is_weight, l2_scale * d_minus * (2.0 * originals + d_minus), 0.0)
    if not net.has_kinks:
        kinks[:] = False
    numeric = coordinate_gradient(dj_plus, dj_minus, originals, eps)  # over the steps taken, not 2 eps
    result = Evaluations(indices, base.cost + dj_plus, base.cost + dj_minus, numeric, kinks, 2 * indices.size)
    bad = np.flatnonzero(~(np.isfinite(dj_plus) & np.isfinite(dj_minus)))
    if bad.size:
        _full_passes(net, params, X, Y, eps, result, bad)
        if notes is not None:
            notes["full_passes"] = notes.get("full_passes", 0) + int(bad.size)
    return result


def _full_passes(net, params, X, Y, eps, result, at):
    """Re-evaluate ``result``'s coordinates ``at`` by full forward passes (the reference engine), in place."""
    layout, theta = Layout.from_params(params)
    objective = MLPObjective(net, layout, X, Y)
    objective.base(theta)
    again = reference_engine(objective, theta, result.indices[at], eps if np.ndim(eps) == 0 else eps[at])
    for field in ("cost_plus", "cost_minus", "numeric", "kinks"):
        getattr(result, field)[at] = getattr(again, field)
    result.n_evaluations += again.n_evaluations


def _smooth_sums(base, layer, eps, tasks, steps, max_columns, threads):
    """``(sum_plus, sum_minus, kinks)`` of the coordinates of ``tasks`` by :mod:`.smooth`.

    The polynomials cover the certified examples of each row; the others are summed by
    :func:`kernels.layer_kernel`'s general path (a linear shortcut with bound 0 there, and
    bound inf and slope 0, i.e. skipped, where the polynomials hold) and added.
    """
    poly = base.smooth(layer, eps)
    rows = np.repeat(tasks.rows, np.diff(tasks.starts))
    results = (np.empty(rows.size), np.empty(rows.size), np.zeros(rows.size, dtype=bool))
    results[0][:], results[1][:] = poly.sums(rows, tasks.ks, steps)
    left = np.flatnonzero(~poly.certified.all(axis=1)[rows])
    if left.size:
        ain_t = base.inputs_t(layer)
        lin = kernels.Linear(np.zeros((1, 1, base.net.layers[-1])), np.where(poly.certified, np.inf, 0.0),
                             np.where(poly.certified, 0.0, 1.0))
        rest = (np.empty(left.size), np.empty(left.size), np.empty(left.size, dtype=bool))
        left_tasks = _tasks(rows[left], tasks.ks[left], max_columns)
        _parallel(kernels.layer_kernel, left_tasks.rows.size, threads, base.codes, layer, left_tasks,
                  (steps[0][left], steps[1][left]), ain_t, np.abs(ain_t).max(axis=1), lin, base.packed, base.out, rest)
        results[0][left] += rest[0]
        results[1][left] += rest[1]
    return results


def _parallel(kernel, n, threads, *args):
    """``kernel(*args, first, last)`` over ranges of its ``n`` independent tasks, on ``threads`` threads."""
    in_chunks(n, threads, lambda first, last: kernel(*args, first, last))


def _locate(net, indices):
    """Layer (1-based), row j and column k of each flat index; k = n_{l-1} is the bias."""
    sizes = []
    for layer in range(1, net.n_layers + 1):
        n_out, n_in = net.layers[layer], net.layers[layer - 1]
        sizes += [n_out * n_in, n_out]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group = np.searchsorted(starts, indices, side="right") - 1
    if indices.size and (indices.min() < 0 or indices.max() >= starts[-1]):
        raise IndexError(f"indices must lie in [0, {starts[-1]}) for {net!r}")
    layer = group // 2 + 1
    n_in = np.array(net.layers, dtype=np.int64)[layer - 1]
    offset = indices - starts[group]
    is_bias = group % 2 == 1
    row = np.where(is_bias, offset, offset // n_in)
    col = np.where(is_bias, n_in, offset % n_in)
    return layer.astype(np.int64), row.astype(np.int64), col.astype(np.int64)


def _max_columns(net, max_memory, threads):
    """Columns per task so that ``threads`` tasks' temporaries fit in ``max_memory`` bytes."""
    per_column = 8 * (2 * max(net.layers[1:]) + 12)
    return max(1, max_memory // (max(1, threads) * per_column))


def _tasks(rows, cols, max_columns):
    """CSR of row tasks over coordinates sorted by (row, column), split at ``max_columns``."""
    n = rows.size
    new_row = np.ones(n, dtype=bool)
    new_row[1:] = rows[1:] != rows[:-1]
    run_start = np.flatnonzero(new_row)
    position = np.arange(n) - np.repeat(run_start, np.diff(np.append(run_start, n)))
    starts = np.flatnonzero(new_row | (position % max_columns == 0))
    return kernels.Tasks(rows[starts].copy(), np.append(starts, n).astype(np.int64), cols.copy())


#: The kinds of network (hidden, output, depth) whose kernels :func:`warm_kernels` loaded in this process.
_WARM: set = set()


def warm_kernels(net) -> None:
    """Load (or compile, the first time) the kernels a check of ``net`` calls, on a tiny network of its kinds
    and depth, so that what is timed next is the engine's work alone (once per kind and process)."""
    kind = (net.hidden, net.output, net.n_layers)
    if kind in _WARM:
        return
    _WARM.add(kind)
    tiny = type(net)([min(width, 4) for width in net.layers], hidden=net.hidden, output=net.output, l2=net.l2)
    params = tiny.init(seed=0)
    X, Y = tiny.random_data(4, seed=1)
    batched_engine(tiny, params, X, Y, np.arange(tiny.n_params, dtype=np.int64), 1e-7)


def base_pass(net, params, X, Y):
    """The base forward pass of ``net``, packed for the kernels, for :func:`batched_engine`'s ``base``."""
    with blas_limited():
        return _BasePass(net, params, X, Y)


class _BasePass:
    """The cached base forward pass, packed for the kernels."""

    def __init__(self, net, params, X, Y):
        self._memo = {}
        self.net = net
        self.m = X.shape[1]
        self.params, self.Y = params, Y
        self.weights = [params[f"W{layer}"] for layer in range(1, net.n_layers + 1)]
        zs, acts = net.forward(params, X)
        self.zs, self.acts = zs, acts
        self.cost = cost_from_logits(net.output, zs[-1], Y, net.regularization(params, self.m))
        self.codes = (HIDDEN_CODES[net.hidden], OUTPUT_CODES[net.output])
        self.packed = self._pack(net, zs)
        self.out = self._output(net, zs[-1], Y)
        if net.hidden in NEGATIVE_SLOPE:
            self.slopes = [np.where(z > 0, 1.0, NEGATIVE_SLOPE[net.hidden]) for z in zs[:-1]]
        else:
            self.slopes = [np.ones_like(z) for z in zs[:-1]]

    def _pack(self, net, zs):
        dims = np.array(net.layers, dtype=np.int64)
        w_off = np.zeros(net.n_layers + 1, dtype=np.int64)
        w_off[1:] = np.cumsum([0] + [w.size for w in self.weights[:-1]])
        w_buf = np.concatenate([w.ravel() for w in self.weights])
        z_off = np.zeros(net.n_layers + 1, dtype=np.int64)
        z_off[1:] = np.cumsum([0] + [z.size for z in zs[:-1]])
        z_t = [np.ascontiguousarray(z.T) for z in zs]
        aux1, aux2 = [], []
        for z in z_t:
            if net.hidden == "tanh":
                aux1.append(np.tanh(z))
                q = np.exp(-2.0 * np.abs(z))
                aux2.append(4.0 * q / (1.0 + q) ** 2)  # sech^2, without overflow
            elif net.hidden == "sigmoid":
                aux1.append(sigmoid(z))
                aux2.append(sigmoid(-z))
            else:
                aux1.append(np.zeros_like(z))
                aux2.append(np.zeros_like(z))
        flat = [np.concatenate([a.ravel() for a in arrays]) for arrays in (z_t, aux1, aux2)]
        return kernels.Net(dims, w_off, w_buf, z_off, *flat)

    @staticmethod
    def _output(net, z_last, Y):
        aux = output_aux(net.output, z_last, Y)
        return kernels.Output(np.ascontiguousarray(aux.T), np.ascontiguousarray(Y.T),
                              np.ascontiguousarray(Y.sum(axis=0)))

    def inputs_t(self, layer):
        """``[A_{l-1}; 1]`` transposed, shape (m, n_{l-1} + 1); computed once per layer."""
        key = ("inputs", layer)
        if key not in self._memo:
            self._memo[key] = self._inputs_t(layer)
        return self._memo[key]

    def linear(self, layer, max_memory, threads=1):
        """``(G, bound, slope)`` of the linear shortcut for layer l; computed once per layer."""
        key = ("linear", layer, max_memory)
        if key not in self._memo:
            self._memo[key] = self._linear(layer, max_memory, threads)
        return self._memo[key]

    def smooth(self, layer, eps):
        """The certified polynomials of layer l (:func:`smooth.smooth_layer`); computed once per layer.

        ``eps`` is the nominal step, or every coordinate's of theta (``eps="auto"``).
        """
        if np.ndim(eps) != 0:  # the steps of this layer's coordinates, W_l then b_l
            sizes = [int(np.prod(shape)) for shape in self.net.shapes.values()]
            start = sum(sizes[:2 * layer - 2])
            eps = np.asarray(eps)[start:start + sizes[2 * layer - 2] + sizes[2 * layer - 1]]
        key = ("smooth", layer, eps if np.ndim(eps) == 0 else eps.tobytes())
        if key not in self._memo:
            self._memo[key] = smooth.smooth_layer(self.net, self.params, self.zs, self.acts, self.Y, layer, eps)
        return self._memo[key]

    def _inputs_t(self, layer):
        a = self.acts[layer - 1]
        out = np.empty((self.m, a.shape[0] + 1))
        out[:, :-1] = a.T
        out[:, -1] = 1.0
        return out

    def _linear(self, layer, max_memory, threads):
        """``(G, bound, slope)`` of the linear shortcut for layer l (see :func:`layer_kernel`)."""
        net, m = self.net, self.m
        n_layers, n_out = net.n_layers, net.layers[-1]
        n_l = net.layers[layer]
        if layer == n_layers:  # a logit row: dZ_L = e_j t, exactly
            G = np.zeros((n_out, m, n_out))
            G[np.arange(n_out), :, np.arange(n_out)] = 1.0
            return kernels.Linear(G, np.full((n_out, m), np.inf), np.ones((n_out, m)))
        if net.hidden not in PIECEWISE_LINEAR:
            return kernels.Linear(np.zeros((1, 1, n_out)), np.zeros((n_l, m)), np.ones((n_l, m)))
        slope = self.slopes[layer - 1]
        # J[e] = dZ_L / dA_l at the base state, (m, n_L, n_l)
        J = np.broadcast_to(self.weights[n_layers - 1], (m, n_out, net.layers[n_layers - 1]))
        for h in range(n_layers - 1, layer, -1):
            J = (J * self.slopes[h - 1].T[:, None, :]) @ self.weights[h - 1]
        G = np.ascontiguousarray(np.transpose(J * slope.T[:, None, :], (2, 0, 1)))
        radius_t = np.full((m, n_l), np.inf)  # how far a_l[j] may move, per example
        H = None
        for h in range(layer + 1, n_layers):
            abs_z_t = np.ascontiguousarray(np.abs(self.zs[h - 1].T))
            if H is None:
                H = self.weights[h - 1]
                _parallel(kernels.min_ratio, m, threads, abs_z_t, np.abs(H), radius_t)
                continue
            if H.ndim == 2:
                H = np.broadcast_to(H, (m,) + H.shape)
            step = max(1, max_memory // (8 * net.layers[h] * n_l * 2))
            new_H = []
            for lo in range(0, m, step):
                chunk = self.weights[h - 1] @ (self.slopes[h - 2].T[lo:lo + step, :, None] * H[lo:lo + step])
                z_chunk = abs_z_t[lo:lo + step]
                _parallel(kernels.min_ratio_batched, z_chunk.shape[0], threads, z_chunk, np.abs(chunk),
                          radius_t[lo:lo + step])
                new_H.append(chunk)
            H = np.concatenate(new_H)
        abs_slope = np.abs(slope)
        with np.errstate(divide="ignore"):
            bound = np.where(abs_slope > 0, radius_t.T / abs_slope, np.inf)
        if net.hidden != "identity":
            bound = np.minimum(bound, np.abs(self.zs[layer - 1]))
        return kernels.Linear(G, np.ascontiguousarray(SAFETY * bound), np.ascontiguousarray(slope))
