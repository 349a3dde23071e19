"""Numba kernels of the batched MLP engine (loops only; no validation).

Every kernel takes C-contiguous float64 arrays and writes into preallocated outputs.
Kernels are serial: the entry points take a range of independent tasks (``first, last``)
and the caller runs ranges on threads (:func:`fastcheck.core.threads.in_chunks`), which
compiles far faster than ``prange`` (see :mod:`fastcheck.core.jit`).
The Python side (:mod:`fastcheck.engines.mlp.batched`) validates, prepares the caches of
the base forward pass, packs them into the named tuples below and assembles the results.
Named tuples cost nothing in the kernels: a field is read as a constant index.

Packed network (argument ``net``, a :class:`Net`)
    ``dims`` (L+1,) int64 layer widths; ``w_buf`` holds W1, ..., WL in C order, Wh at
    ``w_off[h]``; ``z_buf`` holds the base pre-activations transposed, Zh.T of shape
    (m, n_h) at ``z_off[h]``; ``aux1`` and ``aux2`` (same layout) hold what the exact
    activation differences need: tanh(z) and sech^2(z) for tanh, sigmoid(z) and
    sigmoid(-z) for sigmoid.
Packed output (argument ``out``, an :class:`Output`)
    ``aux`` (m, n_L): softmax probabilities, sigmoid(z) or the residual z - y (by loss);
    ``y`` (m, n_L) the targets transposed; ``y_sum`` (m,) the per-example target sums.

Tanh and sigmoid hidden layers take the certified series of :mod:`fastcheck.engines.mlp.smooth`;
its uncertified (row, example) pairs come back here, to the general path of :func:`layer_kernel`.

Exactness. A change ``x`` of a pre-activation changes activations and losses through
identities evaluated without cancellation: ``tanh(z + x) - tanh(z) = tanh(x) sech^2(z) /
(1 + tanh(z) tanh(x))``, ``sigmoid(z + x) - sigmoid(z) = -expm1(-x) s(-z) s(z) / (1 +
s(-z) expm1(-x))``, ``lse(z + x) - lse(z) = log1p(sum_c p_c expm1(x_c))``, ``softplus(z + x)
- softplus(z) = log1p(s(z) expm1(x))``. ``expm1``, ``log1p`` and ``tanh`` are library
functions, except for tiny arguments (``|x| < SMALL = 2**-16``) where they are evaluated
by their series truncated far below rounding (relative truncation error < 2**-70), which
keeps the hot loops free of calls so that they vectorize (likewise ``1 / (1 + u)`` for
``|u| < 2 SMALL`` by its geometric series).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np

from ...core.jit import JIT_OPTIONS
from ...core.series import SERIES_BELOW as SMALL  # below it, expm1/log1p/tanh by their series; a compiled constant
from ...mlp.functions import LEAKY_SLOPE as LEAKY  # one source; numba compiles the global in as a constant

__all__ = [
    "RELU", "LEAKY_RELU", "TANH", "SIGMOID", "IDENTITY", "SOFTMAX_CE", "SIGMOID_BCE", "IDENTITY_MSE",
    "SMALL", "Net", "Output", "Linear", "Tasks", "layer_kernel", "min_ratio", "min_ratio_batched",
    "expm1_", "log1p_", "tanh_",
]

jit = numba.njit(**JIT_OPTIONS)  # serial kernels: the caller runs them on threads (nogil)

# hidden activation codes
RELU, LEAKY_RELU, TANH, SIGMOID, IDENTITY = 0, 1, 2, 3, 4
# output activation + loss codes
SOFTMAX_CE, SIGMOID_BCE, IDENTITY_MSE = 0, 1, 2

#: Output changes larger than this use the direct (two-sided) formula.
LARGE = 1.0
# LEAKY (imported above) is frozen into the compiled kernels, and numba's on-disk cache is keyed on
# this file alone: a new LEAKY_SLOPE needs a cleared cache (the tests against the reference see a stale one).

# ---------------------------------------------------------------- kernel data
#: The packed base network (module docstring).
Net = namedtuple("Net", "dims w_off w_buf z_off z_buf aux1 aux2")
#: The packed output layer of the base pass (module docstring).
Output = namedtuple("Output", "aux y y_sum")
#: The linear shortcut of one layer (:func:`layer_kernel`).
Linear = namedtuple("Linear", "G bound slope")
#: Row tasks of one layer in CSR form (:func:`layer_kernel`).
Tasks = namedtuple("Tasks", "rows starts ks")
#: One task's buffers in :func:`_row_task`; lengths K (coordinates of the task), n_max
#: (widest layer): ``t``, ``dl``, ``acc``, ``ya`` (K,) the steps of the inputs, loss
#: changes and their two accumulators; ``buf_a``, ``buf_b`` (n_max K,) ping-pong layer
#: changes; ``nonzero`` (n_max,) bool; ``kink`` (2K,) bool; ``fail`` (K,) int64 the
#: coordinates whose certificate failed, ``tf``, ``dlf`` (K,) their steps and loss changes.
RowWork = namedtuple("RowWork", "t dl acc ya buf_a buf_b nonzero kink fail tf dlf")


# ---------------------------------------------------------------- special functions
@jit
def _expm1_series(x):
    """expm1 for |x| < SMALL: x + x^2/2 + x^3/6 + x^4/24 + x^5/120 (next term < 2**-80 |x|)."""
    return x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0)))))


@jit
def _log1p_series(u):
    """log1p for |u| < SMALL: u - u^2/2 + ... + u^5/5 (next term < 2**-80 |u|)."""
    return u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u * 0.2))))


@jit
def _tanh_series(x):
    """tanh for |x| < SMALL: x - x^3/3 + 2x^5/15 (next term < 2**-96 |x|)."""
    x2 = x * x
    return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0)))


@jit
def _recip1p_series(u):
    """1 / (1 + u) for |u| < 2 SMALL: 1 - u + u^2 - u^3 + u^4 (next term < 2**-75)."""
    return 1.0 - u * (1.0 - u * (1.0 - u * (1.0 - u)))


@jit
def expm1_(x):
    """``expm1(x)`` to rounding: series for tiny |x|, the library otherwise."""
    if abs(x) < SMALL:
        return _expm1_series(x)
    return math.expm1(x)


@jit
def log1p_(u):
    """``log1p(u)`` to rounding: series for tiny |u|, the library otherwise."""
    if abs(u) < SMALL:
        return _log1p_series(u)
    return math.log1p(u)


@jit
def tanh_(x):
    """``tanh(x)`` to rounding: series for tiny |x|, the library otherwise."""
    if abs(x) < SMALL:
        return _tanh_series(x)
    return math.tanh(x)


@jit
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


# ---------------------------------------------------------------- activation changes
@jit
def act_diff(code, z, a1, a2, x):
    """``g(z + x) - g(z)`` without cancellation, and whether the state ``z > 0`` changed.

    ``a1``, ``a2`` are the cached aux values of ``z`` (see the module docstring).
    """
    if code == TANH:
        if abs(x) < SMALL:
            th = _tanh_series(x)
            return th * a2 * _recip1p_series(a1 * th), False
        th = math.tanh(x)
        return th * a2 / (1.0 + a1 * th), False
    if code == SIGMOID:
        if abs(x) < SMALL:
            em = _expm1_series(-x)
            return -em * a2 * a1 * _recip1p_series(a2 * em), False
        em = math.expm1(-x)
        return -em * a2 * a1 / (1.0 + a2 * em), False
    if code == IDENTITY:
        return x, False
    nz = z + x
    before, after = z > 0.0, nz > 0.0
    if before and after:
        return x, False
    slope = 0.0 if code == RELU else LEAKY
    if not before and not after:
        return slope * x, False
    g_new = nz if after else slope * nz
    g_old = z if before else slope * z
    return g_new - g_old, True


@jit
def activate_vec(code, z, a1, a2, x, K, kink):
    """Replace ``x[:K]`` (changes of one pre-activation z) by the changes of g(z); set kinks.

    Returns whether any change is nonzero. For tanh and sigmoid, when every |x| < SMALL
    the loop runs call-free (same results as :func:`act_diff`, element by element).
    """
    xmax = 0.0
    for k in range(K):
        xmax = max(xmax, abs(x[k]))
    if code == TANH and xmax < SMALL:
        for k in range(K):
            th = _tanh_series(x[k])
            x[k] = th * a2 * _recip1p_series(a1 * th)
    elif code == SIGMOID and xmax < SMALL:
        for k in range(K):
            em = _expm1_series(-x[k])
            x[k] = -em * a2 * a1 * _recip1p_series(a2 * em)
    elif code == IDENTITY:
        pass
    else:
        for k in range(K):
            d, crossed = act_diff(code, z, a1, a2, x[k])
            x[k] = d
            if crossed:
                kink[k] = True
    for k in range(K):
        if x[k] != 0.0:
            return True
    return False


@jit
def _activate_rows(code, net, h, e, block, n_rows, K, kink, nonzero):
    """Replace ``block[i, :K]`` (changes of Zh[i, e]) by the changes of Ah[i, e] in place."""
    dims, z_off, z_buf, aux1, aux2 = net.dims, net.z_off, net.z_buf, net.aux1, net.aux2
    base = z_off[h] + e * dims[h]
    for i in range(n_rows):
        nonzero[i] = activate_vec(code, z_buf[base + i], aux1[base + i], aux2[base + i], block[i], K, kink)


@jit
def _weights(net, h):
    dims, w_off, w_buf = net.dims, net.w_off, net.w_buf
    return w_buf[w_off[h]:w_off[h] + dims[h] * dims[h - 1]].reshape((dims[h], dims[h - 1]))


@jit
def propagate(hidden, layer, j, e, t, K, net, buf_a, buf_b, nonzero, kink):
    """Change of the logits for example ``e`` when row ``j`` of Z_layer changes by ``t[:K]``.

    Every layer after ``layer`` is recomputed from the changes only (a change that is zero
    for a unit contributes nothing). Returns a (n_L, K) view of ``buf_a`` or ``buf_b``;
    sets ``kink[k]`` when a hidden unit changes state.
    """
    dims = net.dims
    n_layers = dims.size - 1
    if layer == n_layers:
        dz = buf_a[:dims[n_layers] * K].reshape((dims[n_layers], K))
        dz[:, :] = 0.0
        dz[j, :] = t[:K]
        return dz
    row = buf_a[:K].reshape((1, K))
    row[0, :] = t[:K]
    z_row = net.z_off[layer] + e * dims[layer] + j
    z, a1, a2 = net.z_buf[z_row], net.aux1[z_row], net.aux2[z_row]
    activate_vec(hidden, z, a1, a2, row[0], K, kink)
    prev, spare = buf_a, buf_b
    for h in range(layer + 1, n_layers + 1):
        W = _weights(net, h)
        n_h = dims[h]
        dz = spare[:n_h * K].reshape((n_h, K))
        if h == layer + 1:
            for i in range(n_h):
                w = W[i, j]
                for k in range(K):
                    dz[i, k] = w * row[0, k]
        else:
            dprev = prev[:dims[h - 1] * K].reshape((dims[h - 1], K))
            dz[:, :] = 0.0
            for i in range(n_h):
                for i2 in range(dims[h - 1]):
                    w = W[i, i2]
                    if nonzero[i2] and w != 0.0:
                        for k in range(K):
                            dz[i, k] += w * dprev[i2, k]
        if h < n_layers:
            _activate_rows(hidden, net, h, e, dz, n_h, K, kink, nonzero)
        prev, spare = spare, prev
    return prev[:dims[n_layers] * K].reshape((dims[n_layers], K))


# ---------------------------------------------------------------- loss changes
@jit
def loss_diff(output, e, dz, K, z_last, out, acc, ya, dl):
    """Per-column change of example ``e``'s loss for logit changes ``dz[:, :K]``, into ``dl``.

    ``z_last`` is the base logits of example e, shape (n_L,). Same arithmetic, element by
    element, as :func:`loss_diff_outer` (which it must match bit for bit).
    """
    aux, y, y_sum = out.aux, out.y, out.y_sum
    n_out = dz.shape[0]
    xmax = 0.0
    for c in range(n_out):
        for k in range(K):
            xmax = max(xmax, abs(dz[c, k]))
    if xmax < 0.5 * SMALL:
        _loss_diff_series(output, e, dz, K, out, acc, ya, dl)
        return
    acc[:K] = 0.0
    ya[:K] = 0.0
    for c in range(n_out):
        p, yc = aux[e, c], y[e, c]
        for k in range(K):
            x = dz[c, k]
            if output == SOFTMAX_CE:
                acc[k] += p * expm1_(x)
            elif output == SIGMOID_BCE:
                acc[k] += log1p_(p * expm1_(x))
            else:
                acc[k] += x * (p + 0.5 * x)
            ya[k] += yc * x
    for k in range(K):
        if output == SOFTMAX_CE:
            dl[k] = y_sum[e] * log1p_(acc[k]) - ya[k]
        elif output == SIGMOID_BCE:
            dl[k] = acc[k] - ya[k]
        else:
            dl[k] = acc[k]
    if output == IDENTITY_MSE:
        return
    for k in range(K):  # large changes: the direct, two-sided formula
        big = False
        for c in range(n_out):
            if abs(dz[c, k]) > LARGE:
                big = True
        if big:
            dl[k] = _direct_loss_diff(output, e, dz, k, z_last, out)


@jit
def _direct_loss_diff(output, e, dz, k, z_last, out):
    y, y_sum = out.y, out.y_sum
    n_out = dz.shape[0]
    if output == SOFTMAX_CE:
        top_old, top_new = -np.inf, -np.inf
        for c in range(n_out):
            top_old = max(top_old, z_last[c])
            top_new = max(top_new, z_last[c] + dz[c, k])
        s_old, s_new, ya = 0.0, 0.0, 0.0
        for c in range(n_out):
            s_old += math.exp(z_last[c] - top_old)
            s_new += math.exp(z_last[c] + dz[c, k] - top_new)
            ya += y[e, c] * dz[c, k]
        return y_sum[e] * ((top_new + math.log(s_new)) - (top_old + math.log(s_old))) - ya
    total = 0.0
    for c in range(n_out):
        total += _softplus(z_last[c] + dz[c, k]) - _softplus(z_last[c]) - y[e, c] * dz[c, k]
    return total


@jit
def _loss_diff_series(output, e, dz, K, out, acc, ya, dl):
    """:func:`loss_diff` when every ``|dz| < SMALL / 2``: call-free loops, same results."""
    aux, y, y_sum = out.aux, out.y, out.y_sum
    acc[:K] = 0.0
    ya[:K] = 0.0
    for c in range(dz.shape[0]):
        p, yc = aux[e, c], y[e, c]
        row = dz[c]
        if output == SOFTMAX_CE:
            for k in range(K):
                acc[k] += p * _expm1_series(row[k])
                ya[k] += yc * row[k]
        elif output == SIGMOID_BCE:
            for k in range(K):
                acc[k] += _log1p_series(p * _expm1_series(row[k]))
                ya[k] += yc * row[k]
        else:
            for k in range(K):
                acc[k] += row[k] * (p + 0.5 * row[k])
    _finish_loss(output, e, K, y_sum, acc, ya, dl)


@jit
def _finish_loss(output, e, K, y_sum, acc, ya, dl):
    if output == SOFTMAX_CE:
        ys = y_sum[e]
        for k in range(K):
            dl[k] = ys * _log1p_series(acc[k]) - ya[k]
    elif output == SIGMOID_BCE:
        for k in range(K):
            dl[k] = acc[k] - ya[k]
    else:
        for k in range(K):
            dl[k] = acc[k]


@jit
def loss_diff_outer(output, e, g, t, K, out, acc, ya, dl):
    """:func:`loss_diff` for ``dz = outer(g, t)`` when every ``|g_c t_k| < SMALL / 2``.

    The series replace the library calls, so the loops vectorize; results equal
    :func:`loss_diff`'s bit for bit.
    """
    aux, y, y_sum = out.aux, out.y, out.y_sum
    acc[:K] = 0.0
    ya[:K] = 0.0
    for c in range(g.size):
        gc, p, yc = g[c], aux[e, c], y[e, c]
        if output == SOFTMAX_CE:
            for k in range(K):
                x = gc * t[k]
                acc[k] += p * _expm1_series(x)
                ya[k] += yc * x
        elif output == SIGMOID_BCE:
            for k in range(K):
                x = gc * t[k]
                acc[k] += _log1p_series(p * _expm1_series(x))
                ya[k] += yc * x
        else:
            for k in range(K):
                x = gc * t[k]
                acc[k] += x * (p + 0.5 * x)
    _finish_loss(output, e, K, y_sum, acc, ya, dl)


# ---------------------------------------------------------------- smooth hidden layers
# ---------------------------------------------------------------- the layer kernel
@jit
def _row_task(codes, layer, j, ks, d, ain_t, amax, lin, net, out, sums, kinks, work):
    """All examples of one row task and one sign: ``sums[k] = sum_e change of loss_e``."""
    hidden, output = codes
    G, bound, slope = lin.G, lin.bound, lin.slope
    t, dl, acc, ya, buf_a, buf_b = work.t, work.dl, work.acc, work.ya, work.buf_a, work.buf_b
    nonzero, kink, fail, tf, dlf = work.nonzero, work.kink, work.fail, work.tf, work.dlf
    dims, z_off, z_buf = net.dims, net.z_off, net.z_buf
    n_layers = dims.size - 1
    n_out = dims[n_layers]
    m = ain_t.shape[0]
    K = ks.size
    dmax = 0.0
    for k in range(K):
        dmax = max(dmax, abs(d[k]))
    sums[:] = 0.0
    kink[:K] = False
    for e in range(m):
        b, s = bound[j, e], slope[j, e]
        may_fail = not dmax * amax[e] < b
        if s == 0.0 and not may_fail:
            continue  # the unit stays inactive: exactly no change
        for k in range(K):
            t[k] = d[k] * ain_t[e, ks[k]]
        n_fail = K - K  # not a literal 0, which numba would compile propagate and loss_diff once more for
        if may_fail:
            for k in range(K):
                if not abs(t[k]) < b:
                    fail[n_fail] = k
                    n_fail += 1
        if n_fail < K:
            if s == 0.0:
                dl[:K] = 0.0
            else:
                g = G[j, e]
                gmax, tmax = 0.0, 0.0
                for c in range(n_out):
                    gmax = max(gmax, abs(g[c]))
                for k in range(K):
                    tmax = max(tmax, abs(t[k]))
                if gmax * tmax < 0.5 * SMALL:
                    loss_diff_outer(output, e, g, t, K, out, acc, ya, dl)
                else:
                    dz = buf_a[:n_out * K].reshape((n_out, K))
                    for c in range(n_out):
                        for k in range(K):
                            dz[c, k] = g[c] * t[k]
                    z_last = z_buf[z_off[n_layers] + e * n_out:z_off[n_layers] + (e + 1) * n_out]
                    loss_diff(output, e, dz, K, z_last, out, acc, ya, dl)
        if n_fail > 0:
            for q in range(n_fail):
                tf[q] = t[fail[q]]
            kf = kink[K:K + n_fail]
            kf[:] = False
            dz = propagate(hidden, layer, j, e, tf, n_fail, net, buf_a, buf_b, nonzero, kf)
            z_last = z_buf[z_off[n_layers] + e * n_out:z_off[n_layers] + (e + 1) * n_out]
            loss_diff(output, e, dz, n_fail, z_last, out, acc, ya, dlf)
            for q in range(n_fail):
                dl[fail[q]] = dlf[q]
                if kf[q]:
                    kink[fail[q]] = True
        for k in range(K):
            sums[k] += dl[k]
    for k in range(K):
        kinks[k] = kinks[k] or kink[k]


@jit
def layer_kernel(codes, layer, tasks, steps, ain_t, amax, lin, net, out, results, first, last):
    """Loss changes of every requested coordinate of one layer, for both signs.

    Parameters
    ----------
    codes : (int, int)
        Hidden activation code, output/loss code.
    layer : int
        l, 1-based: coordinates of W_l and b_l.
    tasks : Tasks of int64 arrays rows (T,), starts (T+1,), ks (N,)
        Task q is row ``rows[q]`` of ``[W_l | b_l]``, columns ``ks[starts[q]:starts[q+1]]``
        (column n_{l-1} is the bias).
    steps : (d_plus (N,), d_minus (N,)) float64
        The actual steps ``fl(theta_i +- eps) - theta_i``, aligned with ``ks``.
    ain_t : ndarray (m, n_{l-1} + 1)
        ``[A_{l-1}; 1]`` transposed: the inputs of layer l, with a column of ones.
    amax : ndarray (m,)
        ``max_k |ain_t[e, k]|``.
    lin : Linear of G (n_l, m, n_L), bound (n_l, m), slope (n_l, m)
        The linear shortcut: while ``|t| < bound[j, e]`` the logits change by exactly
        ``G[j, e] * t`` (``G`` holds the slope); ``bound <= 0`` disables it.
    net, out : Net, Output
        The packed network and output caches (module docstring).
    results : (sum_plus (N,), sum_minus (N,), kinks (N,) bool)
        Written: sum over examples of the loss change for +eps and -eps; whether a hidden
        unit changed state. Each task writes only its own slots.
    first, last : int
        The tasks to run, ``first <= q < last`` (the caller runs ranges on threads:
        :func:`fastcheck.core.threads.in_chunks`).

    Notes
    -----
    Each task runs :func:`_row_task` (per example, linear shortcut); each coordinate's
    loss changes are summed in example order by one thread. Tanh and sigmoid hidden layers
    come here only with the (row, example) pairs the smooth series could not certify.
    """
    rows, starts, ks = tasks.rows, tasks.starts, tasks.ks
    d_plus, d_minus = steps
    sum_plus, sum_minus, kinks = results
    dims = net.dims
    n_max = 1
    for h in range(1, dims.size):
        n_max = max(n_max, dims[h])
    for q in range(first, last):
        lo, hi = starts[q], starts[q + 1]
        K = hi - lo
        work = RowWork(np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(n_max * K),
                       np.empty(n_max * K), np.empty(n_max, dtype=np.bool_), np.empty(2 * K, dtype=np.bool_),
                       np.empty(K, dtype=np.int64), np.empty(K), np.empty(K))
        kinks[lo:hi] = False
        _row_task(codes, layer, rows[q], ks[lo:hi], d_plus[lo:hi], ain_t, amax, lin, net, out,
                  sum_plus[lo:hi], kinks[lo:hi], work)
        _row_task(codes, layer, rows[q], ks[lo:hi], d_minus[lo:hi], ain_t, amax, lin, net, out,
                  sum_minus[lo:hi], kinks[lo:hi], work)


# ---------------------------------------------------------------- certificates
@jit
def min_ratio(abs_z_t, abs_h, out, first, last):
    """``out[e, j] = min(out[e, j], min_i abs_z_t[e, i] / abs_h[i, j])`` (0/0 ignored), ``first <= e < last``.

    abs_z_t (m, n_h), abs_h (n_h, n_l), out (m, n_l): how far a_l[j] may move before
    some unit of layer h could change state. Examples are independent: the caller runs
    ranges of them on threads.
    """
    for e in range(first, last):
        _min_ratio_row(abs_z_t[e], abs_h, out[e])


@jit
def min_ratio_batched(abs_z_t, abs_h, out, first, last):
    """:func:`min_ratio` with one matrix per example: abs_h (m, n_h, n_l)."""
    for e in range(first, last):
        _min_ratio_row(abs_z_t[e], abs_h[e], out[e])


@jit
def _min_ratio_row(abs_z, abs_h, out):
    for i in range(abs_z.size):
        zi = abs_z[i]
        for j in range(out.size):
            r = zi / abs_h[i, j]
            if r < out[j]:
                out[j] = r
