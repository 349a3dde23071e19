"""Layers and models written the way CS231n's assignments write them.

Layout of CS231n (assignments 1 and 2): examples are rows (``X`` is (N, D) or (N, C, H, W)),
labels ``y`` are integers; every layer has a ``*_forward`` returning ``(out, cache)`` and a
``*_backward(dout, cache)`` returning the gradients of its inputs (``dx, dw, db``); a model
has a ``params`` dict (``W1``, ``b1``, ..., ``gamma1``, ``beta1``) with 1-D biases and a
``loss(X, y)`` returning ``(loss, grads)``, ``grads`` keyed by the parameter names, the
regularisation ``0.5 * reg * sum ||W||^2``. The convolution is the vectorised one students
write with ``np.pad``, ``sliding_window_view`` and ``einsum(..., optimize=True)`` (stride 1), max-pooling the
reshape trick of ``fast_layers.py`` (2x2, stride 2), whose backward routes the upstream
gradient to every tied maximum.
"""

from __future__ import annotations

import copy

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Bug, Case, first_line

#: The issue's CNN: conv 3x3 x16 on 8x3x32x32, ReLU, 2x2 max-pool, dense to 10 (41,418 parameters).
CNN_BIG = {"input_dim": (3, 32, 32), "num_filters": 16, "num_classes": 10, "N": 8}
#: A small one for fast tests (307 parameters).
CNN_SMALL = {"input_dim": (3, 8, 8), "num_filters": 4, "num_classes": 3, "N": 4}
#: Fully connected nets for fast tests: affine-batchnorm-relu x2 - affine - softmax (290 parameters) ...
FC_BN = {"input_dim": 12, "hidden_dims": (10, 8), "num_classes": 4, "N": 16, "normalization": "batchnorm"}
#: ... and a TwoLayerNet with the SVM loss (174 parameters).
TWO_LAYER_SVM = {"input_dim": 12, "hidden_dims": (10,), "num_classes": 4, "N": 16, "loss": "svm"}


# ---------------------------------------------------------------------- layers
def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)


def affine_relu_forward(x, w, b):
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def _padded_windows(x, w, conv_param):
    pad = (conv_param or {}).get("pad", 1)
    if (conv_param or {}).get("stride", 1) != 1:
        raise ValueError("this conv layer has stride 1 only")
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return pad, x_pad, sliding_window_view(x_pad, w.shape[2:], axis=(2, 3))  # (N, C, H', W', HH, WW)


def conv_forward(x, w, b, conv_param=None):
    """x (N, C, H, W), w (F, C, HH, WW), b (F,); ``conv_param`` {"pad": 1, "stride": 1}."""
    _, _, windows = _padded_windows(x, w, conv_param)
    out = np.einsum("nchwij,fcij->nfhw", windows, w, optimize=True) + b[None, :, None, None]
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    pad, x_pad, windows = _padded_windows(x, w, conv_param)
    db = np.sum(dout, axis=(0, 2, 3))
    dw = np.einsum("nfhw,nchwij->fcij", dout, windows, optimize=True)
    dx_pad = np.zeros_like(x_pad)
    H_out, W_out = dout.shape[2:]
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            dx_pad[:, :, i:i + H_out, j:j + W_out] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    dx = dx_pad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, db


def max_pool_forward(x, pool_param=None):
    """2x2 max-pooling with stride 2 by reshaping (``max_pool_forward_reshape``)."""
    pool_param = pool_param or {"pool_height": 2, "pool_width": 2, "stride": 2}
    N, C, H, W = x.shape
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    x_reshaped = x.reshape(N, C, H // ph, ph, W // pw, pw)
    out = x_reshaped.max(axis=3).max(axis=4)
    return out, (x, x_reshaped, out)


def max_pool_backward(dout, cache):
    """Routes ``dout`` to every maximum of its window (all of them at a tie)."""
    x, x_reshaped, out = cache
    dx_reshaped = np.zeros_like(x_reshaped)
    mask = x_reshaped == out[:, :, :, np.newaxis, :, np.newaxis]
    dout_broadcast, _ = np.broadcast_arrays(dout[:, :, :, np.newaxis, :, np.newaxis], dx_reshaped)
    dx_reshaped[mask] = dout_broadcast[mask]
    return dx_reshaped.reshape(x.shape)


def conv_relu_pool_forward(x, w, b, conv_param=None, pool_param=None):
    a, conv_cache = conv_forward(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def batchnorm_forward(x, gamma, beta, bn_param=None):
    """Train-mode batch normalisation of x (N, D) over the batch axis."""
    eps = (bn_param or {}).get("eps", 1e-5)
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * np.mean(dxhat * xhat, axis=0)) / std
    return dx, dgamma, dbeta


def softmax_loss(x, y):
    """Mean cross-entropy of the softmax of the scores x (N, C) at labels y; returns (loss, dx)."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


def svm_loss(x, y):
    """Mean multiclass hinge loss (margin 1) of the scores x (N, C); returns (loss, dx)."""
    N = x.shape[0]
    correct = x[np.arange(N), y]
    margins = np.maximum(0, x - correct[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    positive = margins > 0
    dx = np.zeros_like(x)
    dx[positive] = 1
    dx[np.arange(N), y] -= np.sum(positive, axis=1)
    dx /= N
    return loss, dx


# ---------------------------------------------------------------------- planted bugs (layers)
def affine_backward_db_mean(dout, cache):
    """``db = np.mean(dout, axis=0)``: a mean over the batch instead of a sum."""
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, np.mean(dout, axis=0)


def conv_backward_flipped_dw(dout, cache):
    """``dw`` from windows flipped along both spatial axes: a convolution where the forward is a correlation."""
    dx, _, db = conv_backward(dout, cache)
    _, _, windows = _padded_windows(cache[0], cache[1], cache[3])
    return dx, np.einsum("nfhw,nchwij->fcij", dout, windows[..., ::-1, ::-1], optimize=True), db


def batchnorm_backward_without_mean(dout, cache):
    """``dx`` without the ``- mean(dxhat)`` term (the gradient through the batch mean)."""
    xhat, gamma, std = cache
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    dxhat = dout * gamma
    return (dxhat - xhat * np.mean(dxhat * xhat, axis=0)) / std, dgamma, dbeta


#: The layers by name: (forward, backward).
LAYERS = {"affine": (affine_forward, affine_backward), "relu": (relu_forward, relu_backward),
          "affine_relu": (affine_relu_forward, affine_relu_backward), "conv": (conv_forward, conv_backward),
          "max_pool": (max_pool_forward, max_pool_backward), "batchnorm": (batchnorm_forward, batchnorm_backward),
          "softmax_loss": (softmax_loss, None), "svm_loss": (svm_loss, None)}


# ---------------------------------------------------------------------- models
class FullyConnectedNet:
    """{affine - [batchnorm] - relu} x (L - 1) - affine - softmax (or SVM), as in assignment 2.

    Weights are Kaiming-scaled; biases, ``gamma`` and ``beta`` are drawn around their
    usual init (0, 1, 0) so that no gradient is special by symmetry.
    """

    affine_backward = staticmethod(affine_backward)
    batchnorm_backward = staticmethod(batchnorm_backward)

    def __init__(self, hidden_dims, input_dim, num_classes, normalization=None, reg=0.0, loss="softmax", seed=0):
        rng = np.random.default_rng(seed)
        dims = [input_dim, *hidden_dims, num_classes]
        self.num_layers = len(dims) - 1
        self.normalization = normalization
        self.reg = reg
        self.loss_function = {"softmax": softmax_loss, "svm": svm_loss}[loss]
        self.params = {}
        for i in range(1, len(dims)):
            self.params[f"W{i}"] = rng.standard_normal((dims[i - 1], dims[i])) * np.sqrt(2.0 / dims[i - 1])
            self.params[f"b{i}"] = 0.1 * rng.standard_normal(dims[i])
            if normalization == "batchnorm" and i < self.num_layers:
                self.params[f"gamma{i}"] = 1 + 0.1 * rng.standard_normal(dims[i])
                self.params[f"beta{i}"] = 0.1 * rng.standard_normal(dims[i])

    def forward(self, X):
        p, caches, out = self.params, [], X
        for i in range(1, self.num_layers):
            out, fc_cache = affine_forward(out, p[f"W{i}"], p[f"b{i}"])
            bn_cache = None
            if self.normalization == "batchnorm":
                out, bn_cache = batchnorm_forward(out, p[f"gamma{i}"], p[f"beta{i}"])
            out, relu_cache = relu_forward(out)
            caches.append((fc_cache, bn_cache, relu_cache))
        scores, fc_cache = affine_forward(out, p[f"W{self.num_layers}"], p[f"b{self.num_layers}"])
        return scores, caches + [fc_cache]

    def reg_loss(self):
        return 0.5 * self.reg * sum(np.sum(w * w) for k, w in self.params.items() if k.startswith("W"))

    def backward(self, dscores, caches):
        grads, L = {}, self.num_layers
        dout, grads[f"W{L}"], grads[f"b{L}"] = self.affine_backward(dscores, caches[-1])
        for i in reversed(range(1, L)):
            fc_cache, bn_cache, relu_cache = caches[i - 1]
            dout = relu_backward(dout, relu_cache)
            if self.normalization == "batchnorm":
                dout, grads[f"gamma{i}"], grads[f"beta{i}"] = self.batchnorm_backward(dout, bn_cache)
            dout, grads[f"W{i}"], grads[f"b{i}"] = self.affine_backward(dout, fc_cache)
        for k in grads:
            if k.startswith("W"):
                grads[k] += self.reg * self.params[k]
        return {k: grads[k] for k in self.params}

    def loss(self, X, y=None):
        """Scores (N, C) for ``y=None``, else ``(loss, grads)``."""
        scores, caches = self.forward(X)
        if y is None:
            return scores
        data_loss, dscores = self.loss_function(scores, y)
        return data_loss + self.reg_loss(), self.backward(dscores, caches)


class ConvNet:
    """conv 3x3 - relu - 2x2 max-pool - affine - softmax: ThreeLayerConvNet without its hidden affine."""

    conv_backward = staticmethod(conv_backward)

    def __init__(self, input_dim=(3, 32, 32), num_filters=16, filter_size=3, num_classes=10, reg=0.0, seed=0):
        rng = np.random.default_rng(seed)
        C, H, W = input_dim
        fan_in, hidden = C * filter_size ** 2, num_filters * (H // 2) * (W // 2)
        self.reg = reg
        self.loss_function = softmax_loss
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.params = {
            "W1": rng.standard_normal((num_filters, C, filter_size, filter_size)) * np.sqrt(2.0 / fan_in),
            "b1": 0.1 * rng.standard_normal(num_filters),
            "W2": rng.standard_normal((hidden, num_classes)) * np.sqrt(2.0 / hidden),
            "b2": 0.1 * rng.standard_normal(num_classes),
        }

    def forward(self, X):
        p = self.params
        out, conv_relu_pool_cache = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param)
        scores, fc_cache = affine_forward(out, p["W2"], p["b2"])
        return scores, (conv_relu_pool_cache, fc_cache)

    reg_loss = FullyConnectedNet.reg_loss
    loss = FullyConnectedNet.loss

    def backward(self, dscores, caches):
        (conv_cache, relu_cache, pool_cache), fc_cache = caches
        grads = {}
        dout, grads["W2"], grads["b2"] = affine_backward(dscores, fc_cache)
        da = relu_backward(max_pool_backward(dout, pool_cache), relu_cache)
        _, grads["W1"], grads["b1"] = self.conv_backward(da, conv_cache)
        grads["W1"] += self.reg * self.params["W1"]
        grads["W2"] += self.reg * self.params["W2"]
        return {k: grads[k] for k in self.params}


class ModelLoss:
    """``params -> (loss, grads)``: a CS231n model's ``loss(X, y)`` at other parameters (picklable)."""

    def __init__(self, model, X, y):
        self.model, self.X, self.y = model, X, y

    def at(self, params):
        model = copy.copy(self.model)
        model.params = params
        return model

    def __call__(self, params):
        return self.at(params).loss(self.X, self.y)


class ModelCost(ModelLoss):
    """``params -> float``: the loss alone, from the forward pass (no backward)."""

    def __call__(self, params) -> float:
        model = self.at(params)
        scores, _ = model.forward(self.X)
        return float(model.loss_function(scores, self.y)[0] + model.reg_loss())


class ModelGrads(ModelLoss):
    """``params -> grads``: the model's backprop at ``params``."""

    def __call__(self, params) -> dict:
        return self.at(params).loss(self.X, self.y)[1]


def _model_case(model, X, y, bugs, **meta) -> Case:
    """A Case of a model; ``bugs`` are (name, layer attribute, buggy backward, wrong, right)."""
    loss, grads = model.loss(X, y)
    case_bugs = {}
    for name, attribute, backward, wrong, right in bugs:
        buggy = copy.copy(model)
        setattr(buggy, attribute, backward)
        case_bugs[name] = Bug(name, ModelGrads(buggy, X, y), wrong, right, doc=first_line(backward))
    meta = {"layout": "cs231n", "n_params": sum(v.size for v in model.params.values()), "data": (X, y),
            "layers": LAYERS,
            "model": model, "loss": ModelLoss(model, X, y), "grads_clean": grads, "bugs": case_bugs, **meta}
    return Case(ModelCost(model, X, y), dict(model.params), grads, meta)


def build_fc(input_dim, hidden_dims, num_classes, N, normalization=None, loss="softmax", reg=0.1, seed=0) -> Case:
    """A :class:`FullyConnectedNet` on N seeded examples (rows)."""
    model = FullyConnectedNet(hidden_dims, input_dim, num_classes, normalization, reg, loss, seed)
    rng = np.random.default_rng(seed + 1)
    X, y = rng.standard_normal((N, input_dim)), rng.integers(0, num_classes, N)
    L = len(hidden_dims) + 1
    weights, biases = tuple(f"W{i}" for i in range(1, L + 1)), tuple(f"b{i}" for i in range(1, L + 1))
    bugs = [("db_mean", "affine_backward", affine_backward_db_mean, biases, weights)]
    if normalization == "batchnorm":
        # a bias before batch norm has a zero gradient, its mean as much as its sum: only the last is wrong
        bugs = [("db_mean", "affine_backward", affine_backward_db_mean, (f"b{L}",),
                 tuple(k for k in model.params if k.startswith(("W", "gamma", "beta"))))]
        # the dx of batch norms 1 and 2 is wrong: every group below them (b1, b2 are noise either way)
        bn_wrong = ("W1", "gamma1", "beta1", "W2")
        bugs.append(("batchnorm_dx_without_mean", "batchnorm_backward", batchnorm_backward_without_mean,
                     bn_wrong, tuple(k for k in model.params if k not in bn_wrong and k not in ("b1", "b2"))))
    return _model_case(model, X, y, bugs, sizes={"input_dim": input_dim, "hidden_dims": tuple(hidden_dims),
                                                 "num_classes": num_classes, "N": N})


def build_cnn(input_dim, num_filters, num_classes, N, reg=0.05, seed=0) -> Case:
    """A :class:`ConvNet` on N seeded images (N, C, H, W)."""
    model = ConvNet(input_dim, num_filters, 3, num_classes, reg, seed)
    rng = np.random.default_rng(seed + 1)
    X, y = rng.standard_normal((N, *input_dim)), rng.integers(0, num_classes, N)
    bugs = [("conv_dw_flipped", "conv_backward", conv_backward_flipped_dw, ("W1",), ("b1", "W2", "b2"))]
    return _model_case(model, X, y, bugs, sizes={"input_dim": tuple(input_dim), "num_filters": num_filters,
                                                 "num_classes": num_classes, "N": N})
