"""Check the backprop of a deep network written as in the deeplearning.ai course.

The course's functions, as its students write them: examples as columns, parameters
W1, b1, ..., WL, bL, ReLU hidden layers, a sigmoid output, binary cross-entropy with the
L2 term (lambd / 2m) * sum ||Wl||^2, caches from the forward pass and the full gradients
dict (dA0, dW1, db1, ...) from the backward pass. The network is 784-120-40-1 on 64
examples: 99,081 parameters.

    python examples/user_course_mlp.py
"""

import numpy as np

import fastcheck as fc

LAYER_DIMS = [784, 120, 40, 1]
LAMBD = 0.7
rng = np.random.default_rng(1)
X = rng.random((784, 64))                                # 64 images as columns
Y = rng.integers(0, 2, size=(1, 64)).astype(np.float64)  # 0/1 labels


def initialize_parameters_deep(layer_dims, seed=0):
    r = np.random.default_rng(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):
        parameters["W" + str(l)] = r.standard_normal((layer_dims[l], layer_dims[l - 1])) / np.sqrt(layer_dims[l - 1])
        parameters["b" + str(l)] = np.zeros((layer_dims[l], 1))
    return parameters


def L_model_forward(X, parameters):
    caches, A, L = [], X, len(parameters) // 2
    for l in range(1, L + 1):
        W, b = parameters["W" + str(l)], parameters["b" + str(l)]
        Z = np.dot(W, A) + b
        caches.append(((A, W, b), Z))
        A = 1 / (1 + np.exp(-Z)) if l == L else np.maximum(0, Z)
    return A, caches


def compute_cost(AL, Y, parameters, lambd):
    m = Y.shape[1]
    cross_entropy = -(np.dot(Y, np.log(AL).T) + np.dot(1 - Y, np.log(1 - AL).T)) / m
    L2 = sum(np.sum(np.square(parameters["W" + str(l)])) for l in range(1, len(parameters) // 2 + 1))
    return float(np.squeeze(cross_entropy) + lambd / (2 * m) * L2)


def L_model_backward(AL, Y, caches, lambd):
    grads, L = {}, len(caches)
    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    for l in reversed(range(1, L + 1)):
        (A_prev, W, b), Z = caches[l - 1]
        m = A_prev.shape[1]
        if l == L:
            s = 1 / (1 + np.exp(-Z))
            dZ = dA * s * (1 - s)
        else:
            dZ = np.array(dA, copy=True)
            dZ[Z <= 0] = 0
        grads["dW" + str(l)] = np.dot(dZ, A_prev.T) / m + lambd / m * W
        grads["db" + str(l)] = np.sum(dZ, axis=1, keepdims=True) / m
        grads["dA" + str(l - 1)] = dA = np.dot(W.T, dZ)
    return grads


def cost(parameters):
    """J(parameters) on (X, Y): a module-level function, so it also runs in worker processes."""
    AL, _ = L_model_forward(X, parameters)
    return compute_cost(AL, Y, parameters, LAMBD)


if __name__ == "__main__":
    parameters = initialize_parameters_deep(LAYER_DIMS)
    AL, caches = L_model_forward(X, parameters)
    grads = L_model_backward(AL, Y, caches, LAMBD)  # dA0, dA1, dA2 as well: fastcheck leaves them aside

    print(fc.plan(cost, parameters))  # every coordinate, one cost evaluation per +-eps
    report = fc.check(cost, parameters, grads, mode="subset", n_samples=500, seed=0)
    print(report)
    print("gradients that are not parameters, left aside:", ", ".join(report.settings["grads_not_parameters"]))
