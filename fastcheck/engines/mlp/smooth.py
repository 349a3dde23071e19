"""The smooth shortcut of the batched engine: tanh and sigmoid layers by certified Taylor polynomials.

A perturbation of ``Wl[j, k]`` (or ``bl[j]``) changes row j of Zl by ``t_e = d A_{l-1}[k, e]``
and nothing else before the loss, so each example's loss change is a function
``loss_e(t)`` of one number, the same function for every perturbation of row j. For a
hidden layer l this computes, once per layer, the Taylor coefficients ``c_1, ..., c_N``
of ``loss_e`` at 0 for every (j, e) by Taylor arithmetic on the base pass (the powers of
the change through row j, the derivatives of the activations, ``exp``/``log1p`` of the
losses; layer l+1, whose change is rank one, by one matrix product per order
``Q_k = (W_{l+1}^k)^T [W_{l+2}^T * g^(k)(Z_{l+1}) / k!]``, later layers by products of
the stacked series), and each coordinate's loss change is
then ``sum_e t_e (c_1 + t_e (c_2 + ...)) = d (S_1 + d (S_2 + ...))`` with
``S_n = sum_e c_n[j, e] A_{l-1}[k, e]^n``: one matrix product per order for the whole layer,
instead of a propagation through the later layers per coordinate.

Certificate. The polynomial is used for (j, e) only where its truncation error is proven
below ``TOLERANCE |c_1| T_e`` for every ``|t| <= T_e = max|d| max_k |A_{l-1}[k, e]|``
(``max|d|`` over every coordinate of the layer, so the certificate does not depend on
which coordinates a call asks for), far below the rounding of the sum over examples. The
proof is Cauchy's estimate: ``loss_e`` is analytic in t on the complex disk
``|t| <= rho``, where it is bounded by ``M`` (each hidden unit's change bounded through
the layers by ``sup |g'|`` on its own disk, ``1 / (cosh^2(|z| - r) - sin^2 r)`` for tanh,
the loss by ``-log(1 - sum p (e^R - 1))``...), so the remainder after degree N is at most
``M q^(N+1) / (1 - q)`` with ``q = T_e / rho`` (doubled, against the rounding of the bound
itself). N (at most ``MAX_ORDER``) is the degree of least work, counting a matrix product
per degree against the general path of each pair a lower degree leaves uncertified.
Pairs without a certificate take the general path (the exact propagation of
:mod:`fastcheck.engines.mlp.kernels`), and their sums are added to the polynomial's over
the certified examples. Nothing here uses the gradient under test: every
coefficient comes from the base forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from ...mlp.functions import output_aux, output_delta, sigmoid

__all__ = ["SmoothLayer", "covers", "smooth_layer", "MAX_ORDER", "TOLERANCE"]

#: Highest degree of the polynomials.
MAX_ORDER = 8
#: Certified truncation error, relative to ``|c_1| T_e`` (the size of the example's change).
TOLERANCE = 2.0**-60
#: Work of the general path per multiply-add, relative to a matrix product's (for the choice of degree).
PATH_COST = 4
#: Radii the complex disks are sized for: a hidden unit's change, a logit's change.
HIDDEN_REACH = 0.5
LOGIT_REACH = 0.25
#: Bytes of temporaries per block of rows; fixed (not ``max_memory``) so that results never
#: depend on the block size through BLAS's choice of kernels.
BLOCK_BYTES = 64 * 2**20
#: Bytes of the per-coordinate sums kept per block of rows (likewise fixed).
SUM_BLOCK_BYTES = 64 * 2**20


class SmoothLayer:
    """The certified polynomials of one layer, and the sums they give per coordinate.

    ``coefs`` (n_l, N, m): coefficient of ``t^(n+1)`` of example e's loss change for row j,
    zero where ``certified`` (n_l, m) is false; ``ain`` (n_{l-1} + 1, m): ``[A_{l-1}; 1]``.
    """

    def __init__(self, coefs: np.ndarray, certified: np.ndarray, ain: np.ndarray):
        self.coefs, self.certified, self.ain = coefs, certified, ain
        order = coefs.shape[1]
        used = certified.any(axis=0)  # the other examples' columns are zero (and their powers may overflow)
        x = np.where(used[:, None], ain.T, 0.0)  # (m, n_{l-1} + 1)
        self._powers = [x]
        for _ in range(1, order):
            self._powers.append(self._powers[-1] * x)
        self._rows = max(1, SUM_BLOCK_BYTES // (8 * order * ain.shape[0]))

    def _block(self, b: int) -> np.ndarray:
        """``S[n, j, k] = sum_e coefs[j, n, e] ain[k, e]^(n+1)`` for the rows of block b.

        Not kept: a call computes each block it needs once, and blocks are fixed by the
        layer alone, so every call gets the same numbers for the same coordinate.
        """
        c = self.coefs[b * self._rows:(b + 1) * self._rows]
        return np.stack([c[:, n, :] @ power for n, power in enumerate(self._powers)])

    def sums(self, rows: np.ndarray, cols: np.ndarray, steps) -> tuple[np.ndarray, np.ndarray]:
        """Per coordinate (j, k) and step d: ``sum_e`` of the certified examples' loss changes,
        ``d (S_1 + d (S_2 + ...))``; both signs (``steps = (d_plus, d_minus)``)."""
        out = (np.empty(rows.size), np.empty(rows.size))
        block_of = rows // self._rows
        for b in np.unique(block_of):
            at = np.flatnonzero(block_of == b)
            S = self._block(int(b))[:, rows[at] - b * self._rows, cols[at]]
            for d, total in zip(steps, out):
                d = d[at]
                acc = S[-1].copy()
                for n in range(S.shape[0] - 2, -1, -1):
                    acc = S[n] + d * acc
                total[at] = d * acc
        return out


def covers(net, layer: int) -> bool:
    """Whether the shortcut serves ``layer``: a hidden layer of tanh or sigmoid units."""
    return net.hidden in ("tanh", "sigmoid") and layer < net.n_layers


# ---------------------------------------------------------------- activations
def _derivative_terms(hidden: str, order: int) -> list[dict]:
    """``g^(k) / k!`` for k = 1..order as polynomials ``{(p, q): coefficient}`` in (u, v).

    tanh: u = tanh z, v = sech^2 z (du = v, dv = -2 u v); sigmoid: u = s(z), v = s(-z)
    (du = u v, dv = -u v). Written in v rather than 1 - u^2 so that saturated units keep
    their accuracy.
    """
    terms, poly = [], {(0, 1): 1.0} if hidden == "tanh" else {(1, 1): 1.0}
    for k in range(1, order + 1):
        terms.append({key: c / math.factorial(k) for key, c in poly.items()})
        new = {}
        for (p, q), c in poly.items():
            if hidden == "tanh":
                parts = [((p - 1, q + 1), p * c), ((p + 1, q), -2.0 * q * c)]
            else:
                parts = [((p, q + 1), p * c), ((p + 1, q), -q * c)]
            for key, value in parts:
                if value:
                    new[key] = new.get(key, 0.0) + value
        poly = new
    return terms


def _uv(hidden: str, z: np.ndarray):
    if hidden == "tanh":
        q = np.exp(-2.0 * np.abs(z))
        return np.tanh(z), 4.0 * q / (1.0 + q) ** 2  # sech^2 without overflow
    return sigmoid(z), sigmoid(-z)


def _taylor(hidden: str, z: np.ndarray, order: int) -> list[np.ndarray]:
    """``[g'(z), g''(z) / 2, ..., g^(order)(z) / order!]``."""
    u, v = _uv(hidden, z)
    out = []
    for poly in _derivative_terms(hidden, order):
        total = np.zeros_like(z)
        for (p, q), c in poly.items():
            total += c * u**p * v**q
        out.append(total)
    return out


def _slope_bound(hidden: str, z: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``sup |g'(w)|`` over the complex disk ``|w - z| <= r`` (inf where g may have a pole there).

    ``|cosh(a + ib)|^2 = cosh^2 a - sin^2 b``; g' is ``1 / cosh^2 w`` for tanh and
    ``1 / (4 cosh^2(w / 2))`` for the sigmoid.
    """
    scale, factor = (1.0, 1.0) if hidden == "tanh" else (0.5, 4.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = np.maximum(np.abs(z) - r, 0.0) * scale
        b = np.minimum(r * scale, 0.5 * np.pi)
        den = factor * (np.cosh(a) ** 2 - np.sin(b) ** 2)
        return np.where((den > 0) & (r * scale < 0.5 * np.pi), 1.0 / den, np.inf)


# ---------------------------------------------------------------- losses
def _loss_bound(output: str, R: np.ndarray, aux: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Bound on ``|loss change|`` when each logit changes by at most ``R`` (.., n_L, m), complex."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        linear = (np.abs(Y) * R).sum(axis=-2)
        if output == "softmax":
            w = (aux * np.expm1(R)).sum(axis=-2)
            bound = np.abs(Y).sum(axis=0) * -np.log1p(-w) + linear
            return np.where(w < 1.0, bound, np.inf)
        if output == "sigmoid":
            w = aux * np.expm1(R)
            bound = (-np.log1p(-w)).sum(axis=-2) + linear
            return np.where((w < 1.0).all(axis=-2), bound, np.inf)
        return (R * (np.abs(aux) + 0.5 * R)).sum(axis=-2)


def _exp_jet(X: list) -> list:
    """Coefficients of ``exp(x(t))`` for ``x = sum_n X[n] t^n`` (X[0] unused)."""
    E = [1.0]
    for n in range(1, len(X)):
        E.append(sum(k * X[k] * E[n - k] for k in range(1, n + 1)) / n)
    return E


def _log1p_jet(S: list) -> list:
    """Coefficients of ``log1p(s(t))`` for ``s = sum_n S[n] t^n`` (S[0] unused)."""
    out = [None]
    for n in range(1, len(S)):
        out.append(S[n] - sum(k * out[k] * S[n - k] for k in range(1, n)) / n)
    return out


def _loss_jets(output: str, X: list, aux, Y, delta) -> list:
    """Coefficients ``[c_1, ..., c_N]`` (each (rows, m)) of the loss change for logit jets X (rows, n_L, m)."""
    coefs = [(delta * X[1]).sum(axis=1)]  # the first order from the loss derivative: no cancellation
    if len(X) <= 2:
        return coefs
    if output == "softmax":
        E = _exp_jet(X)
        lse = _log1p_jet([None] + [(aux * E[n]).sum(axis=1) for n in range(1, len(X))])
        y_sum = Y.sum(axis=0)
        coefs += [y_sum * lse[n] - (Y * X[n]).sum(axis=1) for n in range(2, len(X))]
    elif output == "sigmoid":
        E = _exp_jet(X)
        soft = _log1p_jet([None] + [aux * E[n] for n in range(1, len(X))])
        coefs += [(soft[n] - Y * X[n]).sum(axis=1) for n in range(2, len(X))]
    else:
        coefs += [(aux * X[n] + 0.5 * sum(X[i] * X[n - i] for i in range(1, n))).sum(axis=1)
                  for n in range(2, len(X))]
    return coefs


# ---------------------------------------------------------------- one layer
def _powers(a: list) -> list:
    """``pw[k][n]``: coefficient of t^n in ``(sum_i a[i] t^i)^k``, for 1 <= k <= n < len(a)."""
    order = len(a) - 1
    pw = [None, a]
    for k in range(2, order + 1):
        prev = pw[k - 1]
        pw.append([None] * k + [sum(a[i] * prev[n - i] for i in range(1, n - k + 2)) for n in range(k, order + 1)])
    return pw


def _largest_step(params, layer: int, eps) -> float:
    """The largest step ``|fl(theta_i +- eps_i) - theta_i|`` of the layer's coordinates (W_l, then b_l);
    ``eps`` one nominal step or one per coordinate."""
    theta = np.concatenate([params[f"W{layer}"].ravel(), params[f"b{layer}"].ravel()])
    return float(max(np.abs((theta + eps) - theta).max(), np.abs((theta - eps) - theta).max()))


def _order(M, q, c1, T, order_cost, pair_cost) -> tuple[int, np.ndarray]:
    """The degree (at most MAX_ORDER) and the pairs it certifies, least work first: each degree
    costs ``order_cost``, each pair left to the general path ``pair_cost``."""
    usable = (q < 0.5) & np.isfinite(M)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        scale = np.where(usable, 2.0 * M / (1.0 - q), np.inf)
        allowed = TOLERANCE * np.abs(c1) * T
        passes = [usable & (scale * q ** (n + 1) <= allowed) for n in range(1, MAX_ORDER + 1)]
    work = [n * order_cost + (~ok).sum() * pair_cost for n, ok in enumerate(passes, start=1)]
    n = int(np.argmin(work)) + 1
    return n, passes[n - 1]


def smooth_layer(net, params, zs, acts, Y, layer: int, eps) -> SmoothLayer:
    """The certified polynomials of ``layer`` (see the module docstring); ``covers(net, layer)``.

    ``zs``, ``acts`` are the base pass of :meth:`fastcheck.MLP.forward`; ``eps`` the nominal
    step, or one per coordinate of the layer (W_l, then b_l).
    """
    chain = _Chain(net, params, zs, Y, layer)
    z, m = chain.z, chain.m
    ain = np.vstack([acts[layer - 1], np.ones((1, m))])
    T = _largest_step(params, layer, eps) * np.abs(ain).max(axis=0)
    M, rho = np.empty_like(z), np.empty_like(z)
    for js in chain.blocks(4):
        M[js], rho[js] = chain.bound(js)
    widths = net.layers[layer + 1:]
    path = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + sum(widths)  # one example, one coordinate
    order, certified = _order(M, T / rho, chain.first_order(), T, z.size * (path + ain.shape[0]),
                              PATH_COST * ain.shape[0] * path)
    coefs = np.empty((z.shape[0], order, m))
    for js in chain.blocks(order * order + 3 * order + 2):
        for n, c in enumerate(chain.coefficients(js, order)):
            coefs[js, n, :] = c
    coefs *= certified[:, None, :]
    return SmoothLayer(coefs, certified, ain)


class _Chain:
    """What a change of row j of Z_l goes through: the later layers of the base pass."""

    def __init__(self, net, params, zs, Y, layer):
        self.net, self.layer, self.hidden = net, layer, net.hidden
        self.weights = {h: params[f"W{h}"] for h in range(layer + 1, net.n_layers + 1)}
        self.zs, self.z, self.m = zs, zs[layer - 1], zs[layer - 1].shape[1]
        self.aux, self.Y = output_aux(net.output, zs[-1], Y), Y
        self.delta = output_delta(net.output, zs[-1], Y)
        # every later hidden unit may move by HIDDEN_REACH: its slope is bounded there, once
        self.lam = {h: _slope_bound(self.hidden, zs[h - 1], np.full_like(zs[h - 1], HIDDEN_REACH))
                    for h in range(layer + 1, net.n_layers)}
        self._memo = {}

    def blocks(self, arrays: int) -> list:
        """Blocks of rows j such that ``arrays`` arrays (rows, n_h, m) fit in BLOCK_BYTES, for every
        n_h after the first later layer (that one is never stored whole)."""
        widths = self.net.layers[self.layer + 1:]
        wide = max(widths[1:]) if len(widths) > 1 else widths[0]
        rows = max(1, BLOCK_BYTES // (8 * wide * self.m * arrays))
        n_l = self.z.shape[0]
        return [slice(lo, min(n_l, lo + rows)) for lo in range(0, n_l, rows)]

    def _fused(self, c):
        """``(W_{l+2}^T * c)`` reshaped (n_{l+1}, n_{l+2} m): ``W_{l+1}[:, j]^T`` times it goes
        through layer l+1 (whose change is rank one) without storing it."""
        after = self.weights[self.layer + 2]
        return (after.T[:, :, None] * c[:, None, :]).reshape(after.shape[1], after.shape[0] * self.m)

    def first_order(self) -> np.ndarray:
        """``d loss_e / d Z_l[j, e]`` (n_l, m) by backpropagation of the base pass."""
        back = self.delta
        for h in range(self.net.n_layers, self.layer, -1):
            back = self.weights[h].T @ back
            back *= _taylor(self.hidden, self.zs[h - 2], 1)[0]
        return back

    def bound(self, js) -> tuple[np.ndarray, np.ndarray]:
        """``(M, rho)`` for the rows ``js``: ``|loss_e(t)| <= M`` on the disk ``|t| <= rho``.

        ``G_h`` bounds ``|dZ_h|`` per unit change of ``A_l[j]``; the disk is sized so that no
        later hidden unit moves by more than HIDDEN_REACH and no logit by more than LOGIT_REACH.
        """
        n_layers, z, layer = self.net.n_layers, self.z[js], self.layer
        G = np.abs(self.weights[layer + 1][:, js]).T  # |dZ_{l+1}| per |dA_l[j]|: (rows, n_{l+1})
        with np.errstate(divide="ignore"):
            limit = np.broadcast_to(LOGIT_REACH / G.max(axis=1)[:, None] if layer + 1 == n_layers
                                    else HIDDEN_REACH / G.max(axis=1)[:, None], z.shape)
        if layer + 1 == n_layers:
            G = G[:, :, None]
        else:
            if "abs" not in self._memo:
                self._memo["abs"] = np.abs(self._fused(self.lam[layer + 1]))
            G = (G @ self._memo["abs"]).reshape(G.shape[0], -1, self.m)
        for h in range(layer + 2, n_layers):
            with np.errstate(divide="ignore"):
                limit = np.minimum(limit, HIDDEN_REACH / G.max(axis=1))
            G = np.matmul(np.abs(self.weights[h + 1]), G * self.lam[h])
        with np.errstate(divide="ignore"):
            limit = np.minimum(limit, LOGIT_REACH / G.max(axis=1))
            rho = np.minimum(HIDDEN_REACH, limit / _slope_bound(self.hidden, z, np.full_like(z, HIDDEN_REACH)))
        reach = _slope_bound(self.hidden, z, rho) * rho  # |dA_l[j, e]| <= reach <= limit on the disk
        return _loss_bound(self.net.output, G * reach[:, None, :], self.aux, self.Y), rho

    def coefficients(self, js, order) -> list:
        """``[c_1, ..., c_order]`` (each (rows, m)) of the loss changes for the rows ``js``."""
        hidden, n_layers, m = self.hidden, self.net.n_layers, self.m
        a = [None] + _taylor(hidden, self.z[js], order)  # dA_l[j] in powers of t
        W_next = self.weights[self.layer + 1][:, js]
        if self.layer + 1 == n_layers:
            X = [None] + [W_next.T[:, :, None] * a[n][:, None, :] for n in range(1, order + 1)]
        else:  # the first hidden layer after l at once: dZ_{l+2} = sum_k Q_k dA_l[j]^k
            pw = _powers(a)
            if ("fused", order) not in self._memo:
                self._memo[("fused", order)] = [self._fused(c) for c in _taylor(hidden, self.zs[self.layer], order)]
            V = self._memo[("fused", order)]
            Q = [None] + [((W_next**k).T @ V[k - 1]).reshape(W_next.shape[1], -1, m) for k in range(1, order + 1)]
            X = [None] + [sum(Q[k] * pw[k][n][:, None, :] for k in range(1, n + 1)) for n in range(1, order + 1)]
        for h in range(self.layer + 2, n_layers):  # deeper networks: the jets through each later layer
            c, pw = _taylor(hidden, self.zs[h - 1], order), _powers(X)
            X = [None] + [np.matmul(self.weights[h + 1], sum(c[k - 1] * pw[k][n] for k in range(1, n + 1)))
                          for n in range(1, order + 1)]
        return _loss_jets(self.net.output, X, self.aux, self.Y, self.delta)
