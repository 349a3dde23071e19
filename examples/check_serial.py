"""Check a hand-written backprop with fastcheck: one process, every coordinate.

A two-layer network (tanh hidden layer, softmax output, cross-entropy + L2) on random
data. ``cost(params)`` and ``gradients(params)`` are the user's code under test.

    python examples/check_serial.py
"""

import numpy as np

import fastcheck as fc

rng = np.random.default_rng(0)
X = rng.standard_normal((20, 200))                # examples as columns
Y = np.eye(4)[:, rng.integers(0, 4, 200)]       # one-hot labels
LAMBDA = 0.1


def forward(p):
    A1 = np.tanh(p["W1"] @ X + p["b1"])
    Z2 = p["W2"] @ A1 + p["b2"]
    Z2 = Z2 - Z2.max(axis=0, keepdims=True)
    P = np.exp(Z2) / np.exp(Z2).sum(axis=0, keepdims=True)
    return A1, P


def cost(p):
    m = X.shape[1]
    _, P = forward(p)
    l2 = LAMBDA / (2 * m) * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    return float(-np.sum(Y * np.log(P)) / m + l2)


def gradients(p):
    m = X.shape[1]
    A1, P = forward(p)
    dZ2 = (P - Y) / m
    dZ1 = (p["W2"].T @ dZ2) * (1 - A1 ** 2)
    return {"dW1": dZ1 @ X.T + LAMBDA / m * p["W1"], "db1": dZ1.sum(axis=1, keepdims=True),
            "dW2": dZ2 @ A1.T + LAMBDA / m * p["W2"], "db2": dZ2.sum(axis=1, keepdims=True)}


def init():
    r = np.random.default_rng(1)
    return {"W1": r.standard_normal((16, 20)) * 0.5, "b1": np.zeros((16, 1)),
            "W2": r.standard_normal((4, 16)) * 0.5, "b2": np.zeros((4, 1))}


if __name__ == "__main__":
    params = init()
    report = fc.check(cost, params, gradients(params))
    print(report)
