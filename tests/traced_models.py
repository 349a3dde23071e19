"""User-style numpy models, written as users write them, for the traced engine's tests and benchmarks.

Each builder returns ``(cost, params, grads)``: the cost closes over its data, ``grads`` is
the model's own backprop where it has one (course MLP, CS231n net, RNN) and None otherwise.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def course_mlp(sizes=(12, 7, 5, 1), m=9, lambd=0.7, seed=0, hidden="relu"):
    """deeplearning.ai layout: examples as columns, W1 (n1, n0), b1 (n1, 1), ..., sigmoid output, BCE + L2."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((sizes[0], m))
    Y = (rng.random((1, m)) > 0.5).astype(np.float64)
    L = len(sizes) - 1
    params = {}
    for l in range(1, L + 1):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) * np.sqrt(2.0 / sizes[l - 1])
        params[f"b{l}"] = rng.standard_normal((sizes[l], 1)) * 0.1

    def act(Z):
        return np.maximum(0, Z) if hidden == "relu" else 1 / (1 + np.exp(-Z))

    def forward(p):
        A, caches = X, []
        for l in range(1, L + 1):
            Z = np.dot(p[f"W{l}"], A) + p[f"b{l}"]
            caches.append((A, Z))
            A = 1 / (1 + np.exp(-Z)) if l == L else act(Z)
        return A, caches

    def cost(p):
        AL, _ = forward(p)
        cross_entropy = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
        l2 = lambd / (2 * m) * sum(np.sum(np.square(p[f"W{l}"])) for l in range(1, L + 1))
        return cross_entropy + l2

    def backprop(p):
        AL, caches = forward(p)
        grads, dZ = {}, AL - Y
        for l in range(L, 0, -1):
            A_prev, _ = caches[l - 1]
            grads[f"dW{l}"] = np.dot(dZ, A_prev.T) / m + lambd / m * p[f"W{l}"]
            grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
            if l > 1:
                dA = np.dot(p[f"W{l}"].T, dZ)
                Z_prev = caches[l - 2][1]
                if hidden == "relu":
                    dZ = dA * (Z_prev > 0)
                else:
                    s = 1 / (1 + np.exp(-Z_prev))
                    dZ = dA * s * (1 - s)
        return grads

    return cost, params, backprop(params)


def cs231n_net(D=10, H=8, C=4, N=7, reg=0.1, seed=0):
    """CS231n layout: examples as rows, affine - ReLU - affine - softmax, 0.5 * reg * sum(W**2)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = {"W1": 0.5 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
              "W2": 0.5 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}

    def loss(p, grads=False):
        hidden = np.maximum(0, X @ p["W1"] + p["b1"])  # X.dot(W1): a plain array's method, not traceable
        scores = hidden.dot(p["W2"]) + p["b2"]
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        data_loss = -np.sum(log_probs[np.arange(N), y]) / N
        total = data_loss + 0.5 * reg * (np.sum(p["W1"] * p["W1"]) + np.sum(p["W2"] * p["W2"]))
        if not grads:
            return total
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        dhidden = dscores.dot(p["W2"].T) * (hidden > 0)
        return {"W1": X.T.dot(dhidden) + reg * p["W1"], "b1": dhidden.sum(axis=0),
                "W2": hidden.T.dot(dscores) + reg * p["W2"], "b2": dscores.sum(axis=0)}

    return loss, params, loss(params, grads=True), X


def cnn(N=2, C=3, HW=8, F=4, classes=5, seed=0):
    """conv 3x3 (np.pad + sliding_window_view + einsum), ReLU, 2x2 max-pool, dense, softmax."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, HW, HW))
    y = rng.integers(0, classes, N)
    params = {"W1": rng.standard_normal((F, C, 3, 3)) * 0.3, "b1": rng.standard_normal(F) * 0.1,
              "W2": rng.standard_normal((F * (HW // 2) ** 2, classes)) * 0.1, "b2": np.zeros(classes)}

    def cost(p):
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = sliding_window_view(padded, (3, 3), axis=(2, 3))
        conv = np.einsum("nchwij,fcij->nfhw", windows, p["W1"]) + p["b1"][None, :, None, None]
        relu = np.maximum(conv, 0)
        pooled = relu.reshape(N, F, HW // 2, 2, HW // 2, 2).max(axis=(3, 5))
        scores = pooled.reshape(N, -1) @ p["W2"] + p["b2"]
        scores = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        return -np.mean(np.log(probs[np.arange(N), y]))

    return cost, params, None


def batchnorm_net(N=8, D=6, H=5, seed=0):
    """affine - batch norm (training mode) - tanh - affine, squared error."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    target = rng.standard_normal((N, 2))
    params = {"W1": rng.standard_normal((D, H)), "gamma": 1 + 0.1 * rng.standard_normal(H),
              "beta": 0.1 * rng.standard_normal(H), "W2": rng.standard_normal((H, 2))}

    def cost(p):
        h = X @ p["W1"]
        mu = h.mean(axis=0)
        var = h.var(axis=0)
        normed = (h - mu) / np.sqrt(var + 1e-5)
        out = np.tanh(p["gamma"] * normed + p["beta"]) @ p["W2"]
        return 0.5 * np.sum((out - target) ** 2) / N

    return cost, params, None


def rnn(n_a=5, vocab=6, T=4, seed=0):
    """A vanilla character RNN unrolled in a Python loop (deeplearning.ai's rnn_forward style), softmax loss."""
    rng = np.random.default_rng(seed)
    chars = rng.integers(0, vocab, T + 1)
    params = {"Wax": rng.standard_normal((n_a, vocab)) * 0.3, "Waa": rng.standard_normal((n_a, n_a)) * 0.3,
              "Wya": rng.standard_normal((vocab, n_a)) * 0.3, "ba": np.zeros((n_a, 1)), "by": np.zeros((vocab, 1))}

    def cost(p):
        a = np.zeros((n_a, 1))
        loss = 0
        for t in range(T):
            x = np.zeros((vocab, 1))
            x[chars[t]] = 1
            a = np.tanh(np.dot(p["Wax"], x) + np.dot(p["Waa"], a) + p["ba"])
            z = np.dot(p["Wya"], a) + p["by"]
            e = np.exp(z - np.max(z))
            y_hat = e / np.sum(e, axis=0)
            loss -= np.log(y_hat[chars[t + 1], 0])
        return loss

    return cost, params, None


def plain_mlp(sizes=(12, 7, 5, 4), m=9, l2=0.1, seed=0, hidden="relu"):
    """The built-in ``fc.MLP`` written as plain numpy: ReLU/tanh hidden, softmax + cross-entropy, (l2 / 2m) sum ||W||^2.

    Returns ``(cost, params, grads, net, X, Y)``: the network, data and correct gradient of
    ``fc.MLP(sizes, hidden, "softmax", l2)``, so the same problem runs through ``net.check``.
    """
    import fastcheck as fc

    net = fc.MLP(list(sizes), hidden=hidden, output="softmax", l2=l2)
    params = net.init(seed=seed)
    X, Y = net.random_data(m=m, seed=seed + 1)
    L = len(sizes) - 1

    def cost(p):
        A = X
        for l in range(1, L + 1):
            Z = p[f"W{l}"] @ A + p[f"b{l}"]
            A = Z if l == L else (np.maximum(0, Z) if hidden == "relu" else np.tanh(Z))
        shifted = A - np.max(A, axis=0, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True))
        return -np.sum(Y * log_probs) / m + l2 / (2 * m) * sum(np.sum(p[f"W{l}"] ** 2) for l in range(1, L + 1))

    return cost, params, net.gradient(params, X, Y), net, X, Y


def pool_net(seed=0, bug=None):
    """CS231n style, returning (loss, grads): dense, ReLU, a 2-wide max-pool, dense, softmax.

    Its backward accumulates into plain ``np.zeros`` in loops (a naive max-pool backward).
    """
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((5, 6)), rng.integers(0, 3, 5)
    params = {"W1": rng.standard_normal((6, 8)) * 0.5, "b1": rng.standard_normal(8) * 0.1,
              "W2": rng.standard_normal((4, 3)) * 0.5, "b2": np.zeros(3)}

    def loss(p):
        h = X @ p["W1"] + p["b1"]
        r = np.maximum(0, h)
        m = r.reshape(5, 4, 2).max(axis=2)
        s = m @ p["W2"] + p["b2"]
        shifted = s - np.max(s, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        probs = np.exp(log_probs)
        data_loss = -np.sum(log_probs[np.arange(5), y]) / 5
        ds = probs.copy()
        ds[np.arange(5), y] -= 1
        ds /= 5
        grads = {"W2": m.T @ ds, "b2": ds.sum(axis=0)}
        dm = ds @ p["W2"].T
        dr = np.zeros((5, 8))  # plain, as course code allocates it
        for j in range(4):  # the naive max-pool backward
            win = r[:, 2 * j:2 * j + 2]
            mask = win == win.max(axis=1, keepdims=True)
            dr[:, 2 * j:2 * j + 2] += mask * dm[:, j:j + 1]
        dh = dr * (h > 0)
        grads["W1"] = np.zeros((6, 8))
        for n in range(5):
            grads["W1"] += np.outer(X[n], dh[n])
        grads["b1"] = dh.sum(axis=0)
        total = data_loss + 0.05 * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))  # after the backward, as CS231n
        grads["W1"] += 0.1 * p["W1"]
        grads["W2"] += 0.1 * p["W2"]
        if bug == "W1":
            grads["W1"][2, 5] *= 1.1
        return total, grads

    return loss, params


def softmax_regression(N=3000, D=300, classes=4, seed=0, shift=True):
    """Softmax regression on tall data, CS231n's ``softmax_loss_vectorized`` (the max-shift optional)."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((N, D)), rng.integers(0, classes, N)
    params = {"W": rng.standard_normal((D, classes)) * 0.01}

    def cost(p):
        s = X @ p["W"]
        if shift:
            s = s - s.max(axis=1, keepdims=True)
        log_probs = s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))
        return -np.mean(log_probs[np.arange(N), y])

    return cost, params, None
