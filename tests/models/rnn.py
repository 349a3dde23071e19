"""A character-level vanilla RNN written the way the deeplearning.ai course's students write it.

Course 5 ("Building your Recurrent Neural Network - Step by Step" and "Dinosaur Island --
Character-level language model"): parameters ``Wax`` (n_a, n_x), ``Waa`` (n_a, n_a),
``Wya`` (n_y, n_a), ``ba`` (n_a, 1), ``by`` (n_y, 1); one sequence of characters, one-hot
over 27 (``'\\n'`` = 0, ``'a'``..``'z'`` = 1..26), x<1> = 0 and y<t> = x<t+1>; a Python loop
over the T time steps, ``a<t> = tanh(Wax x<t> + Waa a<t-1> + ba)``,
``y_hat<t> = softmax(Wya a<t> + by)``; the cross-entropy loss summed over time (not
averaged); hand-written backpropagation through time (``rnn_step_backward``) returning the
course's gradients dict: ``dWax, dWaa, dWya, dba, dby`` and ``da_next``.

The course initialises every weight as ``randn * 0.01``; at that scale the hidden units sit
at about 1e-2 and the gradients of ``Waa`` at about 1e-4, of the order of the rounding of a
central difference of a loss of 66 (``scale=0.01`` reproduces it). The cases use weights of
order one instead (``scale=None``).
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Bug, Case, first_line, param_grads

VOCAB = 27
#: The issue's RNN: n_a = 64, 27 characters, T = 20 (7,643 parameters).
BIG = {"n_a": 64, "T": 20}
#: A small one for fast tests (5 hidden units, 6 steps: 327 parameters).
SMALL = {"n_a": 5, "T": 6}


def initialize_parameters(n_a, n_x, n_y, seed=0, scale=None):
    """Course layout; ``scale=0.01`` is the course's init, None weights of order one."""
    rng = np.random.default_rng(seed)

    def weights(rows, cols, fan_in):
        return rng.standard_normal((rows, cols)) * (scale if scale is not None else 1 / np.sqrt(fan_in))

    return {"Wax": weights(n_a, n_x, 4), "Waa": weights(n_a, n_a, n_a), "Wya": weights(n_y, n_a, n_a),
            "ba": 0.1 * rng.standard_normal((n_a, 1)), "by": 0.1 * rng.standard_normal((n_y, 1))}


def load_example(T, seed=1):
    """A random 'name' of T - 1 letters: X = [None, c1, ..., c_{T-1}], Y = [c1, ..., c_{T-1}, '\\n']."""
    chars = [int(c) for c in np.random.default_rng(seed).integers(1, VOCAB, T - 1)]
    return [None] + chars, chars + [0]


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def rnn_step_forward(parameters, a_prev, x):
    Waa, Wax, Wya, by, ba = (parameters[k] for k in ("Waa", "Wax", "Wya", "by", "ba"))
    a_next = np.tanh(np.dot(Wax, x) + np.dot(Waa, a_prev) + ba)
    p_t = softmax(np.dot(Wya, a_next) + by)
    return a_next, p_t


def rnn_forward(X, Y, a0, parameters, vocab_size=VOCAB):
    x, a, y_hat = {}, {}, {}
    a[-1] = np.copy(a0)
    loss = 0
    for t in range(len(X)):
        x[t] = np.zeros((vocab_size, 1))
        if X[t] is not None:
            x[t][X[t]] = 1
        a[t], y_hat[t] = rnn_step_forward(parameters, a[t - 1], x[t])
        loss -= np.log(y_hat[t][Y[t], 0])
    return loss, (y_hat, a, x)


def model_cost(parameters, X, Y, a0):
    """The loss of the sequence at ``parameters``: what ``fc.check`` is given."""
    loss, _ = rnn_forward(X, Y, a0, parameters)
    return float(loss)


def rnn_step_backward(dy, gradients, parameters, x, a, a_prev):
    gradients["dWya"] += np.dot(dy, a.T)
    gradients["dby"] += dy
    da = np.dot(parameters["Wya"].T, dy) + gradients["da_next"]
    daraw = (1 - a * a) * da
    gradients["dba"] += daraw
    gradients["dWax"] += np.dot(daraw, x.T)
    gradients["dWaa"] += np.dot(daraw, a_prev.T)
    gradients["da_next"] = np.dot(parameters["Waa"].T, daraw)
    return gradients


def rnn_backward(X, Y, parameters, cache, step_backward=rnn_step_backward):
    """Backpropagation through time: the course's gradients dict and the hidden states."""
    y_hat, a, x = cache
    gradients = {"d" + k: np.zeros_like(v) for k, v in parameters.items()}
    gradients["da_next"] = np.zeros_like(a[0])
    for t in reversed(range(len(X))):
        dy = np.copy(y_hat[t])
        dy[Y[t]] -= 1
        gradients = step_backward(dy, gradients, parameters, x[t], a[t], a[t - 1])
    return gradients, a


def model_backward(parameters, X, Y, a0, step_backward=rnn_step_backward):
    _, cache = rnn_forward(X, Y, a0, parameters)
    gradients, _ = rnn_backward(X, Y, parameters, cache, step_backward)
    return gradients


# ---------------------------------------------------------------------- planted bugs
def rnn_step_backward_transposed_dWaa(dy, gradients, parameters, x, a, a_prev):
    """``dWaa += np.dot(a_prev, daraw.T)``: the transposed outer product (Waa is square: no shape error)."""
    before = gradients["dWaa"].copy()
    gradients = rnn_step_backward(dy, gradients, parameters, x, a, a_prev)
    gradients["dWaa"] = before + (gradients["dWaa"] - before).T
    return gradients


def rnn_step_backward_without_da_next(dy, gradients, parameters, x, a, a_prev):
    """``da = np.dot(Wya.T, dy)``: the gradient from the next time step forgotten."""
    gradients["da_next"] = np.zeros_like(gradients["da_next"])
    return rnn_step_backward(dy, gradients, parameters, x, a, a_prev)


def build(n_a, T, seed=0, scale=None) -> Case:
    """``(cost, params, grads, meta)`` of the RNN on one seeded sequence of T characters."""
    parameters = initialize_parameters(n_a, VOCAB, VOCAB, seed, scale)
    X, Y = load_example(T, seed + 1)
    a0 = np.zeros((n_a, 1))
    cost = functools.partial(model_cost, X=X, Y=Y, a0=a0)
    grads = model_backward(parameters, X, Y, a0)

    def bug(name, step, wrong, right):
        return Bug(name, functools.partial(model_backward, X=X, Y=Y, a0=a0, step_backward=step), wrong, right,
                   doc=first_line(step))

    bugs = [bug("transposed_dWaa", rnn_step_backward_transposed_dWaa, ("Waa",), ("Wax", "Wya", "ba", "by")),
            bug("without_da_next", rnn_step_backward_without_da_next, ("Wax", "Waa", "ba"), ("Wya", "by"))]
    meta = {"layout": "rnn", "n_a": n_a, "T": T, "vocab": VOCAB, "n_params": sum(v.size for v in parameters.values()),
            "data": (X, Y), "grads_clean": param_grads(grads, parameters),
            "backward": functools.partial(model_backward, X=X, Y=Y, a0=a0),
            "layers": {"rnn_forward": rnn_forward, "rnn_backward": rnn_backward}, "bugs": {b.name: b for b in bugs}}
    return Case(cost, parameters, grads, meta)
