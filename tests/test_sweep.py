"""The step sweep and the step options (issue 14): the sweep tells a bug from rounding and
truncation on purpose-built costs and never changes a verdict; eps="auto" and stencil=4 give
the hand-computed differences in every engine, and are refused clearly where they cannot apply."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import sweep_problems as sp

import fastcheck as fc
from fastcheck.apps.cli import main
from fastcheck.core.finite import AUTO_RELATIVE, auto_steps
from fastcheck.report.sweep import SWEEP_STEPS, classify

U = 2.0**-52


def sweep_of(name, **options):
    return fc.check(*getattr(sp, name)(), eps=sp.EPS[name], **options)


def kinds(report):
    return {row.label: row.kind for row in report.sweeps}


# ---------------------------------------------------------------------- the sweep
def test_a_single_entry_bug_that_only_warns_is_named_a_real_bug():
    report = sweep_of("one_entry_off")
    assert report.verdict == "warn" and report.group("W2").verdict == "warn" and report.group("W2").wrong_entries == 0
    found = kinds(report)
    assert found["W2[3, 7]"] == "bug"
    assert all(kind != "bug" for label, kind in found.items() if label != "W2[3, 7]")  # the right entries are not
    row = next(r for r in report.sweeps if r.label == "W2[3, 7]")
    assert re.match(r"W2\[3, 7\]: the error is flat at 1\.1e-04 from eps = 1e-3 to 1e-\d: a real bug", row.sentence)
    assert np.allclose(row.errors[:5], 1.078e-4, rtol=0.02)  # the planted error, 0.1% of 0.108, at every step


def test_rounding_noise_is_named_rounding_with_the_step_that_settles_it():
    report = sweep_of("large_constant")
    assert report.verdict == "warn" and not any(g.wrong_entries for g in report.groups)
    assert report.sweeps and set(kinds(report).values()) == {"rounding"}
    for row in report.sweeps:
        assert "follows rounding (\u221d 1/eps" in row.sentence and row.sentence.endswith("not a bug")
        best = int(np.nanargmin(row.errors))
        assert row.steps[best] > row.eps  # a larger step than the check's
        assert row.errors[best] < 1e-6 * abs(row.analytic)


def test_truncation_is_named_truncation_and_a_smaller_step_fixes_it():
    report = sweep_of("sharp_curvature")
    assert report.verdict == "warn"
    assert report.sweeps and set(kinds(report).values()) == {"truncation"}
    for row in report.sweeps:
        assert "follows truncation (\u221d eps\u00b2" in row.sentence and "a smaller eps" in row.sentence
        errors = np.array(row.errors)
        assert errors[0] / errors[1] > 30  # 1e-3 -> 1e-4: the error falls about 100 times (eps^2)


def test_the_sweep_never_changes_a_verdict():
    for name in sp.EPS:
        swept, plain = sweep_of(name), sweep_of(name, sweep=False)
        assert swept.sweeps and not plain.sweeps and "sweep" not in plain.settings
        assert (swept.verdict, swept.difference, swept.groups) == (plain.verdict, plain.difference, plain.groups)


def test_which_groups_are_swept():
    cost, params, grads = sp.one_entry_off()
    grads["dW2"][3, 7] *= 1.1  # now wrong beyond doubt: W2 fails
    failing = fc.check(cost, params, grads)
    assert failing.group("W2").verdict == "fail" and not failing.sweeps  # by default only warns are swept
    swept = fc.check(cost, params, grads, sweep=True)
    assert kinds(swept)["W2[3, 7]"] == "bug" and swept.verdict == "fail"
    info = swept.settings["sweep"]
    assert info["groups"] == ["W2"] and info["steps"] == list(SWEEP_STEPS)
    assert info["evaluations"] == 2 * len(SWEEP_STEPS) * info["entries"]
    passing = fc.check(*sp._network())
    assert passing.verdict == "pass" and not passing.sweeps


def test_the_sweep_reaches_the_built_in_network_through_its_own_cost():
    net = fc.MLP([6, 5, 3], hidden="tanh", output="softmax")
    params = net.init(seed=0)
    X, Y = net.random_data(m=8, seed=1)
    grads = net.gradient(params, X, Y)
    grads["dW2"][1, 2] *= 1 + 1e-3
    report = net.check(params, grads, X, Y)
    assert report.verdict == "warn" and kinds(report)["W2[1, 2]"] == "bug"


def test_the_sweep_is_in_the_text_json_and_html(tmp_path):
    report = sweep_of("one_entry_off")
    text = str(report)
    assert "step sweep (the 3 worst entries" in text and "it explains the verdict, never changes it" in text
    assert "W2[3, 7]: the error is flat" in text
    again = fc.Report.from_json(report.to_json())
    assert again.sweeps == report.sweeps and str(again) == text
    page = report.to_html()
    assert "<h2>Step sweep</h2>" in page and page.count('<svg class="sweep"') == len(report.sweeps)
    assert again.to_html().count('<svg class="sweep"') == len(report.sweeps)
    old = json.loads(report.to_json())
    del old["sweeps"], old["settings"]["sweep"]
    assert fc.Report.from_json(json.dumps(old)).sweeps == []  # a report from before the sweep reads


def test_classify_reads_slopes_on_synthetic_sweeps():
    steps, a = np.array(SWEEP_STEPS), 1.0
    rounding = 1e-3 * U / steps  # |J| = 1e-3
    flat = classify("x", steps, np.full(7, 1e-3), a + np.full(7, 1e-3), a, rounding, 1e-7, 1e-6)
    assert flat[0] == "bug"
    truncation = 1e-1 * steps**2 + 1e-3 * U / steps
    kind, sentence = classify("x", steps, truncation, a + truncation, a, rounding, 1e-3, 1e-6)
    assert kind == "truncation" and "slope 2.0" in sentence
    noise = 1e2 * U / steps  # a cost of 100: rounding of 2e-7 at eps = 1e-7 grows as 1/eps
    kind, sentence = classify("x", steps, noise, a + noise, a, 1e2 * U / steps, 1e-7, 1e-6)
    assert kind == "rounding" and "slope -1.0" in sentence and "eps = 1e-3 gives 2.2e-11" in sentence
    both = 10 * steps**2 + 1e8 * U / steps  # never below the warn bound, and a V: no verdict from it
    assert classify("x", steps, both, a + both, a, 1e8 * U / steps, 1e-7, 1e-6)[0] == "unresolved"


def test_cli_sweep_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "sweepcase.py").write_text("from sweep_problems import one_entry_off, sharp_curvature\n")
    assert main(["check", "sweepcase:one_entry_off"]) == 0
    assert "W2[3, 7]: the error is flat" in capsys.readouterr().out
    assert main(["check", "sweepcase:one_entry_off", "--no-sweep"]) == 0
    assert "step sweep" not in capsys.readouterr().out
    assert main(["check", "sweepcase:sharp_curvature", "--eps", "1e-3", "--sweep", "--json",
                 str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]) == 0
    assert "follows truncation" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["sweeps"]
    page = (tmp_path / "r.html").read_text()
    assert "<title>fastcheck: gradient check of sweepcase:sharp_curvature: W1, b1, W2, b2 (84 parameters)</title>" \
        in page


def test_the_cli_page_is_titled_with_the_built_in_network(tmp_path, capsys):
    assert main(["check", "--layers", "4,3,3,2", "--bug", "scaled", "--html", str(tmp_path / "p.html")]) == 1
    assert ("<title>fastcheck: gradient check of MLP 4,3,3,2 (relu, softmax) with planted bug scaled: W1, b1, W2, b2, "
            "W3, b3 (35 parameters)</title>") in (tmp_path / "p.html").read_text()


# ---------------------------------------------------------------------- eps="auto" and stencil=4
def cubic(theta):
    return float(np.sum(np.sin(theta) + np.log1p(theta**2)))


def cubic_grad(theta):
    return np.cos(theta) + 2 * theta / (1 + theta**2)


THETA = np.array([0.25, -0.5, 3.0, -40.0, 300.0])


def close_to_rounding(actual, desired, cost, steps, stencil=2):
    """Equal to the rounding of central differences of full costs: 16 ulps of J over each step
    (an engine that computes changes, the traced and the batched, differs from full costs by that)."""
    limit = 16 * np.spacing(abs(cost)) / np.asarray(steps) * (1.5 if stencil == 4 else 1.0)
    assert np.all(np.abs(np.asarray(actual) - desired) <= 1e-12 * np.abs(desired) + limit), (actual, desired)


def numeric_of(report):
    rows = report.worst(report.n_checked) + [e for e in report.kinks]
    return np.array([r.numeric for r in sorted(rows, key=lambda r: r.flat_index)])


def by_hand_central(theta, steps):
    out = []
    for i, h in enumerate(steps):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += h
        minus[i] -= h
        out.append((cubic(plus) - cubic(minus)) / ((theta[i] + h - theta[i]) + (theta[i] - (theta[i] - h))))
    return np.array(out)


@pytest.mark.parametrize("engine", ["reference", "traced", "blackbox"])
def test_eps_auto_takes_scipys_step_per_coordinate_in_every_engine(engine):
    steps = AUTO_RELATIVE[2] * np.maximum(1.0, np.abs(THETA))
    np.testing.assert_array_equal(auto_steps(THETA), steps)
    assert steps[0] == (2.0**-52) ** (1 / 3) and steps[4] == pytest.approx(1.817e-3, rel=1e-3)
    report = fc.check(cubic, THETA, cubic_grad(THETA), eps="auto", engine=engine)
    assert report.settings["engine"] == engine and report.settings["eps"] == "auto"
    close_to_rounding(numeric_of(report), by_hand_central(THETA, steps), cubic(THETA), steps)
    assert report.verdict == "pass"
    assert "eps auto (6.1e-06 to 1.8e-03 per coordinate)" in str(report)
    # the rounding scale of each entry is its own step's: |J| 2^-52 / h_i
    rows = {r.flat_index: r for r in report.worst(5)}
    for i in range(5):
        assert rows[i].rounding == pytest.approx(abs(cubic(THETA)) * U / steps[i], rel=1e-6)


def by_hand_stencil(theta, h):
    out = []
    for i in range(theta.size):
        def J(step, i=i):
            t = theta.copy()
            t[i] += step
            return cubic(t)
        out.append((-J(2 * h) + 8 * J(h) - 8 * J(-h) + J(-2 * h)) / (12 * h))
    return np.array(out)


@pytest.mark.parametrize("engine", ["reference", "traced", "blackbox"])
def test_the_four_point_stencil_is_the_hand_formula_in_every_engine(engine):
    theta, h = THETA[:4], 2.0**-8  # dyadic values: every step is taken exactly
    report = fc.check(cubic, theta, cubic_grad(theta), eps=h, stencil=4, engine=engine)
    assert report.settings["stencil"] == 4 and report.n_evaluations == 4 * theta.size
    close_to_rounding(numeric_of(report), by_hand_stencil(theta, h), cubic(theta), h, stencil=4)
    # O(h^4): far closer than the central difference at the same step
    central = fc.check(cubic, theta, cubic_grad(theta), eps=h, engine=engine, sweep=False)
    assert report.difference < 1e-3 * central.difference
    assert "eps 4e-03, 4-point stencil" in str(report)


@pytest.mark.parametrize("options", [{"eps": "auto"}, {"stencil": 4}, {"eps": "auto", "stencil": 4}])
def test_the_batched_engine_honours_the_step_options_as_the_reference_does(options):
    net = fc.MLP([6, 5, 3], hidden="tanh", output="softmax", l2=0.1)
    params = net.init(seed=0)
    params["W1"] *= 40.0  # entries beyond 1: their auto steps differ
    X, Y = net.random_data(m=8, seed=1)
    grads = net.gradient(params, X, Y)
    fast = net.check(params, grads, X, Y, **options)
    slow = net.check(params, grads, X, Y, engine="reference", **options)
    assert fast.settings["engine"] == "batched" and fast.n_evaluations == slow.n_evaluations
    theta = np.concatenate([v.ravel() for v in params.values()])
    steps = auto_steps(theta, options.get("stencil", 2)) if options.get("eps") == "auto" else fc.DEFAULT_EPS
    close_to_rounding(numeric_of(fast), numeric_of(slow), net.cost(params, X, Y), steps, options.get("stencil", 2))


@pytest.mark.parametrize(("options", "message"), [
    ({"eps": "auto", "mode": "directions"}, "`eps`: 'auto' gives each coordinate its own step"),
    ({"stencil": 4, "mode": "directions"}, "`stencil`: the 4-point stencil is for the coordinate modes"),
    ({"stencil": 3}, r"`stencil`: expected 2 \(the central difference\) or 4"),
    ({"sweep": "yes"}, r"`sweep`: expected None \(sweep the groups that warn\)"),
    ({"eps": "big"}, r"`eps`: expected a step in \[1e-12, 1e-1\].*or 'auto'"),
])
def test_step_options_that_cannot_apply_are_refused_clearly(options, message):
    with pytest.raises(fc.InputError, match=message):
        fc.check(cubic, THETA, cubic_grad(THETA), **options)


def test_cli_step_options(capsys):
    assert main(["check", "--layers", "4,3,2", "--eps", "auto", "--stencil", "4"]) == 0
    out = capsys.readouterr().out
    assert "batched engine, mode full, eps auto (7.4e-04 per coordinate), 4-point stencil" in out
    assert main(["check", "--layers", "4,3,2", "--eps", "tiny"]) == 2
    assert "--eps: expected a number (e.g. 1e-7) or 'auto', got 'tiny'" in capsys.readouterr().err
    assert main(["check", "--layers", "4,3,2", "--mode", "directions", "--stencil", "4"]) == 2
    assert "--stencil: the 4-point stencil is for the coordinate modes" in capsys.readouterr().err


# ---------------------------------------------------------------------- README
def test_the_readmes_sweep_sample_is_what_the_script_prints(capsys):
    readme = Path(__file__).resolve().parent.parent / "README.md"
    sample = readme.read_text().split("`python scripts/sweep_examples.py` prints this")[1].split("```")[1]
    spec = importlib.util.spec_from_file_location("sweep_examples", readme.parent / "scripts" / "sweep_examples.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main() == 0
    printed = capsys.readouterr().out

    def masked(text):  # every sentence as printed; rounding-level numbers and slopes may differ by platform
        return re.sub(r"slope -?\d\.\d", "slope S", re.sub(r"-?\d\.\d+e[+-]\d+", "N", text.strip()))

    assert masked(printed) == masked(sample)


@pytest.mark.parametrize("options", [{"eps": "auto"}, {"stencil": 4}, {"eps": "auto", "stencil": 4}])
def test_a_planted_bug_fails_and_is_named_with_the_step_options(options):
    cost, params, grads = sp._network()
    grads["dW2"][3, 7] *= 1.1
    report = fc.check(cost, params, grads, **options)
    assert report.failing_groups == ["W2"] and report.worst(1)[0].label == "W2[3, 7]"
    assert fc.check(*sp._network(), **options).verdict == "pass"
