import numpy as np
import pytest

import fastcheck as fc
from fastcheck.core.layout import Layout


def test_round_trip_keeps_names_shapes_and_order():
    params = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.array([[6.0], [7.0]]), "s": np.array(8.0)}
    layout, theta = Layout.from_params(params)
    np.testing.assert_array_equal(theta, np.arange(9.0))
    assert layout.names == ("W1", "b1", "s")
    assert [g.shape for g in layout.groups] == [(2, 3), (2, 1), ()]
    back = layout.unflatten(theta)
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])
    assert layout.describe(4) == "W1[1, 1]"
    assert layout.describe(7) == "b1[1, 0]"
    assert layout.describe(8) == "s[]"
    np.testing.assert_array_equal(layout.group_ids(np.array([0, 5, 6, 8])), [0, 0, 1, 2])


def test_theta_is_a_copy():
    params = {"W": np.ones((2, 2))}
    _, theta = Layout.from_params(params)
    theta[0] = 5.0
    assert params["W"][0, 0] == 1.0


def test_flat_params():
    layout, theta = Layout.from_params(np.array([1.0, 2.0]))
    assert layout.flat and layout.names == ("theta",)
    np.testing.assert_array_equal(layout.flatten_grads(np.array([3.0, 4.0])), [3.0, 4.0])


def test_grads_accept_d_prefixed_names_and_callables():
    params = {"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))}
    layout, _ = Layout.from_params(params)
    g1 = layout.flatten_grads({"dW1": np.full((2, 2), 2.0), "db1": np.ones((2, 1))})
    g2 = layout.flatten_grads({"W1": np.full((2, 2), 2.0), "b1": np.ones((2, 1))})
    g3 = layout.resolve_grads(lambda p: {"dW1": 2 * p["W1"], "db1": p["b1"] + 1}, params)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(g1, g3)


@pytest.mark.parametrize(
    ("params", "grads", "error", "message"),
    [
        ({"W1": np.ones((3, 4))}, {"dW1": np.ones((4, 3))}, fc.InputError,
         "`grads['dW1']` has shape (4, 3) but `params['W1']` has shape (3, 4)"),
        ({"W1": np.ones((3, 4))}, {"dW2": np.ones((3, 4))}, fc.InputError,
         "`grads` has no entry for params['W1'] (looked for 'W1' and 'dW1')"),
        ({"W1": np.ones(2)}, {"dW1": np.ones(2), "db1": np.ones(2)}, fc.InputError,
         "'db1' which matches no parameter"),
        ({"W1": np.ones(2)}, {"dW1": np.ones(2), "W1": np.ones(2)}, fc.InputError,
         "both 'W1' and 'dW1'"),
        ({"W1": np.ones(2, dtype=np.float32)}, {"dW1": np.ones(2)}, fc.DtypeError,
         "`params['W1']` has dtype float32"),
        ({"W1": np.ones(2)}, {"dW1": np.ones(2, dtype=np.float32)}, fc.DtypeError,
         "`grads['dW1']` has dtype float32"),
        ({"W1": np.array([1.0, np.nan])}, {"dW1": np.ones(2)}, fc.InputError,
         "`params['W1']` has a non-finite value nan at index (1,)"),
        ({"W1": np.ones(2)}, {"dW1": np.array([np.inf, 1.0])}, fc.InputError,
         "`grads['dW1']` has a non-finite value inf at index (0,)"),
        ({"W1": [1.0, 2.0]}, {"dW1": np.ones(2)}, fc.DtypeError, "`params['W1']` is a list"),
        ({}, {}, fc.InputError, "`params` is an empty dict"),
        ({"W1": np.ones((2, 0))}, {"dW1": np.ones((2, 0))}, fc.InputError, "`params['W1']` is empty"),
        (np.ones((2, 2)), np.ones((2, 2)), fc.InputError, "pass a flat 1-D array"),
        (np.ones(3), np.ones(2), fc.InputError, "`grads` has shape (2,) but `params` has shape (3,)"),
        (np.ones(3), {"x": np.ones(3)}, fc.InputError, "`params` is a flat array but `grads` is a dict"),
    ],
)
def test_bad_layouts_are_named(params, grads, error, message):
    with pytest.raises(error) as info:
        layout, _ = Layout.from_params(params)
        layout.flatten_grads(grads)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cast_up_casts_with_a_warning():
    with pytest.warns(fc.CastWarning, match="float32 to float64"):
        _, theta = Layout.from_params({"W": np.ones(3, dtype=np.float32)}, cast=True)
    assert theta.dtype == np.float64


def test_readonly_views_refuse_writes():
    layout, theta = Layout.from_params({"W": np.ones((2, 2))})
    view = layout.unflatten(theta, readonly=True)["W"]
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 3.0
