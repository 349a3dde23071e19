"""Layer checks as CS231n does them, and gradients in the layouts users write them.

    python examples/layers_and_layouts.py
"""

import numpy as np

import fastcheck as fc

rng = np.random.default_rng(0)


# ---- 1. a layer with its own backward: out = x @ w + b, returning (out, cache)
def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_db_as_mean(dout, cache):  # a planted bug: db as a mean over the batch
    dx, dw, db = affine_backward(dout, cache)
    return dx, dw, db / dout.shape[0]


inputs = {"x": rng.standard_normal((4, 5)), "w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
print(fc.check_layer(affine_forward, inputs, backward=affine_backward))
print()
print(fc.check_layer(affine_forward, inputs, backward=affine_backward_db_as_mean))
print()

# ---- 2. the course's gradients dict, as backward_propagation returns it (dZ, dA keys too)
X, Y = rng.standard_normal((3, 8)), (rng.random((1, 8)) > 0.5).astype(float)
params = {"W1": rng.standard_normal((4, 3)), "b1": np.zeros((4, 1)), "W2": rng.standard_normal((1, 4)),
          "b2": np.zeros((1, 1))}


def forward(p):
    A1 = np.tanh(p["W1"] @ X + p["b1"])
    return A1, 1 / (1 + np.exp(-(p["W2"] @ A1 + p["b2"])))


def compute_cost(p):
    A2 = forward(p)[1]
    return -np.mean(Y * np.log(A2) + (1 - Y) * np.log(1 - A2))


def backward_propagation(p):
    m = X.shape[1]
    A1, A2 = forward(p)
    dZ2 = A2 - Y
    dA1 = p["W2"].T @ dZ2
    dZ1 = dA1 * (1 - A1**2)
    return {"dZ2": dZ2, "dW2": dZ2 @ A1.T / m, "db2": dZ2.sum(axis=1, keepdims=True) / m,
            "dA1": dA1, "dZ1": dZ1, "dW1": dZ1 @ X.T / m, "db1": dZ1.sum(axis=1, keepdims=True) / m}


print(fc.check(compute_cost, params, backward_propagation(params)))
print()


# ---- 3. a CS231n-style loss returning (loss, grads): grads omitted
def loss(p):
    return compute_cost(p), {k[1:]: v for k, v in backward_propagation(p).items() if k[1:] in p}


print(fc.check(loss, params).verdict)
