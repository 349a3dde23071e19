"""One progress line, in the reference loops as in the black-box engine's workers."""

from __future__ import annotations

import numpy as np

import fastcheck as fc
from fastcheck.core.directions import draw_directions
from fastcheck.core.layout import Layout
from fastcheck.core.objective import CostObjective
from fastcheck.core.progress import ProgressLine, format_duration, progress_line
from fastcheck.engines.reference import evaluate_directions, reference_engine

EPS = 1e-7
PARAMS = {"W": np.random.default_rng(2).standard_normal((3, 4)), "b": np.ones((3, 1))}


def cost(p):
    return float(np.sum(np.sin(p["W"])) + np.sum(p["b"] ** 3))


def grads(p):
    return {"W": np.cos(p["W"]), "b": 3 * p["b"] ** 2}


def _objective():
    layout, theta = Layout.from_params(PARAMS)
    objective = CostObjective(cost, layout)
    objective.base(theta)
    return objective, theta


def test_the_line_shows_done_share_eta_and_elapsed(capfd):
    with ProgressLine(4, True, refresh=0) as line:
        line.update(1)
        line.update(3)
    err = capfd.readouterr().err
    assert "\rfastcheck: 1/4 coordinates (25%), ETA " in err
    assert "fastcheck: 4/4 coordinates (100%), ETA 0 s (0 s elapsed)" in err and err.endswith("\n")


def test_the_line_is_quiet_when_disabled_or_off_a_terminal(capfd):
    for enabled in (False, None):  # stderr is captured here: not a terminal
        with ProgressLine(2, enabled) as line:
            line.update(2)
        line.finish("pass")
    with progress_line(False, 5) as line:
        line.update(5)
    assert capfd.readouterr().err == ""


def test_a_caller_may_give_the_eta_and_a_closing_text(capfd):
    line = ProgressLine(30, True, label="box@default", refresh=0)
    line.update(7, eta=125.0)
    line.finish("pass, difference 1.2e-08")
    err = capfd.readouterr().err
    assert "box@default: 7/30 coordinates (23%), ETA 2 min 05 s" in err
    assert "\rbox@default: pass, difference 1.2e-08" in err and err.endswith("\n")


def test_durations_read_as_a_person_would_say_them():
    assert [format_duration(s) for s in (4.2, 185, 7620, float("inf"))] == ["4 s", "3 min 05 s", "2 h 07 min", "?"]


def test_the_reference_loop_reports_each_coordinate_and_keeps_its_numbers(capfd):
    objective, theta = _objective()
    indices = np.arange(theta.size)
    with ProgressLine(len(indices), True) as line:
        shown = reference_engine(objective, theta, indices, EPS, progress=line)
    assert line.done == len(indices)
    assert f"{len(indices)}/{len(indices)} coordinates (100%), ETA" in capfd.readouterr().err
    quiet = reference_engine(objective, theta, indices, EPS)
    np.testing.assert_array_equal(shown.numeric, quiet.numeric)
    assert capfd.readouterr().err == ""  # quiet by default: chunks in workers run this loop too
    reference_engine(objective, theta, indices, EPS, progress=True)  # the engine's own line
    assert f"{len(indices)}/{len(indices)} coordinates (100%), ETA" in capfd.readouterr().err


def test_the_reference_directions_loop_reports_each_direction(capfd):
    objective, theta = _objective()
    dirs = draw_directions(objective.layout, 3, seed=1)
    analytic = objective.layout.flatten_grads(grads(PARAMS))
    shown = evaluate_directions(objective, theta, analytic, dirs, EPS, progress=True)
    assert f"{len(dirs)}/{len(dirs)} directions (100%)" in capfd.readouterr().err
    np.testing.assert_array_equal(shown.numeric, evaluate_directions(objective, theta, analytic, dirs, EPS).numeric)


def test_a_serial_check_shows_progress_on_request(capfd):
    fc.check(cost, PARAMS, grads(PARAMS), progress=True, engine="reference")
    assert "coordinates (100%), ETA" in capfd.readouterr().err
