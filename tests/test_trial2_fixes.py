"""What a second user trial found: each defect held here by a test that failed before its fix."""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.errors import InputError


def two_layer():
    """A small tanh network written by hand, with its backward pass; ``bug`` breaks dW2."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((2, 4))
    params = {"W1": rng.standard_normal((5, 6)) * 0.5, "b1": np.zeros((5, 1)) + 0.1,
              "W2": rng.standard_normal((2, 5)) * 0.5, "b2": np.zeros((2, 1))}

    def cost(p):
        h = np.tanh(p["W1"] @ x + p["b1"])
        return 0.5 * np.mean(np.sum((p["W2"] @ h + p["b2"] - y) ** 2, axis=0))

    def grads(p, bug=False):
        h = np.tanh(p["W1"] @ x + p["b1"])
        d = (p["W2"] @ h + p["b2"] - y) / x.shape[1]
        dh = (p["W2"].T @ d) * (1 - h ** 2)
        g = {"dW1": dh @ x.T, "db1": dh.sum(1, keepdims=True), "dW2": d @ h.T, "db2": d.sum(1, keepdims=True)}
        if bug:
            g["dW2"] = g["dW2"] * 1.5
        return g

    return cost, params, grads


# ---------------------------------------------------------------------- elapsed: the wall time of the check
@pytest.mark.parametrize("engine", ["traced", "reference"])
def test_a_failing_check_reports_no_more_time_than_the_call_took(engine):
    cost, params, grads = two_layer()
    started = time.perf_counter()
    report = fc.check(cost, params, grads(params, bug=True), engine=engine)
    wall = time.perf_counter() - started
    assert report.verdict == "fail"
    assert "noise" in report.settings  # the post-check work ran: its time must be counted once
    assert 0 < report.elapsed <= wall


# ---------------------------------------------------------------------- a parameter left out of params
def batch_norm_case():
    """A linear layer and a batch norm whose gamma and beta the user kept out of ``params``."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    params = {"W1": rng.standard_normal((3, 4))}

    def cost(p):
        z = x @ p["W1"]
        zn = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
        return np.sum((gamma * zn + beta) ** 2)

    z = x @ params["W1"]
    zn = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
    dout = 2 * (gamma * zn + beta)
    dzn = dout * gamma
    dz = (dzn - dzn.mean(0) - zn * (dzn * zn).mean(0)) / np.sqrt(z.var(0) + 1e-5)
    grads = {"dW1": x.T @ dz, "dgamma1": (dout * zn).sum(0), "dbeta1": dout.sum(0)}
    return cost, params, grads


def test_a_gradient_of_a_parameter_left_out_of_params_is_an_error_naming_the_fix():
    cost, params, grads = batch_norm_case()
    assert fc.check(cost, params, {"dW1": grads["dW1"]}).passed
    grads["dgamma1"] = grads["dgamma1"] * 10  # wrong, and it would go unchecked
    with pytest.raises(InputError, match=r"'dgamma1', 'dbeta1'.*add gamma1, beta1 to params.*or drop dgamma1, dbeta1"):
        fc.check(cost, params, grads)


def test_the_course_intermediate_gradients_stay_accepted_and_noted():
    cost, params, grads = batch_norm_case()
    grads = {"dW1": grads["dW1"], "dZ1": np.ones((5, 4)), "dA0": np.ones((5, 3)), "da_next": np.ones(4)}
    report = fc.check(cost, params, grads)
    assert report.passed
    assert report.settings["grads_not_parameters"] == ["dZ1", "dA0", "da_next"]


# ---------------------------------------------------------------------- typo hints
def course_grads():
    cost, params, grads = two_layer()
    return cost, params, {**grads(params), "dZ2": np.ones((2, 4)), "dA1": np.ones((5, 4)), "dZ1": np.ones((5, 4))}


def test_a_typo_of_a_gradient_key_is_the_key_pointed_at():
    cost, params, grads = course_grads()
    grads["dw1"] = grads.pop("dW1")
    with pytest.raises(InputError, match=r"\(did you mean 'dw1'\?\)$"):
        fc.check(cost, params, grads)


def test_a_missing_gradient_suggests_no_key_that_is_another_parameters():
    cost, params, grads = course_grads()
    del grads["db2"]
    with pytest.raises(InputError, match=r"no entry for params\['b2'\]") as caught:
        fc.check(cost, params, grads)
    assert "did you mean" not in str(caught.value)
    grads["db2"], grads["db_1"] = np.zeros((2, 1)), grads.pop("db1")  # a typo: db2 is b2's, no suggestion
    with pytest.raises(InputError, match=r"params\['b1'\].*\(did you mean 'db_1'\?\)$"):
        fc.check(cost, params, grads)


# ---------------------------------------------------------------------- traced: numpy's copies are no views
X_VIEW = np.random.default_rng(2).standard_normal((6, 4))


def copy_then_update(p):
    """``s.T.reshape(s.shape)`` is a copy in numpy: updating it leaves ``s`` as it was."""
    s = X_VIEW @ p["W"]
    t = s.T.reshape(s.shape)
    t += 1.0
    return 0.5 * np.sum(s * s) + np.sum(t ** 2)


def view_then_update(p):
    """``s.reshape(-1)`` is a view: updating it changes ``s`` too."""
    s = X_VIEW @ p["W"]
    v = s.reshape(-1)
    v += 1.0
    return 0.5 * np.sum(s * s)


def test_an_update_of_a_reshaped_copy_keeps_the_traced_engine_and_its_verdicts():
    W = np.random.default_rng(3).standard_normal((4, 3))
    s = X_VIEW @ W
    grad = X_VIEW.T @ s + 2 * X_VIEW.T @ (s + 1.0)
    report = fc.check(copy_then_update, {"W": W}, {"W": grad})
    assert report.settings["engine"] == "traced" and "traced_not_used" not in report.settings
    assert report.passed
    wrong = grad.copy()
    wrong[1, 2] *= 1.1
    assert fc.check(copy_then_update, {"W": W}, {"W": wrong}, engine="traced").group("W").verdict == "fail"


def test_an_update_of_a_real_view_still_gives_the_right_verdicts():
    W = np.random.default_rng(3).standard_normal((4, 3))
    grad = X_VIEW.T @ (X_VIEW @ W + 1.0)
    assert fc.check(view_then_update, {"W": W}, {"W": grad}).passed
    wrong = grad.copy()
    wrong[1, 2] *= 1.1
    assert fc.check(view_then_update, {"W": W}, {"W": wrong}).group("W").verdict == "fail"


def test_a_backward_updating_a_reshaped_copy_of_its_gradient_is_traced():
    def cost(p):
        s = p["W"] + p["W"].T
        dW = 2 * s  # symmetric: its transpose is itself
        g = dW.T.reshape(-1)  # the ravel of a transpose: a copy in numpy
        g += 0.0 * p["W"].reshape(-1)
        return 0.5 * np.sum(s * s), {"W": g.reshape(dW.shape)}

    report = fc.check(cost, {"W": np.random.default_rng(1).standard_normal((4, 4))})
    assert report.settings["engine"] == "traced", report.settings.get("traced_not_used")
    assert report.passed


# ---------------------------------------------------------------------- the command line: --traceback, factory forms
USER_PROBLEMS = '''
import numpy as np

X = np.random.default_rng(0).standard_normal((5, 3))
W0 = np.random.default_rng(1).standard_normal((3, 2))


def cost(p):
    return 0.5 * np.sum((X @ p["W"]) ** 2)


def grads(p):
    return {"dW": X.T @ (X @ p["W"])}


def picky_cost(p):
    if p["W"][1, 1] != W0[1, 1]:
        raise KeyError("W moved")
    return cost(p)


def raises_at():
    return picky_cost, {"W": W0.copy()}, grads({"W": W0})


def as_dict():
    return {"cost": cost, "params": {"W": W0.copy()}, "grads": grads({"W": W0})}


def as_dict_loss_and_grads():
    return {"cost": lambda p: (cost(p), grads(p)), "params": {"W": W0.copy()}}


def as_dict_with_a_typo():
    return {"cost": cost, "params": {"W": W0.copy()}, "grad": grads({"W": W0})}
'''


@pytest.fixture
def user_problems(tmp_path, monkeypatch):
    (tmp_path / "my_problems.py").write_text(USER_PROBLEMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_problems"


@pytest.mark.parametrize("engine", ["traced", "reference"])
def test_traceback_shows_where_the_users_cost_raised(user_problems, capsys, engine):
    from fastcheck.apps.cli import main

    assert main(["check", f"{user_problems}:raises_at", "--engine", engine]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the cost raised KeyError at W[1, 1]" in err and "Traceback" not in err
    assert main(["check", f"{user_problems}:raises_at", "--engine", engine, "--traceback"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "my_problems.py" in err and "in picky_cost" in err
    assert err.splitlines()[-1].startswith("fastcheck: error: the cost raised KeyError")


def test_check_and_nightly_take_the_same_factory_forms(user_problems, capsys, tmp_path):
    from fastcheck.apps.cli import main

    assert main(["check", f"{user_problems}:as_dict"]) == 0
    assert main(["check", f"{user_problems}:as_dict_loss_and_grads"]) == 0
    capsys.readouterr()
    assert main(["check", f"{user_problems}:as_dict_with_a_typo"]) == 2
    assert "returned a dict with unknown keys grad" in capsys.readouterr().err
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[[problems]]\nname = "d"\nfactory = "{user_problems}:as_dict"\n'
                     f'[[problems]]\nname = "lg"\nfactory = "{user_problems}:as_dict_loss_and_grads"\n')
    assert main(["nightly", str(suite), "--run-dir", str(tmp_path / "runs")]) == 0


# ---------------------------------------------------------------------- workers: whether they ran, and why not
def small_problem():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((20, 3))

    def cost(p):
        return float(np.sum(np.log1p(np.exp(X @ p["w"]))))

    w = rng.standard_normal(3)
    return cost, {"w": w}, {"w": X.T @ (1 / (1 + np.exp(-(X @ w))))}


def test_the_report_says_that_no_worker_ran_and_why():
    cost, params, grads = small_problem()
    report = fc.check(cost, params, grads, engine="blackbox", n_jobs=2)
    assert report.passed
    assert report.settings["workers"] == 0
    assert "left take about" in report.settings["in_process"] or "while timing" in report.settings["in_process"]
    assert "workers: none ran, 2 asked for" in str(report)


def test_the_report_says_how_many_workers_ran():
    cost, params, grads = small_problem()
    report = fc.check(cost, params, grads, engine="blackbox", n_jobs=2, chunk_size=1)
    assert report.passed
    assert report.settings["workers"] == 2 and "in_process" not in report.settings
    assert "workers: none ran" not in str(report)


def test_workers_start_only_when_their_start_and_the_cost_they_ship_pay(monkeypatch):
    from fastcheck.engines.blackbox import dispatch

    def Run(data):  # noqa: N802 -- a job of 500 coordinates at 8 ms each (4 s here), its cost closing over `data`
        objective = type("Objective", (), {"cost": staticmethod(lambda theta: float(data.sum()))})()
        run = dispatch._Run(objective, np.zeros(500), np.arange(500), 1e-7, None, False)
        run.seconds_per_coordinate = 0.008
        return run

    monkeypatch.setattr(dispatch.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # an idle machine
    monkeypatch.setattr(dispatch.os, "cpu_count", lambda: 2)
    chunk, why = dispatch._worker_chunk(Run(np.ones(10)), 500, 31, 2, False)
    assert (chunk, why) == (31, None)  # small to ship: tasks of about TASK_SECONDS, several a worker
    chunk, why = dispatch._worker_chunk(Run(np.ones(40 * 2**20 // 8)), 500, 31, 2, False)
    assert chunk is None and "40 MiB of pickled cost shipped with each of 2 tasks" in why
    monkeypatch.setattr(dispatch.os, "getloadavg", lambda: (4.0, 4.0, 4.0))  # both cores busy elsewhere
    chunk, why = dispatch._worker_chunk(Run(np.ones(10)), 500, 31, 2, False)
    assert chunk is None and "1 core(s) idle" in why


# ---------------------------------------------------------------------- the small things
def cubic_with_unused_bias():
    W = np.array([[0.3, -1.2], [0.7, 2.0]])

    def cost(p):
        return np.sum(p["W"] ** 3) + 0.0 * np.sum(p["b"])

    # b's gradient: rounding noise around zero, as a bias before a batch norm has
    return cost, {"W": W, "b": np.zeros(3)}, {"W": 3 * W ** 2, "b": np.array([1e-18, -2e-18, 0.0])}


def test_a_group_zero_to_rounding_fills_no_worst_entry_and_its_plot_says_zero():
    cost, params, grads = cubic_with_unused_bias()
    report = fc.check(cost, params, grads)
    assert report.group("b").zero_to_rounding and report.passed
    assert [e.group for e in report.worst()] == ["W"] * 4
    page = report.to_html("zero bias")
    assert "<title>b: pass (zero)" in page and "<title>b: 1.00e+00" not in page


def test_counts_of_one_are_singular_in_the_page():
    cost, params, grads = cubic_with_unused_bias()
    page = fc.check(cost, params, grads).to_html("counts")
    assert " 1 entries" not in page and ": 1 entry</title>" in page


def test_an_unknown_option_points_at_its_subcommands_help(capsys):
    from fastcheck.apps.cli import main

    assert main(["check", "--layers", "4,3", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus (see fastcheck check --help)" in capsys.readouterr().err


def test_an_unsupported_ufunc_names_the_users_line():
    X = np.linspace(-2, 2, 7)

    def cost(p):
        return np.sum(np.arctan(p["w"] * X))

    w = np.array(0.3)
    report = fc.check(cost, {"w": w}, {"w": np.sum(X / (1 + (w * X) ** 2))})
    assert report.passed
    assert report.settings["traced_not_used"].startswith("np.arctan is not supported at test_trial2_fixes.py:")
    assert "np.arctan(p[\"w\"] * X)" in report.settings["traced_not_used"]


def test_a_one_entry_group_gets_one_direction_which_checks_it_exactly():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))

    def cost(p):
        return np.sum(np.tanh(X @ p["W"] + p["c"]) ** 2)

    W, c = rng.standard_normal((3, 2)), np.array(0.2)
    t = np.tanh(X @ W + c)
    d = 2 * t * (1 - t ** 2)
    grads = {"W": X.T @ d, "c": np.sum(d)}
    report = fc.check(cost, {"W": W, "c": c}, grads, mode="directions", n_directions=8, escalate=False)
    assert report.passed
    assert report.group("c").checked == 1 and report.group("W").checked == 8
    assert report.n_evaluations == 2 * (8 + 1 + 8)  # W's, c's and the 8 over all of theta
    wrong = {**grads, "c": grads["c"] * 1.01}
    report = fc.check(cost, {"W": W, "c": c}, wrong, mode="directions", n_directions=8, escalate=False)
    assert report.group("c").verdict == "fail"


def test_a_sampled_group_is_never_called_checked_in_full():
    """A subset of half of a 4,000-entry group: its guarantee rounds to 100.0%, but it was sampled."""
    rng = np.random.default_rng(3)
    params = {"W": rng.normal(size=(40, 100)), "b": rng.normal(size=3)}

    def cost(p):
        return float(np.sum(p["W"] ** 2) + np.sum(np.sin(p["b"])))

    report = fc.check(cost, params, {"W": 2 * params["W"], "b": np.cos(params["b"])}, mode="subset", fraction=0.5)
    line = next(line for line in str(report).splitlines() if line.startswith("guarantee:"))
    W = next(g for g in report.groups if g.name == "W")
    assert W.checked < W.size and "W > 99.9%" in line and "100.0%" not in line
