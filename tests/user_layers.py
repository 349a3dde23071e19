"""Small user-style models for the diagnosis tests: numpy forwards and hand-written backprops
as the courses write them (deeplearning.ai's layout, CS231n's naive layers), each with the
bug a student writes.

Each builder returns what a user would hand to fastcheck. The bugs are written into the
backward code, not planted afterwards, except where the bug *is* what was returned.
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------- deeplearning.ai layout
def course_mlp(layer_dims=(5, 4, 3, 1), m=8, seed=0, relu_backward_layer2=None):
    """An L-layer ReLU network with a sigmoid output and the cross-entropy cost, examples as
    columns: ``(cost, parameters, L_model_backward)``; ``L_model_backward(parameters)`` returns
    the course's full gradients dict (dA, dW, db). ``relu_backward_layer2`` replaces layer 2's
    ``relu_backward(dA, Z, A)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((layer_dims[0], m))
    Y = (rng.random((1, m)) > 0.5).astype(float)
    L = len(layer_dims) - 1
    parameters = {}
    for l in range(1, L + 1):
        parameters[f"W{l}"] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])
        parameters[f"b{l}"] = 0.1 * rng.standard_normal((layer_dims[l], 1))

    def L_model_forward(p):
        A, caches = X, []
        for l in range(1, L + 1):
            Z = p[f"W{l}"] @ A + p[f"b{l}"]
            caches.append((A, Z))
            A = np.maximum(Z, 0) if l < L else 1 / (1 + np.exp(-Z))
        return A, caches

    def compute_cost(p):
        AL, _ = L_model_forward(p)
        return float(-np.mean(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)))

    def relu_backward(dA, Z, A):
        return dA * (Z > 0)

    def L_model_backward(p):
        AL, caches = L_model_forward(p)
        grads = {}
        dZ = AL - Y
        for l in range(L, 0, -1):
            A_prev, Z = caches[l - 1]
            if l < L:
                A = np.maximum(Z, 0)
                backward = relu_backward_layer2 if (l == 2 and relu_backward_layer2) else relu_backward
                dZ = backward(grads[f"dA{l}"], Z, A)
            grads[f"dW{l}"] = dZ @ A_prev.T / m
            grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True) / m
            grads[f"dA{l - 1}"] = p[f"W{l}"].T @ dZ
        return grads

    return compute_cost, parameters, L_model_backward


# ---------------------------------------------------------------------- CS231n layers
def conv_forward_naive(x, w, b, pad=1):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out, W_out = H + 2 * pad - HH + 1, W + 2 * pad - WW + 1
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, f, i, j] = np.sum(x_pad[n, :, i:i + HH, j:j + WW] * w[f]) + b[f]
    return out, (x, w, b, pad)


def conv_backward_naive(dout, cache, window_flipped=False, dw_layout_nhwc=False):
    """``window_flipped``: the window is read backwards for dw (a convolution where the forward
    is a correlation); ``dw_layout_nhwc``: dw is accumulated as (F, HH, WW, C) and reshaped."""
    x, w, b, pad = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros((F, HH, WW, C)) if dw_layout_nhwc else np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x_pad[n, :, i:i + HH, j:j + WW]
                    if window_flipped:
                        window = window[:, ::-1, ::-1]
                    dw[f] += (window.transpose(1, 2, 0) if dw_layout_nhwc else window) * dout[n, f, i, j]
                    dx_pad[n, :, i:i + HH, j:j + WW] += w[f] * dout[n, f, i, j]
    return dx_pad[:, :, pad:-pad, pad:-pad], dw.reshape(w.shape), db


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(axis=0), x.var(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, gamma, inv_std)


def batchnorm_backward(dout, cache, forget_mean=False):
    """``forget_mean``: the ``- sum(dxhat)`` (mean) term of dx is left out."""
    xhat, gamma, inv_std = cache
    N = dout.shape[0]
    dxhat = dout * gamma
    centre = 0.0 if forget_mean else dxhat.sum(axis=0)
    dx = inv_std / N * (N * dxhat - centre - xhat * (dxhat * xhat).sum(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def max_pool_forward_naive(x, size=2):
    N, C, H, W = x.shape
    out = x.reshape(N, C, H // size, size, W // size, size).max(axis=(3, 5))
    return out, (x, size)


def max_pool_backward_naive(dout, cache):
    """Every entry equal to its window's max gets the upstream gradient (CS231n's mask)."""
    x, size = cache
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size]
            mask = window == window.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size] += mask * dout[:, :, i:i + 1, j:j + 1]
    return (dx,)


class LayerCost:
    """``sum(forward(x) * dout)``: the scalar a layer check differentiates."""

    def __init__(self, forward, dout):
        self.forward, self.dout = forward, dout

    def __call__(self, inputs):
        return float(np.sum(self.forward(**inputs)[0] * self.dout))


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward_no_mask(dout, x):
    return (dout.copy(),)  # the mask (x > 0) forgotten


def leaky_relu_forward(x, slope=0.01):
    return np.where(x > 0, x, slope * x), x


def leaky_relu_backward_no_slope(dout, x):
    return (dout * 1.0,)  # the negative side's slope forgotten: 1 everywhere


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = scores.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1
    return -log_probs[np.arange(N), y].mean(), dscores / N


def fc_net_batchnorm(seed=0, N=16, D=6, H=(7, 5), C=4, forget_mean_in_layer=None):
    """CS231n's FullyConnectedNet with batch norm (affine - batchnorm - relu, ..., affine -
    softmax): ``(loss, params)`` with ``loss(params) -> (loss, grads)`` like ``model.loss``;
    ``forget_mean_in_layer``: that layer's batch norm backward leaves out its mean term."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    dims = (D, *H, C)
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = rng.standard_normal((dims[l - 1], dims[l])) / np.sqrt(dims[l - 1])
        params[f"b{l}"] = 0.1 * rng.standard_normal(dims[l])
        if l < len(dims) - 1:
            params[f"gamma{l}"] = 1 + 0.1 * rng.standard_normal(dims[l])
            params[f"beta{l}"] = 0.1 * rng.standard_normal(dims[l])
    L = len(dims) - 1

    def loss(p):
        a, caches = X, []
        for l in range(1, L):
            z, c1 = affine_forward(a, p[f"W{l}"], p[f"b{l}"])
            bn, c2 = batchnorm_forward(z, p[f"gamma{l}"], p[f"beta{l}"])
            a = np.maximum(bn, 0)
            caches.append((c1, c2, bn))
        scores, c_last = affine_forward(a, p[f"W{L}"], p[f"b{L}"])
        value, dscores = softmax_loss(scores, y)
        grads = {}
        da, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, c_last)
        for l in range(L - 1, 0, -1):
            c1, c2, bn = caches[l - 1]
            dbn = da * (bn > 0)
            dz, grads[f"gamma{l}"], grads[f"beta{l}"] = batchnorm_backward(dbn, c2, l == forget_mean_in_layer)
            da, grads[f"W{l}"], grads[f"b{l}"] = affine_backward(dz, c1)
        return value, {k: grads[k] for k in p}

    return loss, params
