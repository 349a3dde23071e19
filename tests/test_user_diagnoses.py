"""The bugs users write in their own backprop get a diagnosis that points at the line (issue 14);
correct backprop never gets one, and the checker's own arithmetic gets no verdict wrong (issue 13).

The models are the users' own numpy code (``user_layers``): the course's L-layer network with
its full gradients dict, CS231n's naive layers checked as layers, a batch-norm network whose
``loss`` returns ``(loss, grads)``.
"""

import numpy as np
import pytest
import user_layers as u

import fastcheck as fc
from fastcheck.api import prepare_check
from fastcheck.core.finite import Bounds
from fastcheck.core.layout import Layout
from fastcheck.core.results import Evaluations
from fastcheck.pipeline.options import CheckOptions
from fastcheck.report import LAYERS, build_report
from fastcheck.report.layers import layer_number, where_error_enters
from fastcheck.report.rows import GroupRow

RNG = np.random.default_rng(0)
X_CONV, W_CONV, B_CONV = RNG.standard_normal((2, 3, 5, 5)), RNG.standard_normal((4, 3, 3, 3)), RNG.standard_normal(4)
X_BN = RNG.standard_normal((16, 5)) * 2 + 1
GAMMA, BETA = 1 + 0.1 * RNG.standard_normal(5), RNG.standard_normal(5)
X_ACT = RNG.standard_normal((8, 8))


def conv(**bug):
    return fc.check_layer(u.conv_forward_naive, {"x": X_CONV, "w": W_CONV, "b": B_CONV},
                          backward=lambda dout, cache: u.conv_backward_naive(dout, cache, **bug))


def batchnorm(**bug):
    return fc.check_layer(u.batchnorm_forward, {"x": X_BN, "gamma": GAMMA, "beta": BETA},
                          backward=lambda dout, cache: u.batchnorm_backward(dout, cache, **bug))


def pool_input_with_ties():
    """A max-pool input after a ReLU: three 2x2 windows are all zeros (12 tied entries)."""
    x = np.abs(np.random.default_rng(1).standard_normal((2, 2, 4, 4))) + 0.1
    x[0, 0, :2, :2] = x[1, 1, 2:, 2:] = x[0, 1, 2:, :2] = 0.0
    return x


def course(**bug):
    cost, params, backward = u.course_mlp(**bug)
    return cost, params, backward(params)


# ---------------------------------------------------------------------- correct code: no diagnosis
CORRECT = {
    "course_mlp": lambda: fc.check(*course()),
    "conv": conv,
    "batchnorm": batchnorm,
    "max_pool_at_ties": lambda: fc.check_layer(u.max_pool_forward_naive, {"x": pool_input_with_ties()},
                                               backward=u.max_pool_backward_naive),
    "fc_net_batchnorm": lambda: fc.check(*u.fc_net_batchnorm()),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_backprop_passes_without_a_diagnosis(name):
    report = CORRECT[name]()
    assert report.verdict == "pass" and report.diagnoses == {}, report


# ---------------------------------------------------------------------- issue 14's table
def test_a_wrong_relu_derivative_in_layer_2_says_where_the_error_enters():
    report = fc.check(*course(relu_backward_layer2=lambda dA, Z, A: dA * A))  # dZ2 = dA2 * A2
    assert report.failing_groups == ["W1", "b1", "W2", "b2"]
    sentence = report.diagnoses[LAYERS]
    assert sentence.startswith("the error enters at layer 2:")
    assert "layer 3 and above are right (W3, b3)" in sentence and "look at dZ2 / dA2" in sentence
    assert f"the right ones by {max(report.group(n).difference for n in ('W3', 'b3')):.1e} or less" in sentence
    assert f"(layers): {sentence}" in str(report)


def test_a_batch_norm_dx_without_its_mean_inside_a_network_enters_after_dgamma_dbeta():
    loss, params = u.fc_net_batchnorm(forget_mean_in_layer=2)
    report = fc.check(loss, params)
    assert report.failing_groups == ["W1", "gamma1", "beta1", "W2", "b2"]
    assert report.group("b1").zero_to_rounding  # below a batch norm still: no error reaches it
    sentence = report.diagnoses[LAYERS]
    assert sentence.startswith("the error enters in layer 2's backward, after dgamma2, dbeta2 (right): the groups of "
                               "layer 3 and above are right (W3, b3), the rest of layer 2 and every group below it "
                               "are wrong")
    assert "a batch norm's dx" in sentence


def test_a_flipped_conv_kernel_is_correlation_vs_convolution():
    report = conv(window_flipped=True)
    assert report.failing_groups == ["w"]
    assert report.diagnoses["w"].startswith("the analytic gradient is the right one flipped along axes 2, 3 (fit "
                                            "residual ")
    assert "correlation vs convolution" in report.diagnoses["w"]


def test_a_kernel_gradient_in_nhwc_order_is_a_permutation_of_axes():
    report = conv(dw_layout_nhwc=True)
    assert report.failing_groups == ["w"]
    assert "with its axes in the order (0, 2, 3, 1), reshaped back to the shape" in report.diagnoses["w"]


def test_batch_norm_without_its_mean_term_has_an_error_constant_along_the_batch():
    report = batchnorm(forget_mean=True)
    assert report.failing_groups == ["x"]
    assert report.diagnoses["x"].startswith("the error is constant along axis 0 (length 16) (fit residual ")
    assert "a missing mean or sum over that axis" in report.diagnoses["x"]


def test_a_backprop_that_returned_zeros_is_not_computed_or_not_returned():
    cost, params, _ = course()
    report = fc.check(cost, params, {f"d{k}": np.zeros_like(v) for k, v in params.items()})
    for name in params:
        assert report.diagnoses[name].startswith("the analytic gradient is all zeros where the numeric one is not")
        assert "not computed, or not returned?" in report.diagnoses[name] and "times" not in report.diagnoses[name]


def test_max_pool_at_ties_is_a_kink_not_a_bug():
    report = fc.check_layer(u.max_pool_forward_naive, {"x": pool_input_with_ties()},
                            backward=u.max_pool_backward_naive)
    assert report.passed and report.verdict == "pass"
    assert report.group("x").kinks == report.group("x").ties == report.n_ties == 12
    assert {e.index[:2] for e in report.ties} == {(0, 0), (1, 1), (0, 1)}
    note = report.notes["x"]
    assert note.startswith("12 entries are at a tie") and "a subgradient, not a bug" in note
    tie = report.ties[0]
    assert f"analytic {tie.analytic:.6e}" in note and f"central {tie.numeric:.6e}" in note
    assert tie.numeric == pytest.approx(tie.analytic / 2, rel=1e-6)
    assert "12 of them at a tie" in str(report)


def test_ties_follow_the_kink_policy():
    x = pool_input_with_ties()
    dout = np.random.default_rng(0).standard_normal((2, 2, 2, 2))
    (dx,) = u.max_pool_backward_naive(dout, (x, 2))
    cost = u.LayerCost(u.max_pool_forward_naive, dout)
    for policy, verdict in (("exclude", "pass"), ("include", "fail")):
        report = prepare_check(cost, {"x": x}, {"x": dx}, options=CheckOptions(kinks=policy)).run()
        assert report.verdict == verdict and report.n_ties == 12  # as for any kink
        assert report.notes["x"].endswith(f"counted as kinks ({'included in' if policy == 'include' else 'left out of'}"
                                          " the verdict)")


def test_a_relu_backward_without_its_mask_is_a_derivative_mask():
    report = fc.check_layer(u.relu_forward, {"x": X_ACT}, backward=u.relu_backward_no_mask)
    negative = int((X_ACT <= 0).sum())
    assert report.diagnoses["x"].startswith(f"the analytic gradient is nonzero on {negative} of 64 entries where the "
                                            "numeric one is zero, and the others are right (fit residual ")


def test_a_leaky_relu_backward_without_its_slope_is_off_by_a_factor_on_a_subset():
    report = fc.check_layer(u.leaky_relu_forward, {"x": X_ACT}, backward=u.leaky_relu_backward_no_slope)
    negative = int((X_ACT <= 0).sum())
    assert report.diagnoses["x"].startswith(f"on {negative} of 64 entries the analytic gradient is 100 times the "
                                            "numeric one, and the others are right")


def test_dw2_returned_as_dw1_names_the_neighbouring_group():
    cost, params, backward = u.course_mlp(layer_dims=(4, 4, 4, 1))
    grads = backward(params)
    grads["dW1"] = grads["dW2"]
    report = fc.check(cost, params, grads)
    assert report.failing_groups == ["W1"]
    assert report.diagnoses["W1"].startswith("the analytic gradient is the numeric gradient of W2 (fit residual ")
    assert report.diagnoses["W1"].endswith("dW2 returned as dW1?")


def test_every_diagnosis_states_its_fit_when_it_fits_a_pattern():
    reports = [conv(window_flipped=True), conv(dw_layout_nhwc=True), batchnorm(forget_mean=True)]
    for report in reports:
        for sentence in report.diagnoses.values():
            residual = float(sentence.split("(fit residual ")[1].split(")")[0])
            assert 0 <= residual <= 0.05


# ---------------------------------------------------------------------- where the error enters
def row(name, verdict, difference=None, zero=False):
    difference = difference if difference is not None else {"pass": 1e-9, "fail": 0.3}[verdict]
    return GroupRow(name, (2, 2), 4, 4, 0, difference, verdict, 4 if verdict == "fail" else 0, zero_to_rounding=zero)


def test_layer_numbers_come_from_trailing_digits():
    assert [layer_number(n) for n in ["W1", "b12", "gamma1", "beta3", "Wax", "by"]] == [1, 12, 1, 3, None, None]


@pytest.mark.parametrize(("rows", "expected"), [
    ([row("W1", "fail"), row("b1", "fail"), row("W2", "pass"), row("b2", "pass")], "the error enters at layer 1"),
    ([row("W1", "fail"), row("b1", "pass", zero=True), row("gamma1", "fail"), row("W2", "fail"), row("W3", "pass")],
     "the error enters at layer 2"),  # a bias before a batch norm stays zero whatever comes down
    ([row("W1", "fail"), row("b1", "fail"), row("W2", "fail")], "every layer is wrong, from the top (layer 2) down"),
    ([row("W1", "fail"), row("W2", "fail"), row("gamma2", "pass"), row("W3", "pass")],
     "the error enters in layer 2's backward, after dgamma2 (right)"),
    ([row("W1", "fail"), row("b1", "pass"), row("W2", "fail"), row("b2", "pass")], None),  # e.g. L2 missing
    ([row("W1", "pass"), row("W2", "fail"), row("b2", "fail")], None),  # not a bottom block
    ([row("W1", "fail"), row("W2", "pass"), row("W3", "fail")], None),
    ([row("W1", "fail"), row("W2", "pass")], None),  # one group: its own diagnosis says more
    ([row("Wax", "fail"), row("Waa", "fail"), row("Wya", "pass")], None),  # one recurrent layer
])
def test_where_the_error_enters(rows, expected):
    sentence = where_error_enters(rows)
    assert (sentence is None) if expected is None else sentence.startswith(expected)


# ---------------------------------------------------------------------- issue 13: the report's own arithmetic
def test_a_correct_batch_norm_network_passes_its_zero_biases_with_a_note():
    loss, params = u.fc_net_batchnorm()
    report = fc.check(loss, params)  # loss returns (loss, grads), as CS231n's model.loss
    assert report.verdict == "pass" and report.failing_groups == []
    for name in ("b1", "b2"):  # the biases before a batch norm: true gradient zero
        group = report.group(name)
        assert group.zero_to_rounding and group.verdict == "pass" and group.wrong_entries == 0
        assert report.notes[name].startswith("its gradient is zero to rounding")
    assert not report.group("b3").zero_to_rounding
    assert report.diagnoses == {} and "pass (zero)" in str(report)


def test_a_wrong_gradient_of_a_zero_gradient_group_still_fails():
    loss, params = u.fc_net_batchnorm()
    value, grads = loss(params)
    grads["b1"] = grads["b1"] + 1e-3  # beyond rounding: a real error
    report = fc.check(lambda p: loss(p)[0], params, grads)
    assert report.failing_groups == ["b1"] and not report.group("b1").zero_to_rounding


def test_a_cost_of_all_zero_gradient_passes():
    report = fc.check(lambda t: float(1.0 + np.sum(t ** 2)), np.zeros(3), np.full(3, 1e-12))
    assert report.verdict == "pass" and report.group("theta").zero_to_rounding


def nan_report(numeric_nan=True):
    layout, theta = Layout.from_params({"W": np.ones((2, 3)), "b": np.ones(2)})
    analytic = np.arange(1.0, 9.0)
    numeric = analytic.copy()
    numeric[4] = np.nan if numeric_nan else numeric[4]
    if not numeric_nan:
        analytic = analytic.copy()
        analytic[7] = np.nan
    evaluations = Evaluations(np.arange(8), np.full(8, 2.0), np.full(8, 1.0), numeric, np.zeros(8, dtype=bool), 16)
    return build_report(layout, analytic, evaluations, bounds=Bounds(), settings={"eps": 1e-7, "mode": "full",
                        "engine": "batched"}, elapsed=0.0, theta=theta, cost=1.5)


@pytest.mark.parametrize(("numeric_nan", "label", "group"), [(True, "W[1, 1]", "W"), (False, "b[1]", "b")])
def test_a_nan_is_never_a_silent_verdict(numeric_nan, label, group):
    report = nan_report(numeric_nan)
    assert report.verdict == "fail" and report.failing_groups == [group]
    assert report.group(group).wrong_entries == 1
    worst = report.worst(1)[0]
    assert worst.label == label and np.isnan(worst.rel_error)
    assert report.diagnoses[group].startswith(f"1 entry is not finite: {label}")
    text = str(report)
    assert "worst entries:" in text and label in text.split("worst entries:")[1].splitlines()[2]
    again = fc.Report.from_json(report.to_json())
    assert again.worst(1)[0].label == label and again.diagnoses == report.diagnoses


def test_a_group_with_no_wrong_entry_gets_no_diagnosis():
    """Gradients of 1e-6 doubled: off by 45 rounding scales, short of the wrong entries' 1000."""
    gradient = np.linspace(1.0, 2.0, 6) * 1e-6
    report = fc.check(lambda t: float(10.0 + gradient @ t), np.ones(6), 2 * gradient)
    group = report.group("theta")
    assert group.verdict == "fail" and group.wrong_entries == 0 and not group.zero_to_rounding
    assert report.diagnoses == {} and report.notes == {}
