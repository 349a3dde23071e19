"""Property-based tests of the layout and the metric."""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import fastcheck as fc
from fastcheck.core.layout import Layout

finite = st.floats(-1e6, 1e6, allow_nan=False)
groups = st.dictionaries(
    st.text("abcefgWb", min_size=1, max_size=4),  # no "d": W and dW would both name W's gradient
    arrays(np.float64, array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4), elements=finite),
    min_size=1, max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(groups)
def test_flatten_unflatten_round_trip_and_locate(params):
    layout, theta = Layout.from_params(params)
    assert layout.n_params == sum(a.size for a in params.values())
    back = layout.unflatten(theta)
    for name, arr in params.items():
        np.testing.assert_array_equal(back[name], arr)
    for i in range(layout.n_params):
        group, index = layout.locate(i)
        assert params[group.name][index] == theta[i]
    np.testing.assert_array_equal(layout.flatten_grads({"d" + k: v for k, v in params.items()}), theta)


vectors = st.integers(1, 20).flatmap(lambda n: st.tuples(arrays(np.float64, n, elements=finite),
                                                        arrays(np.float64, n, elements=finite)))


@settings(max_examples=100, deadline=None)
@given(vectors)
@example(pair=(np.array([1.04048797e-160]), np.array([1.80010348e-163])))  # squares below the normal range
def test_relative_difference_is_bounded_symmetric_and_scale_free(pair):
    numeric, analytic = pair
    d = fc.relative_difference(numeric, analytic)
    assert 0.0 <= d <= 1.0 + 1e-12
    assert d == fc.relative_difference(analytic, numeric)
    assert fc.relative_difference(numeric, numeric) == 0.0
    if d > 0:
        assert np.isclose(fc.relative_difference(4.0 * numeric, 4.0 * analytic), d, rtol=1e-12)
