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


# --------------------------------------------------------------------- the step actually taken
class OffsetQuadratic:
    """J(t) = g . (t - theta) + |t - theta|^2 / 2, whose exact gradient at theta is g ~ 1, for theta
    near ``magnitude`` (one entry a power of two, where the steps are asymmetric). Module level:
    it pickles for worker processes."""

    def __init__(self, magnitude, n=12, seed=0):
        rng = np.random.default_rng(seed)
        self.theta = magnitude * (1 + rng.random(n))
        self.theta[0] = 2.0 ** np.round(np.log2(magnitude))
        self.g = rng.standard_normal(n)

    def __call__(self, t):
        d = t - self.theta
        return float(self.g @ d + 0.5 * (d @ d))

    def batch(self, thetas):
        d = thetas - self.theta
        return d @ self.g + 0.5 * np.einsum("ij,ij->i", d, d)


#: Magnitudes of theta, with a step that is not lost in rounding there (1e-7 is, above about 1.7e9).
MAGNITUDES = [(1e-300, 1e-7), (1e-12, 1e-7), (1e-7, 1e-7), (1.0, 1e-7), (1e6, 1e-7), (1e7, 1e-7), (5e8, 1e-7),
              (1e12, 1e-3)]


@pytest.mark.parametrize("engine", ["reference", "blackbox", "traced"])
@pytest.mark.parametrize(("magnitude", "eps"), MAGNITUDES)
def test_an_exact_gradient_passes_at_any_magnitude(magnitude, eps, engine):
    """fl(theta + eps) - theta is not eps: 2% off at 1e7 (a FAIL) and 2.4% at 1e12 with eps=1e-3."""
    if engine == "traced" and magnitude < 1e6:
        pytest.skip("exact at this magnitude either way")
    cost = OffsetQuadratic(magnitude)
    report = fc.check(cost, cost.theta, cost.g, eps=eps, engine=engine)
    assert report.verdict == "pass", (report.difference, report.worst(3))
    assert report.difference < 1e-7


@pytest.mark.parametrize(("magnitude", "eps"), [(1e7, 1e-7), (1e12, 1e-3)])
def test_every_path_of_the_blackbox_engine_divides_by_the_steps_taken(magnitude, eps):
    from fastcheck.core.layout import Layout
    from fastcheck.core.objective import CostObjective
    from fastcheck.engines.blackbox import blackbox_engine
    from fastcheck.engines.reference import reference_engine

    cost = OffsetQuadratic(magnitude)
    layout, theta = Layout.from_params(cost.theta)
    objective = CostObjective(cost, layout)
    objective.base(theta)
    indices = np.arange(theta.size)
    ref = reference_engine(objective, theta, indices, eps)
    assert fc.relative_difference(ref.numeric, cost.g) < 1e-7
    for kw in (dict(n_jobs=1), dict(n_jobs=2, chunk_size=5), dict(n_jobs=2, chunk_size=5, backend="threading"),
               dict(n_jobs=1, batch_cost=cost.batch), dict(n_jobs=2, chunk_size=5, batch_cost=cost.batch)):
        comp = blackbox_engine(objective, theta, indices, eps, **kw)
        assert fc.relative_difference(comp.numeric, cost.g) < 1e-7, kw  # in process, on workers, stacked
        if "batch_cost" not in kw:  # the same evaluations, the same formula
            np.testing.assert_array_equal(comp.numeric, ref.numeric)


@pytest.mark.parametrize("engine", ["reference", "batched"])
def test_an_mlp_with_large_parameters_passes(engine):
    """Output biases near 1e7 (and targets near the outputs, so that J stays small): the steps of b2 round."""
    net = fc.MLP([3, 4, 2], hidden="tanh", output="identity")
    params = net.init(seed=0)
    params["b2"] = params["b2"] + 1e7 * np.array([[1.3], [1.7]])
    X, _ = net.random_data(6, seed=1)
    zs, _ = net.forward(params, X)
    Y = zs[-1] + np.random.default_rng(2).standard_normal(zs[-1].shape)
    report = net.check(params, net.gradient(params, X, Y), X, Y, engine=engine)
    assert report.group("b2").verdict == "pass", report.group("b2")


def test_the_one_liner_of_the_issue_passes():
    rng = np.random.default_rng(0)
    c0 = 1e7 * (1 + rng.random(20))
    th = c0 + rng.standard_normal(20)
    assert fc.check(lambda t: 0.5 * float(np.sum((t - c0) ** 2)), th, th - c0).verdict == "pass"


def test_steps_are_the_rounded_perturbed_values_minus_theta():
    from fastcheck.core.finite import central_difference, coordinate_gradient, coordinate_steps

    values = np.array([1e-300, 0.0, 1.0, 2.0 ** 23, 1e7 + 0.5])
    h_plus, h_minus = coordinate_steps(values, 1e-7)
    np.testing.assert_array_equal(values + h_plus, values + 1e-7)
    np.testing.assert_array_equal(values - h_minus, values - 1e-7)
    assert h_plus[0] == h_minus[0] == 1e-7  # theta + eps rounds to eps itself: the step is eps
    assert h_plus[3] != h_minus[3]  # a power of two: the float spacing below is half that above
    # far below eps, the steps taken are the nominal ones: the same numbers as (J+ - J-) / 2 eps
    jp, jm = np.array([3.0, 1.0]), np.array([1.0, 0.5])
    np.testing.assert_array_equal(coordinate_gradient(jp, jm, values[:2], 1e-7), central_difference(jp, jm, 1e-7))


def test_a_step_lost_in_rounding_is_refused_naming_the_entry():
    params = {"W": np.array([[1.0, 3e12], [2.0, 4.0]])}
    with pytest.raises(fc.InputError, match=r"`eps`: 1e-07 is lost in rounding at W\[0, 1\] = 3e\+12.*eps >= 0.00049"):
        fc.check(lambda p: float(np.sum(p["W"] ** 2)), params, {"W": 2 * params["W"]})
    fc.check(lambda p: float(np.sum(p["W"] ** 2)), params, {"W": 2 * params["W"]}, eps=1e-3)  # representable


def test_relative_difference_of_subnormal_values_neither_overflows_nor_loses_them():
    tiny = np.array([2.22507386e-313, 5e-320])
    assert fc.relative_difference(np.zeros(2), tiny) == 1.0
    assert fc.relative_difference(tiny, tiny) == 0.0
    assert abs(fc.relative_difference(tiny, 2 * tiny) - 1 / 3) < 1e-6  # 5e-320 has few digits left
