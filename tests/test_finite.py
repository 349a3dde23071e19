import numpy as np
import pytest

import fastcheck as fc
from fastcheck.core.finite import relative_errors, validate_eps


def test_relative_difference_is_the_methods_formula():
    numeric, analytic = np.array([1.0, 2.0]), np.array([1.0, 2.5])
    expected = 0.5 / (np.sqrt(5.0) + np.sqrt(7.25))
    assert fc.relative_difference(numeric, analytic) == pytest.approx(expected, rel=1e-15)
    assert fc.relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    assert fc.relative_difference(np.zeros(2), np.ones(2)) == 1.0


def test_relative_errors_per_entry_with_zero_over_zero():
    np.testing.assert_allclose(relative_errors(np.array([0.0, 1.0, 1.0]), np.array([0.0, -1.0, 3.0])),
                               [0.0, 1.0, 0.5])


@pytest.mark.parametrize(("difference", "verdict"),
                         [(0.0, "pass"), (9.9e-7, "pass"), (1e-6, "warn"), (9.9e-4, "warn"), (1e-3, "fail"),
                          (float("nan"), "fail")])
def test_verdict_bands(difference, verdict):
    assert fc.Bounds().verdict(difference) == verdict


def test_bounds_are_parameters_and_validated():
    assert fc.Bounds(warn=1e-8, fail=1e-6).verdict(1e-7) == "warn"
    with pytest.raises(fc.InputError, match="warn <= fail"):
        fc.Bounds(warn=1e-2, fail=1e-3)
    with pytest.raises(fc.InputError, match="positive"):
        fc.Bounds(warn=-1.0)


@pytest.mark.parametrize("eps", [0.0, -1e-7, 1e-20, 1.0, float("nan"), "small"])
def test_eps_out_of_range_is_refused(eps):
    with pytest.raises(fc.InputError, match="eps"):
        validate_eps(eps)
