"""Check a hand-written backprop with a vectorized cost: many perturbed thetas per call.

``batch_cost(thetas)`` takes a (k, n) stack of flat parameter vectors (the order of
``params``: W1, b1, W2, b2, each in C order) and returns their k costs. fastcheck
stacks the perturbed thetas (theta with one coordinate at +eps or -eps) and calls it
on stacks of bounded size. It must compute the same J as ``cost``: fastcheck compares
them at the unperturbed parameters first.

    python examples/check_vectorized.py
"""

import numpy as np
from check_serial import LAMBDA, X, Y, cost, gradients, init

import fastcheck as fc

SHAPES = [("W1", (16, 20)), ("b1", (16, 1)), ("W2", (4, 16)), ("b2", (4, 1))]


def unflatten(thetas):
    """Views (k, *shape) of each parameter in a (k, n) stack."""
    out, start = {}, 0
    for name, shape in SHAPES:
        size = int(np.prod(shape))
        out[name] = thetas[:, start:start + size].reshape(-1, *shape)
        start += size
    return out


def batch_cost(thetas):
    p = unflatten(thetas)
    m = X.shape[1]
    A1 = np.tanh(p["W1"] @ X + p["b1"])                       # (k, 16, m)
    Z2 = p["W2"] @ A1 + p["b2"]                               # (k, 4, m)
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    log_p = Z2 - np.log(np.exp(Z2).sum(axis=1, keepdims=True))
    l2 = LAMBDA / (2 * m) * (np.sum(p["W1"] ** 2, axis=(1, 2)) + np.sum(p["W2"] ** 2, axis=(1, 2)))
    return -np.sum(Y * log_p, axis=(1, 2)) / m + l2


if __name__ == "__main__":
    params = init()
    report = fc.check(cost, params, gradients(params), batch_cost=batch_cost)
    print(report)
