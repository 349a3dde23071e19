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
    sigmoid(-z) for sigmoid. ``z_nt``, ``aux1_nt``, ``aux2_nt`` hold the same values
    untransposed, Zh of shape (n_h, m) at ``z_off[h]``, for the loops whose lanes are
    examples.
Packed output (argument ``out``, an :class:`Output`)
    ``aux`` (m, n_L): softmax probabilities, sigmoid(z) or the residual z - y (by loss);
    ``y`` (m, n_L) the targets transposed; ``y_sum`` (m,) the per-example target sums;
    ``aux_nt``, ``y_nt`` (n_L, m) the first two untransposed.

Tanh and sigmoid hidden layers (no linear shortcut: every example takes the general path)
run one coordinate at a time with one SIMD lane per example (:func:`_row_task_lanes`),
and the last hidden layer is fused with the logits (:func:`_fused_last_hidden`): that is
where nearly all the work is. Each lane does exactly the arithmetic, in the same order, of
the per-example path (:func:`propagate`, :func:`loss_diff`).

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
from ...mlp.functions import LEAKY_SLOPE as LEAKY  # one source; numba compiles the global in as a constant

__all__ = [
    "RELU", "LEAKY_RELU", "TANH", "SIGMOID", "IDENTITY", "SOFTMAX_CE", "SIGMOID_BCE", "IDENTITY_MSE",
    "SMALL", "Net", "Output", "Linear", "Tasks", "layer_kernel", "layer_kernel_lanes", "min_ratio", "min_ratio_batched",
    "expm1_", "log1p_", "tanh_",
]

jit = numba.njit(**JIT_OPTIONS)  # serial kernels: the caller runs them on threads (nogil)

# hidden activation codes
RELU, LEAKY_RELU, TANH, SIGMOID, IDENTITY = 0, 1, 2, 3, 4
# output activation + loss codes
SOFTMAX_CE, SIGMOID_BCE, IDENTITY_MSE = 0, 1, 2

#: Below this |argument|, expm1/log1p/tanh are evaluated by their truncated series.
SMALL = 2.0**-16
#: Output changes larger than this use the direct (two-sided) formula.
LARGE = 1.0
# LEAKY (imported above) is frozen into the compiled kernels, and numba's on-disk cache is keyed on
# this file alone: a new LEAKY_SLOPE needs a cleared cache (the tests against the reference see a stale one).
#: Hidden units per pass of the fused last-hidden-layer loop (:func:`_fused_last_hidden`,
#: which is written for exactly 8).
UNITS = 8

# ---------------------------------------------------------------- kernel data
#: The packed base network (module docstring).
Net = namedtuple("Net", "dims w_off w_buf z_off z_buf aux1 aux2 z_nt aux1_nt aux2_nt")
#: The packed output layer of the base pass (module docstring).
Output = namedtuple("Output", "aux y y_sum aux_nt y_nt")
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
#: One task's buffers in :func:`_row_task_lanes`, lanes over the m examples: ``a_row``
#: (1, m); ``buf_a``, ``buf_b`` (n_max m,); ``y`` (UNITS, m); ``nonzero`` (n_max,) bool;
#: ``acc``, ``ya``, ``dl`` (m + 1,) (the last slot for one example at a time); ``col`` (n_max,).
LaneWork = namedtuple("LaneWork", "a_row buf_a buf_b y nonzero acc ya col dl")


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
@jit
def _activate_lanes(code, net, h, dz, n_rows, m, nonzero):
    """Replace ``dz[i, :m]`` (changes of Zh[i, e], one lane per example) by those of Ah[i, e].

    For tanh and sigmoid. Element by element the arithmetic of :func:`act_diff`: the
    call-free series when the row's largest |change| is below SMALL, ``act_diff`` otherwise.
    """
    z_off, z_nt, aux1_nt, aux2_nt = net.z_off, net.z_nt, net.aux1_nt, net.aux2_nt
    for i in range(n_rows):
        base = z_off[h] + i * m
        xmax = 0.0
        for e in range(m):
            xmax = max(xmax, abs(dz[i, e]))
        if xmax < SMALL:
            _series_lanes(code, dz, i, aux1_nt, aux2_nt, base, 1.0, dz, i, m)
        else:
            for e in range(m):
                dz[i, e] = act_diff(code, z_nt[base + e], aux1_nt[base + e], aux2_nt[base + e], dz[i, e])[0]
        any_nonzero = False
        for e in range(m):
            any_nonzero |= dz[i, e] != 0.0
        nonzero[i] = any_nonzero


@jit
def _series_lanes(code, src, i_src, aux1_nt, aux2_nt, base, w, dst, i_dst, m):
    """``dst[i_dst, e] = g(z + x) - g(z)`` for ``x = w * src[i_src, e]``, every |x| < SMALL.

    Row views indexed by the loop counter (no offset arithmetic) let the loops vectorize.
    """
    x_in, out = src[i_src], dst[i_dst]
    aux1, aux2 = aux1_nt[base:base + m], aux2_nt[base:base + m]
    if code == TANH:
        for e in range(m):
            th = _tanh_series(w * x_in[e])
            out[e] = th * aux2[e] * _recip1p_series(aux1[e] * th)
    else:
        for e in range(m):
            em = _expm1_series(-(w * x_in[e]))
            u = aux2[e] * em  # -em * a2 == -(a2 * em) exactly: act_diff's product, one multiply less
            out[e] = -u * aux1[e] * _recip1p_series(u)


@jit
def _fused_last_hidden(code, net, h, j, a_row, m, y, dz):
    """Logit changes ``dz`` (n_L, m) when A_{h-1}[j, :] changes by ``a_row[0, :m]``, h = L - 1.

    Unit i of the last hidden layer h changes by ``g(W_h[i, j] a_row[e])`` and is added at
    once into the logits, ``dz[c, e] += W_L[c, i] dA_h[i, e]`` in ascending i, so that no
    (n_h, m) block is stored; lanes are examples, so every inner loop is m long. Units go
    UNITS at a time through ``y`` (UNITS, m) so that ``dz`` is loaded and stored once per
    UNITS terms; the additions stay in ascending i (a unit past n_h adds an exact zero).
    """
    dims, z_off, z_nt, aux1_nt, aux2_nt = net.dims, net.z_off, net.z_nt, net.aux1_nt, net.aux2_nt
    W_h = _weights(net, h)
    W_out = _weights(net, h + 1)
    n_h, n_out = dims[h], dims[h + 1]
    amax = 0.0
    for e in range(m):
        amax = max(amax, abs(a_row[0, e]))
    for c in range(n_out):
        for e in range(m):
            dz[c, e] = 0.0
    for i0 in range(0, n_h, UNITS):
        for r in range(UNITS):
            i = i0 + r
            w = W_h[i, j] if i < n_h else 0.0
            if w == 0.0:
                for e in range(m):
                    y[r, e] = 0.0
                continue
            base = z_off[h] + i * m
            if abs(w) * amax < SMALL:  # then every |fl(w a_e)| < SMALL
                # a literal 0 (numba compiles this hot loop for row 0 of a_row; _activate_lanes's rows vary)
                _series_lanes(code, a_row, 0, aux1_nt, aux2_nt, base, w, y, r, m)
            else:
                for e in range(m):
                    y[r, e] = act_diff(code, z_nt[base + e], aux1_nt[base + e], aux2_nt[base + e], w * a_row[0, e])[0]
        y0, y1, y2, y3, y4, y5, y6, y7 = y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]
        for c in range(n_out):
            v0 = W_out[c, i0]
            v1 = W_out[c, i0 + 1] if i0 + 1 < n_h else 0.0
            v2 = W_out[c, i0 + 2] if i0 + 2 < n_h else 0.0
            v3 = W_out[c, i0 + 3] if i0 + 3 < n_h else 0.0
            v4 = W_out[c, i0 + 4] if i0 + 4 < n_h else 0.0
            v5 = W_out[c, i0 + 5] if i0 + 5 < n_h else 0.0
            v6 = W_out[c, i0 + 6] if i0 + 6 < n_h else 0.0
            v7 = W_out[c, i0 + 7] if i0 + 7 < n_h else 0.0
            row = dz[c]
            for e in range(m):
                row[e] = (((((((row[e] + v0 * y0[e]) + v1 * y1[e]) + v2 * y2[e]) + v3 * y3[e]) + v4 * y4[e])
                           + v5 * y5[e]) + v6 * y6[e]) + v7 * y7[e]


@jit
def _propagate_lanes(code, layer, j, a_row, m, net, buf_a, buf_b, y, nonzero):
    """:func:`propagate` for tanh/sigmoid with one lane per example: (n_L, m) logit changes.

    ``a_row[0, :m]`` holds the changes of A_layer[j, e]. Every later layer is recomputed
    from the changes only, ``dZ_{h+1}[i, e] = sum_{i2} W[i, i2] dA_h[i2, e]`` summed over
    i2 in ascending order (zero changes skipped) for each lane on its own.
    """
    dims = net.dims
    n_layers = dims.size - 1
    n_out = dims[n_layers]
    if layer + 2 == n_layers:
        dz = buf_a[:n_out * m].reshape((n_out, m))
        _fused_last_hidden(code, net, layer + 1, j, a_row, m, y, dz)
        return dz
    prev, spare = buf_a, buf_b
    for h in range(layer + 1, n_layers + 1):
        W = _weights(net, h)
        n_h = dims[h]
        dz = spare[:n_h * m].reshape((n_h, m))
        if h == layer + 1:
            for i in range(n_h):
                w = W[i, j]
                for e in range(m):
                    dz[i, e] = w * a_row[0, e]
        else:
            dprev = prev[:dims[h - 1] * m].reshape((dims[h - 1], m))
            for i in range(n_h):
                for e in range(m):
                    dz[i, e] = 0.0
            for i2 in range(dims[h - 1]):
                if not nonzero[i2]:
                    continue
                for i in range(n_h):
                    w = W[i, i2]
                    if w != 0.0:
                        for e in range(m):
                            dz[i, e] += w * dprev[i2, e]
        if h < n_layers:
            _activate_lanes(code, net, h, dz, n_h, m, nonzero)
        prev, spare = spare, prev
    return prev[:n_out * m].reshape((n_out, m))


@jit
def _loss_lanes(output, dz, m, net, out, acc, ya, col, dl):
    """``dl[e]`` = change of example e's loss for logit changes ``dz[:, e]`` (n_L, m).

    Element by element the arithmetic of :func:`loss_diff` (which this calls, one example
    at a time, unless every |change| is below SMALL / 2, where the call-free series run
    with one lane per example).
    """
    aux_nt, y_nt, y_sum = out.aux_nt, out.y_nt, out.y_sum
    n_out = dz.shape[0]
    xmax = 0.0
    for c in range(n_out):
        for e in range(m):
            xmax = max(xmax, abs(dz[c, e]))
    if xmax < 0.5 * SMALL:
        for e in range(m):
            acc[e] = 0.0
            ya[e] = 0.0
        for c in range(n_out):
            if output == SOFTMAX_CE:
                for e in range(m):
                    x = dz[c, e]
                    acc[e] += aux_nt[c, e] * _expm1_series(x)
                    ya[e] += y_nt[c, e] * x
            elif output == SIGMOID_BCE:
                for e in range(m):
                    x = dz[c, e]
                    acc[e] += _log1p_series(aux_nt[c, e] * _expm1_series(x))
                    ya[e] += y_nt[c, e] * x
            else:
                for e in range(m):
                    x = dz[c, e]
                    acc[e] += x * (aux_nt[c, e] + 0.5 * x)
        if output == SOFTMAX_CE:
            for e in range(m):
                dl[e] = y_sum[e] * _log1p_series(acc[e]) - ya[e]
        elif output == SIGMOID_BCE:
            for e in range(m):
                dl[e] = acc[e] - ya[e]
        else:
            for e in range(m):
                dl[e] = acc[e]
        return
    dims, z_off, z_buf = net.dims, net.z_off, net.z_buf
    n_layers = dims.size - 1
    one = col[:n_out].reshape((n_out, 1))
    for e in range(m):
        for c in range(n_out):
            one[c, 0] = dz[c, e]
        z_last = z_buf[z_off[n_layers] + e * n_out:z_off[n_layers] + (e + 1) * n_out]
        # np.int64(1), not 1: numba would compile loss_diff and its callees once more for a literal 1
        loss_diff(output, e, one, np.int64(1), z_last, out, acc[m:], ya[m:], dl[m:])
        dl[e] = dl[m]


@jit
def _row_task_lanes(codes, layer, j, ks, d, ain_t, net, out, sums, work):
    """:func:`_row_task` for tanh/sigmoid hidden layers (every example takes the general
    path), one coordinate at a time with one lane per example; ``sums[k] = sum_e dl[e]``
    in example order, as there."""
    hidden, output = codes
    a_row, buf_a, buf_b, y, nonzero = work.a_row, work.buf_a, work.buf_b, work.y, work.nonzero
    acc, ya, col, dl = work.acc, work.ya, work.col, work.dl
    dims, z_off, z_buf, aux1, aux2 = net.dims, net.z_off, net.z_buf, net.aux1, net.aux2
    m = ain_t.shape[0]
    for q in range(ks.size):
        k = ks[q]
        for e in range(m):
            x = d[q] * ain_t[e, k]
            z_row = z_off[layer] + e * dims[layer] + j
            a_row[0, e] = act_diff(hidden, z_buf[z_row], aux1[z_row], aux2[z_row], x)[0]
        dz = _propagate_lanes(hidden, layer, j, a_row, m, net, buf_a, buf_b, y, nonzero)
        _loss_lanes(output, dz, m, net, out, acc, ya, col, dl)
        total = 0.0
        for e in range(m):
            total += dl[e]
        sums[q] = total


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
    loss changes are summed in example order by one thread. For tanh and sigmoid hidden
    layers and l < L, :func:`layer_kernel_lanes` is used instead (a separate kernel, so
    that a ReLU network never compiles the lanes path).
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


@jit
def layer_kernel_lanes(codes, layer, tasks, steps, ain_t, net, out, results, first, last):
    """:func:`layer_kernel` for tanh and sigmoid hidden layers, l < L: :func:`_row_task_lanes`.

    Same arguments, less ``amax`` and ``lin`` (no linear shortcut); ``kinks`` are all False.
    """
    rows, starts, ks = tasks.rows, tasks.starts, tasks.ks
    d_plus, d_minus = steps
    sum_plus, sum_minus, kinks = results
    dims = net.dims
    n_max = 1
    for h in range(1, dims.size):
        n_max = max(n_max, dims[h])
    m = ain_t.shape[0]
    for q in range(first, last):
        work = LaneWork(np.empty((1, m)), np.empty(n_max * m), np.empty(n_max * m), np.empty((UNITS, m)),
                        np.empty(n_max, dtype=np.bool_), np.empty(m + 1), np.empty(m + 1), np.empty(n_max),
                        np.empty(m + 1))
        lo, hi = starts[q], starts[q + 1]
        kinks[lo:hi] = False
        _row_task_lanes(codes, layer, rows[q], ks[lo:hi], d_plus[lo:hi], ain_t, net, out, sum_plus[lo:hi], work)
        _row_task_lanes(codes, layer, rows[q], ks[lo:hi], d_minus[lo:hi], ain_t, net, out, sum_minus[lo:hi], work)


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
