"""The built-in multilayer perceptron, in the layout of the deep-learning courses.

Examples are columns: ``X`` has shape ``(n_x, m)``, ``Wl`` has shape ``(n_l, n_{l-1})``
and ``bl`` has shape ``(n_l, 1)``. The cost is the mean loss over the m examples plus
the L2 term ``(l2 / 2m) * sum_l ||Wl||_F^2``. Parameters are ordered ``W1, b1, W2, b2, ...``.

Output layers and their losses (computed from the logits ``Z_L``, stably):

============  =========================  ====================================
``output``    loss per example           ``dZ_L``
============  =========================  ====================================
softmax       sum_c y_c (lse(z) - z_c)   softmax(z) * sum_c y_c - y
sigmoid       sum_c softplus(z) - y z    sigmoid(z) - y
identity      1/2 sum_c (z - y)^2        z - y
============  =========================  ====================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DtypeError, InputError, a_type
from .functions import HIDDEN, OUTPUTS, activate, activation_derivative, objective_from_logits, output_delta

__all__ = ["MLP"]


class MLP:
    """A fully connected network with a built-in cost, backprop and gradient check.

    Parameters
    ----------
    layers : sequence of int
        Layer widths ``[n_x, n_1, ..., n_L]``, at least an input and an output.
    hidden : {"relu", "leaky_relu", "tanh", "sigmoid", "identity"}
        Activation of every hidden layer.
    output : {"softmax", "sigmoid", "identity"}
        Output activation; it fixes the loss (cross-entropy, binary cross-entropy,
        mean squared error).
    l2 : float
        The L2 strength lambda in ``(lambda / 2m) * sum ||Wl||_F^2``.

    Examples
    --------
    >>> import fastcheck as fc
    >>> net = fc.MLP([4, 5, 3], hidden="tanh", output="softmax", l2=0.1)
    >>> params = net.init(seed=0)
    >>> X, Y = net.random_data(m=8, seed=1)
    >>> report = net.check(params, net.gradient(params, X, Y), X, Y)
    >>> report.verdict
    'pass'
    """

    def __init__(self, layers: Sequence[int], hidden: str = "relu", output: str = "softmax", l2: float = 0.0):
        layers = tuple(layers)
        if len(layers) < 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in layers):
            raise InputError(
                f"`layers`={list(layers)!r} must list at least two positive integer widths, "
                "e.g. [784, 128, 64, 10]"
            )
        if hidden not in HIDDEN:
            raise InputError(f"`hidden`={hidden!r} is not one of {', '.join(HIDDEN)}")
        if output not in OUTPUTS:
            raise InputError(f"`output`={output!r} is not one of {', '.join(OUTPUTS)}")
        if isinstance(l2, (bool, np.bool_)) or not isinstance(l2, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(l2) and l2 >= 0):
            raise InputError(f"`l2`={l2!r} must be a finite number >= 0 (e.g. 0.1; 0 for none)")
        self.layers = tuple(int(n) for n in layers)
        self.hidden = hidden
        self.output = output
        self.l2 = float(l2)

    def __repr__(self) -> str:
        return f"MLP({list(self.layers)}, hidden={self.hidden!r}, output={self.output!r}, l2={self.l2:g})"

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.layers) - 1

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names and shapes in theta order: W1, b1, W2, b2, ..."""
        out = {}
        for layer in range(1, self.n_layers + 1):
            out[f"W{layer}"] = (self.layers[layer], self.layers[layer - 1])
            out[f"b{layer}"] = (self.layers[layer], 1)
        return out

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes.values())

    @property
    def has_kinks(self) -> bool:
        return HIDDEN[self.hidden] and self.n_layers > 1

    # ------------------------------------------------------------------ data
    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random parameters: He scaling for relu-like layers, Xavier otherwise.

        Weights are ``N(0, 1) * sqrt(g / n_{l-1})`` with g = 2 (relu, leaky_relu) or 1;
        biases are small, ``N(0, 0.01^2)``, so that every bias matters to the cost.
        """
        rng = np.random.default_rng(seed)
        gain = 2.0 if HIDDEN[self.hidden] else 1.0
        params = {}
        for layer in range(1, self.n_layers + 1):
            n_in, n_out = self.layers[layer - 1], self.layers[layer]
            params[f"W{layer}"] = rng.standard_normal((n_out, n_in)) * np.sqrt(gain / n_in)
            params[f"b{layer}"] = rng.standard_normal((n_out, 1)) * 0.01
        return params

    def random_data(self, m: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Random inputs ``X`` (n_x, m) and fitting targets ``Y`` (n_y, m).

        Targets are one-hot classes for softmax, 0/1 labels for sigmoid and standard
        normal values for identity.
        """
        if not (isinstance(m, (int, np.integer)) and m > 0):
            raise InputError(f"`m`={m!r} must be a positive integer number of examples")
        rng = np.random.default_rng(seed)
        n_x, n_y = self.layers[0], self.layers[-1]
        X = rng.standard_normal((n_x, m))
        if self.output == "softmax":
            Y = np.zeros((n_y, m))
            Y[rng.integers(0, n_y, size=m), np.arange(m)] = 1.0
        elif self.output == "sigmoid":
            Y = rng.integers(0, 2, size=(n_y, m)).astype(np.float64)
        else:
            Y = rng.standard_normal((n_y, m))
        return X, Y

    # ------------------------------------------------------------------ maths
    def forward(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> tuple[list, list]:
        """Pre-activations ``[Z1, ..., ZL]`` and activations ``[A0 = X, A1, ..., A_{L-1}]``.

        The output activation is left to the loss, which works from the logits ``ZL``.
        """
        zs, acts = [], [X]
        for layer in range(1, self.n_layers + 1):
            z = params[f"W{layer}"] @ acts[-1] + params[f"b{layer}"]
            zs.append(z)
            if layer < self.n_layers:
                acts.append(activate(self.hidden, z))
        return zs, acts

    def regularization(self, params: Mapping[str, np.ndarray], m: int) -> float:
        """``(l2 / 2m) * sum_l ||Wl||_F^2``."""
        if self.l2 == 0.0:
            return 0.0
        # numpy scalars, not Python floats: traced parameters give a traced term (same values)
        total = sum(np.sum(params[f"W{layer}"] ** 2) for layer in range(1, self.n_layers + 1))
        return self.l2 / (2.0 * m) * total

    def cost(self, params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
        """J: the mean loss over the examples plus the L2 term."""
        return float(self.objective(params, X, Y))

    def objective(self, params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray):
        """J as :meth:`cost`, bit for bit, left a numpy value: the traced engine can follow it."""
        zs, _ = self.forward(params, X)
        return objective_from_logits(self.output, zs[-1], Y, self.regularization(params, X.shape[1]))

    def kink_states(self, zs: list) -> list[np.ndarray]:
        """For relu-like hidden layers, the boolean state ``Z > 0`` of every unit and example."""
        if not HIDDEN[self.hidden]:
            return []
        return [z > 0 for z in zs[:-1]]

    def gradient(self, params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
        """A correct backprop: ``{"dW1": ..., "db1": ..., ...}`` in the course's names."""
        return self.backprop(params, X, Y)

    def backprop(self, params, X, Y, derivative=None) -> dict[str, np.ndarray]:
        """Backprop with a replaceable hidden-activation derivative.

        ``derivative(layer, z, a)`` returns g'(z) for hidden ``layer`` (1-based); the
        default is the true derivative. The bug catalogue plants wrong ones here.
        """
        if derivative is None:
            def derivative(layer, z, a):
                return activation_derivative(self.hidden, z, a)
        zs, acts = self.forward(params, X)
        m = X.shape[1]
        grads = {}
        dz = output_delta(self.output, zs[-1], Y)
        for layer in range(self.n_layers, 0, -1):
            W = params[f"W{layer}"]
            grads[f"dW{layer}"] = dz @ acts[layer - 1].T / m + (self.l2 / m) * W
            grads[f"db{layer}"] = dz.sum(axis=1, keepdims=True) / m
            if layer > 1:
                dz = (W.T @ dz) * derivative(layer - 1, zs[layer - 2], acts[layer - 1])
        return {"d" + name: grads["d" + name] for name in self.shapes}

    # ------------------------------------------------------------------ checking
    def validate_data(self, X, Y) -> tuple[np.ndarray, np.ndarray]:
        """Check that ``X`` and ``Y`` fit this network; return them as C-contiguous float64."""
        out = []
        for name, arr, rows in (("X", X, self.layers[0]), ("Y", Y, self.layers[-1])):
            if not isinstance(arr, np.ndarray):
                raise DtypeError(f"`{name}` is {a_type(arr)}; pass a float64 numpy array")
            if arr.dtype != np.float64:
                raise DtypeError(f"`{name}` has dtype {arr.dtype}; convert it with .astype(np.float64)")
            if arr.ndim != 2 or arr.shape[0] != rows:
                raise InputError(
                    f"`{name}` has shape {arr.shape} but this network needs ({rows}, m): "
                    "examples are columns"
                )
            if not np.isfinite(arr).all():
                raise InputError(f"`{name}` has non-finite values")
            out.append(np.ascontiguousarray(arr))
        if out[0].shape[1] != out[1].shape[1]:
            raise InputError(f"`X` has {out[0].shape[1]} examples (columns) but `Y` has {out[1].shape[1]}")
        if out[0].shape[1] == 0:
            raise InputError("`X` and `Y` have no examples (0 columns): the cost is a mean over examples")
        return out[0], out[1]

    def validate_params(self, params) -> None:
        """Check that ``params`` has exactly this network's names, order and shapes."""
        if not isinstance(params, Mapping):
            raise InputError(f"`params` is {a_type(params)}; pass the dict returned by net.init()")
        expected = self.shapes
        if list(params) != list(expected):
            raise InputError(
                f"`params` has keys {list(params)} but {self!r} needs {list(expected)} in that order"
            )
        for name, shape in expected.items():
            arr = params[name]
            if isinstance(arr, np.ndarray) and arr.shape != shape:
                raise InputError(f"`params[{name!r}]` has shape {arr.shape} but this network needs {shape}")

    def check(self, params, grads, X, Y, *, engine: str | None = None, **options):
        """Check ``grads`` against central differences of this network's cost.

        Parameters
        ----------
        params : dict of str -> ndarray
            ``{"W1": (n_1, n_x), "b1": (n_1, 1), ...}``, float64, as from :meth:`init`.
        grads : dict of str -> ndarray, or callable
            The gradient under test, named ``"W1"`` or ``"dW1"``; a callable is called
            with ``params``.
        X : ndarray of shape (n_x, m)
        Y : ndarray of shape (n_y, m)
        engine : {"batched", "reference"}, optional
            ``"batched"`` (the default) stacks many perturbations into one pass and
            reuses exactly what a perturbation cannot change; ``"reference"`` is the
            literal loop, one full forward pass per +eps and per -eps. Left unset, on
            a fresh install whose numba kernels are not compiled yet, the check runs on
            the traced engine (numpy, exact) while they compile in the background, and
            ``report.settings["batched_not_used"]`` says so; given, it forces the engine.
        **options
            ``eps``, ``mode``, ``fraction``, ``n_samples``, ``n_directions``, ``distribution``,
            ``min_per_group``, ``seed``, ``escalate``, ``escalate_budget``, ``budget``,
            ``warn``, ``fail``, ``cast``, ``stencil``, ``sweep``: as in :func:`fastcheck.check`; ``kinks``
            ("exclude", the default, or "include"); ``max_memory`` (bytes per chunk)
            and ``n_threads`` for the batched engine.

        Returns
        -------
        Report
        """
        from ..api import check_mlp

        return check_mlp(self, params, grads, X, Y, engine=engine, **options)

    def plan(self, params, X, Y, **options):
        """What :meth:`check` would do with ``options``, and about how long it would take."""
        from ..api import plan_mlp

        return plan_mlp(self, params, X, Y, **options)
