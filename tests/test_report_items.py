"""What the report shows besides verdicts (issue 12): the notes the pipeline records, the HTML
page's header, heat maps of N-D groups, colours by the rule of the wrong entries; an older
report's JSON still reads; the README's sample output is what the command prints."""

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import user_layers as u
from test_html import cells_of, parse

import fastcheck as fc
from fastcheck.apps.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
SCRIPTS = README.parent / "scripts"
#: A report as the fastcheck before notes, ties and the produced header wrote it (one wrong entry, W[1, 2]).
OLD_JSON = json.dumps({
    "difference": 0.12215961876522767, "verdict": "fail", "passed": False,
    "settings": {"eps": 1e-07, "mode": "full", "seed": 0, "kinks": "exclude", "engine": "reference", "n_jobs": 1,
                 "warn": 1e-06, "fail": 0.001},
    "n_params": 8, "n_checked": 8, "n_evaluations": 16, "elapsed": 0.0007,
    "groups": [{"name": "W", "shape": [2, 3], "size": 6, "checked": 6, "kinks": 0, "difference": 0.12269834518572803,
                "verdict": "fail", "wrong_entries": 1, "method": "coordinates", "escalated": False},
               {"name": "b", "shape": [2], "size": 2, "checked": 2, "kinks": 0, "difference": 4.8e-09,
                "verdict": "pass", "wrong_entries": 0, "method": "coordinates", "escalated": False}],
    "overall_directions": None,
    "worst": [{"group": "W", "index": [1, 2], "flat_index": 5, "analytic": 6.0, "numeric": 3.9999999934536845,
               "abs_error": 2.0000000065463155, "rel_error": 0.20000000078555785, "kink": False},
              {"group": "b", "index": [0], "flat_index": 6, "analytic": 0.5403023058681398,
               "numeric": 0.5403023006778085, "abs_error": 5.19e-09, "rel_error": 4.8e-09, "kink": False}],
    "n_kinks": 0, "kinks": [], "directions": [], "diagnoses": {}})


def course_report():
    cost, params, backward = u.course_mlp()
    return fc.check(cost, params, backward(params))  # the course's full dict: dA0, dA1, dA2 left aside


def conv_report():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((2, 3, 5, 5)), "w": rng.standard_normal((4, 3, 3, 3)),
              "b": rng.standard_normal(4)}
    return fc.check_layer(u.conv_forward_naive, inputs,
                          backward=lambda dout, cache: u.conv_backward_naive(dout, cache, window_flipped=True))


# ---------------------------------------------------------------------- notes
def test_gradient_keys_left_aside_are_a_note_in_text_and_page():
    report = course_report()
    line = "gradient keys left aside, not parameters: dA2, dA1, dA0"
    assert report.settings["grads_not_parameters"] == ["dA2", "dA1", "dA0"]
    assert f"notes:\n  {line}" in str(report)
    assert line in parse(report.to_html()).all_text


def test_the_layer_checks_dout_is_a_note_in_text_and_page():
    report = conv_report()
    line = "layer check: dout: standard normal, seed 0 (the checked scalar is sum(out * dout))"
    assert f"notes:\n  {line}" in str(report)
    assert line in parse(report.to_html()).all_text


def test_a_report_without_notes_has_no_notes_section():
    report = fc.check(lambda t: float(t @ t), np.arange(3.0), 2 * np.arange(3.0))
    assert "notes:" not in str(report) and "Notes" not in report.to_html()


# ---------------------------------------------------------------------- the page
def test_the_page_header_names_what_was_checked_version_date_and_machine():
    report = conv_report()
    made = report.produced
    assert made["fastcheck"] == fc.__version__ and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", made["date"])
    assert "cores" in made["machine"]
    words = parse(report.to_html()).all_text
    assert "fastcheck: layer check of x, w, b (262 parameters)" in words
    assert f"fastcheck {fc.__version__} \u00b7 {made['date']} \u00b7 {made['machine']}" in words
    assert "fastcheck: gradient check of W1, b1, W2, b2, W3, b3 (43 parameters)" in course_report().to_html()
    assert "<title>mine</title>" in report.to_html(title="mine")


def test_a_conv_kernel_gets_a_heat_map_of_filters_by_the_rest():
    report = conv_report()
    page = parse(report.to_html())
    assert Counter(page.svgs)["heatmap"] == 1  # w fails; x and b pass
    cells = cells_of(page, "w")
    assert len(cells) == 4 * 27 and {(len(r), len(c)) for _, r, c, _ in cells} == {(1, 1)}
    positions, _, _ = report.entry_errors("w")
    bands = dict(zip(positions.tolist(), report.entry_bands("w")))
    assert {(r.start, c.start): cls for _, r, c, cls in cells} == {divmod(p, 27): bands[p] for p in bands}
    assert "w (4x3x3x3 as 4x27)" in page.all_text and "w[0, 5]: w[0, 0, 1, 2]:" in page.all_text


def test_rounding_noise_around_a_single_wrong_entry_is_not_painted():
    """Tiny gradients (1e-7) with rounding noise of a few percent, and W[3, 7] off by 10%."""
    rng = np.random.default_rng(0)
    gradient = rng.standard_normal((20, 30)) * 1e-2
    gradient[rng.random((20, 30)) < 0.3] *= 1e-5
    grad = gradient.copy()
    grad[3, 7] *= 1.1
    report = fc.check(lambda p: float(10.0 + np.sum(gradient * p["W"])), {"W": rng.standard_normal((20, 30))},
                      {"W": grad}, engine="reference")  # the method's loop: central differences of two full costs
    _, rel, _ = report.entry_errors("W")
    assert (rel >= 1e-3).sum() > 100  # by relative error alone, a red and yellow matrix
    assert report.group("W").wrong_entries == 1
    cells = {(r.start, c.start): cls for _, r, c, cls in cells_of(parse(report.to_html()), "W")}
    assert Counter(cells.values()) == {"pass": 599, "fail": 1} and cells[(3, 7)] == "fail"
    rows = re.findall(r'<tr class="(\w+)"><td>(W\[\d+, \d+\])</td>', report.to_html())  # the worst entries
    assert rows and all(cls == ("fail" if label == "W[3, 7]" else "pass") for cls, label in rows)


# ---------------------------------------------------------------------- JSON
def test_an_older_reports_json_still_reads_and_renders():
    report = fc.Report.from_json(OLD_JSON)
    assert report.failing_groups == ["W"] and report.notes == {} and report.produced == {} and report.n_ties == 0
    assert report.worst(1)[0].label == "W[1, 2]" and report.worst(1)[0].rounding is None
    assert not report.group("W").zero_to_rounding and report.group("W").ties == 0
    assert "W[1, 2]" in str(report)
    assert "built by an older fastcheck" in parse(report.to_html()).all_text
    again = json.loads(report.to_json())
    old = json.loads(OLD_JSON)
    assert set(old) <= set(again) and all(again[k] == v for k, v in old.items() if k not in ("groups", "worst"))


def test_new_keys_round_trip():
    report = conv_report()
    again = fc.Report.from_json(report.to_json())
    assert again.to_json() == report.to_json()
    assert (again.notes, again.produced, again.diagnoses) == (report.notes, report.produced, report.diagnoses)
    assert again.worst(1)[0].rounding == report.worst(1)[0].rounding > 0


# ---------------------------------------------------------------------- README
NUMBER = re.compile(r"-?\d\.\d+e[+-]\d+")


def test_the_readmes_diagnoses_are_what_the_script_prints(capsys):
    sample = README.read_text().split("`python scripts/diagnosis_examples.py` prints this")[1].split("```")[1]
    spec = importlib.util.spec_from_file_location("diagnosis_examples", SCRIPTS / "diagnosis_examples.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main() == 0
    printed = capsys.readouterr().out
    # every sentence as printed; the numbers (residuals of rounding noise among them) may differ by platform
    assert NUMBER.sub("N", printed.strip()) == NUMBER.sub("N", sample.strip())


def test_the_readmes_sample_output_is_what_the_command_prints(capsys):
    sample = README.read_text().split("`fastcheck check --network S --bug scaled`")[1].split("```")[1]
    assert main(["check", "--network", "S", "--bug", "scaled"]) == 1
    printed = capsys.readouterr().out
    seconds = re.compile(r"(evaluations|from the base pass), [\d.]+ s$", re.M)
    assert seconds.sub(r"\1, T s", printed.strip()) == seconds.sub(r"\1, T s", sample.strip())
