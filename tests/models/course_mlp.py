"""A deep network written the way the deeplearning.ai course's students write it.

Layout of course 1 ("Deep Neural Network Application") and course 2 ("Regularization"):
examples are columns (``X`` is (n_x, m), ``Y`` is (1, m)); parameters ``W1, b1, ..., WL, bL``
with ``Wl`` of shape (n_l, n_{l-1}) and ``bl`` of shape (n_l, 1); ReLU hidden layers, a
sigmoid output, binary cross-entropy plus the L2 term ``(lambd / 2m) * sum ||Wl||_F^2``.
``L_model_forward`` keeps the course's caches ``((A_prev, W, b), Z)`` per layer and
``L_model_backward`` returns the course's full gradients dict: ``dA{l-1}``, ``dW{l}``,
``db{l}`` for every layer, plus ``dZ{l}`` with ``keep_dZ=True`` (the dict of the
regularization assignment's ``backward_propagation_with_regularization``).

The planted bugs are the course's own pieces with the one wrong line a student writes.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Bug, Case, first_line, param_grads

#: The issue's network: 784-120-40-1 on m = 64 examples (99,081 parameters).
BIG = {"layer_dims": (784, 120, 40, 1), "m": 64, "lambd": 0.7}
#: A small one for fast tests (139 parameters; W2 is 5 x 8 so that W2[3, 7] exists).
SMALL = {"layer_dims": (10, 8, 5, 1), "m": 16, "lambd": 0.7}


# ---------------------------------------------------------------------- set-up
def initialize_parameters_deep(layer_dims, seed=0):
    """``W{l}`` (n_l, n_{l-1}) scaled by 1/sqrt(n_{l-1}) as in the course's application
    assignment, ``b{l}`` (n_l, 1) zeros."""
    rng = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):
        parameters["W" + str(l)] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])
        parameters["b" + str(l)] = np.zeros((layer_dims[l], 1))
    return parameters


def load_data(n_x, m, seed=1):
    """Pixel-like inputs in [0, 1) as columns and 0/1 labels: X (n_x, m), Y (1, m)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_x, m))
    Y = rng.integers(0, 2, size=(1, m)).astype(np.float64)
    return X, Y


# ---------------------------------------------------------------------- forward
def sigmoid(Z):
    A = 1 / (1 + np.exp(-Z))
    return A, Z


def relu(Z):
    A = np.maximum(0, Z)
    return A, Z


def linear_forward(A, W, b):
    Z = np.dot(W, A) + b
    return Z, (A, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    Z, linear_cache = linear_forward(A_prev, W, b)
    A, activation_cache = sigmoid(Z) if activation == "sigmoid" else relu(Z)
    return A, (linear_cache, activation_cache)


def L_model_forward(X, parameters):
    """[LINEAR -> RELU] * (L-1) -> LINEAR -> SIGMOID; returns AL (1, m) and the caches."""
    caches = []
    A = X
    L = len(parameters) // 2
    for l in range(1, L):
        A, cache = linear_activation_forward(A, parameters["W" + str(l)], parameters["b" + str(l)], "relu")
        caches.append(cache)
    AL, cache = linear_activation_forward(A, parameters["W" + str(L)], parameters["b" + str(L)], "sigmoid")
    caches.append(cache)
    return AL, caches


def compute_cost(AL, Y, parameters, lambd=0.0):
    """Binary cross-entropy plus ``(lambd / 2m) * sum ||Wl||^2``, as a float."""
    m = Y.shape[1]
    cross_entropy = (1.0 / m) * (-np.dot(Y, np.log(AL).T) - np.dot(1 - Y, np.log(1 - AL).T))
    L = len(parameters) // 2
    L2 = sum(np.sum(np.square(parameters["W" + str(l)])) for l in range(1, L + 1)) * lambd / (2 * m)
    return float(np.squeeze(cross_entropy) + L2)


def model_cost(parameters, X, Y, lambd=0.0):
    """J(parameters) on (X, Y): what ``fc.check`` is given (through ``functools.partial``)."""
    AL, _ = L_model_forward(X, parameters)
    return compute_cost(AL, Y, parameters, lambd)


# ---------------------------------------------------------------------- backward
def relu_backward(dA, cache):
    Z = cache
    dZ = np.array(dA, copy=True)
    dZ[Z <= 0] = 0
    return dZ


def sigmoid_backward(dA, cache):
    Z = cache
    s = 1 / (1 + np.exp(-Z))
    return dA * s * (1 - s)


def linear_backward(dZ, cache, lambd=0.0):
    A_prev, W, b = cache
    m = A_prev.shape[1]
    dW = 1.0 / m * np.dot(dZ, A_prev.T) + lambd / m * W
    db = 1.0 / m * np.sum(dZ, axis=1, keepdims=True)
    dA_prev = np.dot(W.T, dZ)
    return dA_prev, dW, db


def L_model_backward(AL, Y, caches, lambd=0.0, keep_dZ=False, *, linear_backward=linear_backward,
                     activation_backward=None):
    """The course's gradients dict: ``dA{l-1}``, ``dW{l}``, ``db{l}`` (and ``dZ{l}``).

    ``linear_backward`` and ``activation_backward`` (layer number -> function) let a
    planted bug replace one piece, the way a student's wrong line would.
    """
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    backward = {l: relu_backward for l in range(1, L)} | {L: sigmoid_backward} | (activation_backward or {})
    for l in reversed(range(1, L + 1)):
        linear_cache, activation_cache = caches[l - 1]
        dZ = backward[l](dA, activation_cache)
        dA, dW, db = linear_backward(dZ, linear_cache, lambd)
        grads["dA" + str(l - 1)], grads["dW" + str(l)], grads["db" + str(l)] = dA, dW, db
        if keep_dZ:
            grads["dZ" + str(l)] = dZ
    return grads


def model_backward(parameters, X, Y, lambd=0.0, keep_dZ=False, **pieces):
    """Forward then :func:`L_model_backward`: the user's gradient at ``parameters``."""
    AL, caches = L_model_forward(X, parameters)
    return L_model_backward(AL, Y, caches, lambd, keep_dZ, **pieces)


# ---------------------------------------------------------------------- planted bugs
def relu_backward_times_A(dA, cache):
    """``dZ = dA * A``: the activation instead of its derivative (1 where Z > 0)."""
    A, _ = relu(cache)
    return dA * A


def linear_backward_db_without_m(dZ, cache, lambd=0.0):
    """``db = np.sum(dZ, axis=1, keepdims=True)``: the 1/m forgotten (dW keeps it)."""
    dA_prev, dW, _ = linear_backward(dZ, cache, lambd)
    db = np.sum(dZ, axis=1, keepdims=True)
    return dA_prev, dW, db


def bug_relu_derivative_layer2(parameters, X, Y, lambd):
    """``dZ2 = dA2 * A2`` in layer 2 only: the error enters at layer 2 and flows down."""
    return model_backward(parameters, X, Y, lambd, activation_backward={2: relu_backward_times_A})


def bug_db_without_m(parameters, X, Y, lambd):
    """Every ``db{l}`` is m times too big."""
    return model_backward(parameters, X, Y, lambd, linear_backward=linear_backward_db_without_m)


def bug_missing_l2(parameters, X, Y, lambd):
    """The cost has the L2 term, the backward was called without ``lambd``."""
    return model_backward(parameters, X, Y)


def bug_returns_zeros(parameters, X, Y, lambd):
    """The dict was initialised with zeros and the loop never filled it in."""
    L = len(parameters) // 2
    grads = {}
    for l in range(1, L + 1):
        grads["dW" + str(l)] = np.zeros_like(parameters["W" + str(l)])
        grads["db" + str(l)] = np.zeros_like(parameters["b" + str(l)])
    return grads


def bug_one_entry(parameters, X, Y, lambd, entry=(3, 7)):
    """``dW2[3, 7]`` off by 10%, everything else right."""
    grads = model_backward(parameters, X, Y, lambd)
    grads["dW2"][entry] *= 1.1
    return grads


# ---------------------------------------------------------------------- the case
def build(layer_dims, m, lambd, seed=0) -> Case:
    """``(cost, params, grads, meta)`` for the course's network of ``layer_dims``."""
    parameters = initialize_parameters_deep(layer_dims, seed)
    X, Y = load_data(layer_dims[0], m, seed + 1)
    cost = functools.partial(model_cost, X=X, Y=Y, lambd=lambd)
    grads = model_backward(parameters, X, Y, lambd, keep_dZ=True)
    weights = tuple(n for n in parameters if n.startswith("W"))
    biases = tuple(n for n in parameters if n.startswith("b"))

    def bug(fn, wrong, right=(), entry=None):
        return Bug(fn.__name__.removeprefix("bug_"), functools.partial(fn, X=X, Y=Y, lambd=lambd), wrong, right,
                   entry, doc=first_line(fn))

    bugs = [bug(bug_relu_derivative_layer2, ("W1", "b1", "W2", "b2"), ("W3", "b3")),
            bug(bug_db_without_m, biases, weights),
            bug(bug_missing_l2, weights, biases),
            bug(bug_returns_zeros, tuple(parameters)),
            bug(bug_one_entry, ("W2",), tuple(n for n in parameters if n != "W2"), ("W2", (3, 7)))]
    meta = {
        "layout": "course", "layer_dims": tuple(layer_dims), "m": m, "lambd": lambd,
        "n_params": sum(v.size for v in parameters.values()), "data": (X, Y),
        "grads_clean": param_grads(grads, parameters),
        "backward": functools.partial(model_backward, X=X, Y=Y, lambd=lambd),
        "layers": {"L_model_forward": L_model_forward, "L_model_backward": L_model_backward,
                   "compute_cost": compute_cost},
        "bugs": {b.name: b for b in bugs},
    }
    return Case(cost, parameters, grads, meta)
