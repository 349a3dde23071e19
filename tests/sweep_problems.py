"""Purpose-built problems for the step sweep (issue 14): a small tanh network whose check warns
for three different reasons.

- :func:`one_entry_off`: the backprop's ``dW2[3, 7]`` is 0.1% too large, a real bug too small
  for the entry to count as wrong (its relative error is below the fail bound): the group warns;
- :func:`large_constant`: the cost carries a large constant (a baseline added to the loss), so
  the central differences at eps = 1e-7 carry rounding noise of about 1e-5: the group warns, the
  gradient is right;
- :func:`sharp_curvature`: the activation is a sharp one (tanh(10 z)) and the check takes
  eps = 1e-3: the central difference's truncation error makes the groups warn, the gradient is right.

Each returns ``(cost, params, grads)`` as ``fastcheck check MODULE:FUNCTION`` takes it; the
step the problem is meant to be checked at is :data:`EPS`.
"""

import numpy as np

#: The step each problem is checked at.
EPS = {"one_entry_off": 1e-7, "large_constant": 1e-7, "sharp_curvature": 1e-3}


def _network(sharpness=1.0, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((5, 16)), rng.standard_normal((4, 16))
    params = {"W1": 0.5 * rng.standard_normal((8, 5)), "b1": 0.1 * rng.standard_normal(8),
              "W2": 0.5 * rng.standard_normal((4, 8)), "b2": 0.1 * rng.standard_normal(4)}
    m = X.shape[1]

    def forward(p):
        A1 = np.tanh(sharpness * (p["W1"] @ X + p["b1"][:, None]))
        return A1, p["W2"] @ A1 + p["b2"][:, None]

    def cost(p):
        _, Z2 = forward(p)
        return offset + 0.5 / m * float(np.sum((Z2 - Y) ** 2))

    def backprop(p):
        A1, Z2 = forward(p)
        dZ2 = (Z2 - Y) / m
        dZ1 = (p["W2"].T @ dZ2) * sharpness * (1 - A1 ** 2)
        return {"dW1": dZ1 @ X.T, "db1": dZ1.sum(axis=1), "dW2": dZ2 @ A1.T, "db2": dZ2.sum(axis=1)}

    return cost, params, backprop(params)


def one_entry_off():
    cost, params, grads = _network()
    grads["dW2"][3, 7] *= 1 + 1e-3
    return cost, params, grads


def large_constant():
    return _network(offset=1e4)


def sharp_curvature():
    return _network(sharpness=10.0)
