"""``np.prod``, ``np.nansum`` and ``np.nanmean`` in the traced engine: changes equal differences of full evaluations.

In the style of ``test_traced_ops.py``: every footprint kind reaches each reduction, and the
incremental J+- equal full evaluations to rounding. Zeros in a product (one, two, a whole
slice) take the product of the others, never a division; a NaN at theta that a perturbation
reaches is handed to the real cost.
"""

import numpy as np
import pytest
from test_traced_ops import FOOTPRINTS, assert_exact, assert_operation_exact, incremental_and_full

import fastcheck as fc
from fastcheck.engines.traced import reductions

OPS = {
    "prod_axis0": lambda z: np.prod(z, axis=0),
    "prod_axis1_keepdims": lambda z: z * np.prod(0.5 * z + 1.0, axis=1, keepdims=True),
    "prod_all": lambda z: np.prod(0.3 * z + 1.0) * z,
    "prod_axes": lambda z: np.tanh(z).reshape(2, 2, 6).prod(axis=(0, 2)),
    "prod_method": lambda z: (0.5 * z + 1.0).prod(axis=1) ** 2,
    "nansum": lambda z: np.nansum(z ** 2, axis=0),
    "nansum_keepdims": lambda z: z * np.nansum(z, axis=1, keepdims=True),
    "nansum_all": lambda z: np.nansum(np.tanh(z)) * z,
    "nanmean": lambda z: np.exp(np.nanmean(z, axis=1)),
    "nanmean_all": lambda z: np.nanmean(np.sin(z), keepdims=True) * z,
}


@pytest.mark.parametrize("footprint", list(FOOTPRINTS))
@pytest.mark.parametrize("op", list(OPS))
def test_reduction_changes_equal_full_evaluations(op, footprint):
    assert_operation_exact(op, OPS[op], footprint)


ZEROS = np.array([[0.0, 1.5, -0.7, 2.0, 0.9],  # one zero
                  [0.0, 0.0, 1.1, -1.3, 0.4],  # two
                  [0.8, -1.2, 0.6, 0.0, 1.7],
                  [1.3, 0.5, -0.9, 0.0, 1.1]])  # column 3: two zeros, column 0 too


@pytest.mark.parametrize("axis", [0, 1, None, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_prod_with_zeros_takes_the_product_of_the_others(axis, keepdims, monkeypatch):
    """One entry of each slice changes: d times the product of the others, exact at and next to zeros."""
    calls = []
    others = reductions.others_product
    monkeypatch.setattr(reductions, "others_product", lambda *a: calls.append(1) or others(*a))
    R = np.random.default_rng(2).standard_normal(np.prod(ZEROS, axis=axis, keepdims=keepdims).shape)

    def cost(p):
        return np.sum(R * np.prod(p["P"], axis=axis, keepdims=keepdims))

    assert_exact(cost, {"P": ZEROS})
    assert calls  # the one-entry rule ran
    traced, full, _ = incremental_and_full(cost, {"P": ZEROS})
    np.testing.assert_array_equal(traced == cost({"P": ZEROS}), full == cost({"P": ZEROS}))  # zeros stay zeros


def test_others_product_is_the_product_of_the_others():
    x = np.vstack([ZEROS, np.arange(1.0, 6.0)])
    for axes in [(0,), (1,), (0, 1)]:
        got = reductions.others_product(x, axes)
        for index in np.ndindex(x.shape):
            others = np.zeros(x.shape, dtype=bool)
            others[tuple(slice(None) if a in axes else index[a] for a in range(2))] = True
            others[index] = False
            expected = np.prod(x[others])  # in another order: equal to rounding, and zero exactly where it is
            assert (got[index] == 0) == (expected == 0)
            np.testing.assert_allclose(got[index], expected, rtol=16 * 2.0**-52, atol=0)


def test_prod_with_zeros_reached_densely():
    """A dense change of a slice holding zeros: the perturbed products recomputed from the inputs."""
    A = np.random.default_rng(4).standard_normal((4, 4))

    def cost(p):
        return np.sum(np.prod(np.maximum(A @ p["P"], 0.0), axis=1)) + np.sum(np.prod(p["P"] + A[:, :1], axis=0))

    assert_exact(cost, {"P": ZEROS})


def test_nansum_hands_perturbations_that_reach_a_nan_to_the_real_cost():
    """Missing targets (NaN) in a least-squares loss: the rows that hold none are exact, the others unvouched."""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((5, 6))
    Y = rng.standard_normal((4, 6))
    Y[1, 2] = Y[3, 0] = np.nan

    for reduce in (np.nansum, np.nanmean):
        def cost(p, reduce=reduce):
            return reduce((p["P"] @ A - Y) ** 2)

        P = rng.standard_normal((4, 5))
        traced, full, _ = incremental_and_full(cost, {"P": P})
        rows = np.tile(np.repeat(np.arange(4), 5), 2)  # the row of P each perturbation moves
        np.testing.assert_array_equal(np.isnan(traced), np.isin(rows, [1, 3]))
        ok = ~np.isnan(traced)
        np.testing.assert_allclose(traced[ok], full[ok], rtol=0, atol=64 * 2.0**-52 * np.abs(full).max())


def test_nan_costs_check_exactly_through_fc_check():
    """End to end: the traced engine, J+- of the unvouched perturbations from the real cost, the verdict right."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((6, 20))
    Y = rng.standard_normal((3, 20))
    Y[0, 4] = Y[2, 11] = np.nan
    params = {"W": rng.standard_normal((3, 6)), "c": rng.standard_normal((3, 1))}

    def cost(p):
        residual = p["W"] @ X + p["c"] - Y
        return np.nanmean(residual ** 2) + 0.1 * np.prod(np.tanh(p["c"]) + 1.0)

    residual = params["W"] @ X + params["c"] - Y
    r = np.where(np.isnan(residual), 0.0, residual)
    count = np.sum(~np.isnan(residual))
    t = np.tanh(params["c"])
    prod_others = reductions.others_product(t + 1.0, (0, 1))
    grads = {"W": 2 * r @ X.T / count, "c": 2 * r.sum(axis=1, keepdims=True) / count
             + 0.1 * prod_others * (1 - t ** 2)}
    report = fc.check(cost, params, grads)
    reference = fc.check(cost, params, grads, engine="reference")
    assert report.settings["engine"] == "traced" and report.passed and reference.passed
    bad = {k: v.copy() for k, v in grads.items()}
    bad["W"][1, 3] *= 1.1
    failed = fc.check(cost, params, bad)
    assert failed.failing_groups == ["W"] and failed.worst(1)[0].index == (1, 3)


@pytest.mark.parametrize("reduce", [np.nansum, np.nanmean])
def test_a_nan_that_a_perturbation_turns_into_a_number_is_not_vouched_for(reduce):
    """sqrt of an entry just below 0 is NaN at theta and a number at theta + step: the real cost decides."""
    with np.errstate(invalid="ignore"):
        P = np.array([[0.5, -1e-4, 2.0], [1.0, 0.3, -3.0]])

        def cost(p):
            return reduce(np.sqrt(p["P"])) * 2.0

        traced, full, _ = incremental_and_full(cost, {"P": P})
    n = P.size
    assert np.isnan(traced[1]) and np.isfinite(full[1])  # -1e-4 + 1e-3: a number now
    assert np.isnan(traced[n + 1])  # -1e-4 - 1e-3: still NaN (left out by the nan-reduction), unvouched too
    ok = ~np.isnan(traced)
    np.testing.assert_allclose(traced[ok], full[ok], rtol=0, atol=64 * 2.0**-52 * np.nanmax(np.abs(full)))
