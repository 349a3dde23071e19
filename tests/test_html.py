"""The HTML report: a well-formed, self-contained page whose plots show where a gradient is wrong."""

import re
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.apps.cli import main
from fastcheck.apps.networks import network
from fastcheck.apps.nightly import parse_suite, run_suite
from fastcheck.report.html import HEAT_CELLS

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}
CELL = re.compile(r"^(.*)\[(\d+)(?::(\d+))?, (\d+)(?::(\d+))?\]: ")


class Page(HTMLParser):
    """Parses a page: checks every element is closed in order, counts tags, and collects
    the text, the SVG classes and the heat-map cells as (group, rows, cols, class)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.svgs, self.cells, self.text = [], [], Counter(), [], [], []
        self.feed(text)
        self.close()
        self.errors += [f"<{tag}> never closed" for tag, _ in self.stack]

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        attrs = dict(attrs)
        if tag == "svg" and "class" in attrs:  # the plots (the hatch pattern's holder has none)
            self.svgs.append(attrs["class"])
        if tag not in VOID:
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] += 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        in_map = any(tag == "svg" and attrs.get("class") == "heatmap" for tag, attrs in self.stack)
        if in_map and [t for t, _ in self.stack[-2:]] == ["rect", "title"]:
            group, r0, r1, c0, c1 = CELL.match(data).groups()
            rows = range(int(r0), int(r1) if r1 else int(r0) + 1)
            cols = range(int(c0), int(c1) if c1 else int(c0) + 1)
            self.cells.append((group, rows, cols, self.stack[-2][1]["class"]))

    @property
    def all_text(self):
        return " ".join(" ".join(self.text).split())


def parse(text):
    page = Page(text)
    assert page.errors == []
    assert text.startswith("<!DOCTYPE html>")
    assert page.tags["html"] == page.tags["head"] == page.tags["body"] == 1
    return page


def cells_of(page, group):
    return [c for c in page.cells if c[0] == group]


@pytest.fixture(scope="module")
def s_net():
    return network("S")


@pytest.fixture(scope="module")
def one_wrong(s_net):
    """Network S with the design's planted bug: W2[3, 7] off by 10%."""
    net, params, X, Y = s_net
    grads = net.gradient(params, X, Y)
    grads["dW2"][3, 7] *= 1.1
    return net.check(params, grads, X, Y)


@pytest.fixture(scope="module")
def scaled(s_net):
    """The gradient with dW2 doubled, for the cheap modes."""
    net, params, X, Y = s_net
    grads = net.gradient(params, X, Y)
    grads["dW2"] *= 2.0
    return net, params, grads, X, Y


def test_page_is_well_formed_self_contained_and_names_groups(one_wrong):
    text = one_wrong.to_html()
    page = parse(text)
    words = page.all_text
    assert "gradient check FAILED" in words and "wrong: W2" in words
    for g in one_wrong.groups:
        assert g.name in words and f"{g.difference:.2e}" in words
    assert "W2[3, 7]" in words  # the worst entries table
    assert one_wrong.diagnoses["W2"] in words
    assert page.tags["table"] >= 2
    # the difference plot, one histogram per group and the heat map of W2
    assert Counter(page.svgs) == {"differences": 1, "histogram": 6, "heatmap": 1}
    assert page.tags["script"] == 0 and not re.search(r"\b(src|href)=|@import|url\(http", text)


def test_group_rows_are_coloured_by_verdict(one_wrong):
    text = one_wrong.to_html()
    assert re.search(r'<tr class="fail"><td>W2</td>', text)
    assert re.search(r'<tr class="pass"><td>W1</td>', text)


def test_heat_map_marks_the_wrong_entry(one_wrong):
    page = parse(one_wrong.to_html())
    cells = cells_of(page, "W2")
    assert len(cells) == len(page.cells) == 16 * 32  # only W2 fails; one cell per entry
    bad = [c for c in cells if c[3] == "fail"]
    assert len(bad) == 1
    _, rows, cols, _ = bad[0]
    assert (list(rows), list(cols)) == ([3], [7])
    assert {c[3] for c in cells if c is not bad[0]} == {"pass"}


def test_heat_map_pools_a_large_matrix():
    net, params, X, Y = network("M")
    grads = net.gradient(params, X, Y)
    grads["dW1"][100, 500] *= 1.1
    report = net.check(params, grads, X, Y)
    assert report.failing_groups == ["W1"]
    cells = cells_of(parse(report.to_html()), "W1")
    assert 0 < len(cells) <= HEAT_CELLS * HEAT_CELLS
    assert sum(len(r) * len(c) for _, r, c, _ in cells) == 128 * 784  # the cells tile the matrix
    bad = [c for c in cells if c[3] == "fail"]
    assert len(bad) == 1 and 100 in bad[0][1] and 500 in bad[0][2]
    (_, rows, cols, _), worst = bad[0], report.worst(1)[0]
    assert len(rows) > 1 and len(cols) > 1  # pooled, to the largest error of the cell
    assert worst.label == "W1[100, 500]"
    assert f"W1[{rows.start}:{rows.stop}, {cols.start}:{cols.stop}]: max {worst.rel_error:.2e}" in page_text(report)


def page_text(report):
    return parse(report.to_html()).all_text


def test_heat_map_colours_follow_the_bounds():
    x = np.linspace(1.0, 2.0, 6).reshape(2, 3)
    grad = 2 * x
    grad[1, 2] *= 1.5  # relative error 0.2
    grad[0, 1] *= 1.1  # 0.048: fail, but not above 10x the fail bound
    grad[1, 0] *= 1.01  # 0.005: warn
    report = fc.check(lambda p: float(np.sum(p["W"] ** 2)), {"W": x}, {"W": grad}, warn=1e-3, fail=3e-2)
    positions, rel, _ = report.entry_errors("W")
    expected = {divmod(int(i), 3): "fail" if r >= 3e-2 else "warn" if r >= 1e-3 else "pass"
                for i, r in zip(positions, rel)}
    cells = {(r.start, c.start): cls for _, r, c, cls in cells_of(parse(report.to_html()), "W")}
    assert cells == expected
    assert Counter(cells.values()) == {"fail": 2, "warn": 1, "pass": 3}


@pytest.mark.parametrize("kinks", ["exclude", "include"])
def test_kinks_in_the_heat_map(kinks):
    net = fc.MLP([20, 16, 12, 4], hidden="relu", output="softmax", l2=0.1)
    params = net.init(seed=0)
    X, Y = net.random_data(16, seed=1)
    grads = net.gradient(params, X, Y)
    grads["dW2"][1, 2] *= 1.2
    report = net.check(params, grads, X, Y, eps=1e-2, kinks=kinks)  # a coarse step crosses kinks
    positions, _, kink = report.entry_errors("W2")
    assert kink.any() and report.group("W2").verdict == "fail"
    text = report.to_html()
    cells = {(r.start, c.start): cls for _, r, c, cls in cells_of(parse(text), "W2")}
    shown = {at for at, cls in cells.items() if cls == "kink"}
    assert shown == ({divmod(int(i), 16) for i in positions[kink]} if kinks == "exclude" else set())
    assert "crossing a kink" in text  # stacked in the histogram either way


def test_difference_plot_orders_groups_by_difference(one_wrong):
    dots = re.findall(r'<circle cx="([\d.]+)"[^>]*><title>([^:]+): ([^ ]+) \((\w+)\)</title>', one_wrong.to_html())
    assert [name for _, name, _, _ in dots] == [g.name for g in one_wrong.groups] + ["overall"]
    assert [verdict for *_, verdict in dots] == [g.verdict for g in one_wrong.groups] + [one_wrong.verdict]
    by_x = sorted(dots, key=lambda d: float(d[0]))
    assert [float(d[2]) for d in by_x] == sorted(float(d[2]) for d in dots)


def test_hostile_group_names_are_escaped():
    params = {"<b>": np.arange(6.0).reshape(2, 3), "<script>alert(1)</script>": np.ones(3)}
    grads = {"<b>": 2 * params["<b>"], "<script>alert(1)</script>": 3 * np.ones(3)}
    grads["<b>"][1, 2] *= 1.5

    def cost(p):
        return float(np.sum(p["<b>"] ** 2) + np.sum(p["<script>alert(1)</script>"] ** 3))

    report = fc.check(cost, params, grads)
    text = report.to_html(title="<i>mine</i>")
    assert "<b>" not in text and "<script" not in text.lower() and "<i>" not in text
    assert "&lt;b&gt;" in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = parse(text)
    assert "<script>alert(1)</script>" in page.all_text and "<i>mine</i>" in page.all_text
    bad = [c for c in cells_of(page, "<b>") if c[3] == "fail"]
    assert [(list(r), list(c)) for _, r, c, _ in bad] == [([1], [2])]


def test_report_from_json_renders_without_per_entry_plots(one_wrong):
    again = fc.Report.from_json(one_wrong.to_json())
    assert not again.has_entries and one_wrong.has_entries
    page = parse(again.to_html())
    words = page.all_text
    assert "read from JSON" in words and "read from JSON" not in parse(one_wrong.to_html()).all_text
    assert [g.name in words for g in again.groups] == [True] * 6
    assert "W2[3, 7]" in words and "gradient check FAILED" in words
    assert page.svgs == ["differences"]


def test_small_report_from_json_keeps_every_entry():
    x = np.arange(1.0, 6.0)
    grad = x.copy()
    grad[3] *= 1.5
    again = fc.Report.from_json(fc.check(lambda t: float(t @ x), np.zeros(5), grad).to_json())
    assert again.has_entries  # 5 entries: all among the 20 worst the JSON keeps
    assert parse(again.to_html()).svgs == ["differences", "histogram"]


def test_subset_mode_shows_unchecked_entries(scaled):
    net, params, grads, X, Y = scaled
    report = net.check(params, grads, X, Y, mode="subset", fraction=0.1, escalate=False)
    w2 = report.group("W2")
    assert w2.checked < w2.size and w2.kinks == 0
    page = parse(report.to_html())
    classes = Counter(c[3] for c in cells_of(page, "W2"))
    assert classes == {"unchecked": w2.size - w2.checked, "fail": w2.checked}
    assert "would have been caught with probability" in page.all_text


@pytest.mark.parametrize("escalate", [False, True])
def test_directions_mode(scaled, escalate):
    net, params, grads, X, Y = scaled
    report = net.check(params, grads, X, Y, mode="directions", n_directions=8, escalate=escalate)
    page = parse(report.to_html())
    words = page.all_text
    for name in ["W1", "b1", "b2", "W3", "b3", "(all)"]:
        assert f"{name}: 8 directions" in words
    assert "Worst directions" in words
    if escalate:  # W2 re-checked entry by entry: its histogram and heat map are of coordinates
        assert "W2: 512 coordinates" in words
        assert Counter(c[3] for c in cells_of(page, "W2")) == {"fail": 512}
    else:
        assert "W2: 8 directions" in words and "heatmap" not in page.svgs


def test_save_html(one_wrong, tmp_path):
    path = tmp_path / "r.html"
    one_wrong.save_html(path, title="night 5")
    assert path.read_text(encoding="utf-8") == one_wrong.to_html(title="night 5")


def test_cli_check_writes_the_page(tmp_path):
    path = tmp_path / "r.html"
    assert main(["check", "--layers", "6,5,4,3", "--examples", "8", "--bug", "bias_axis", "--quiet",
                 "--html", str(path)]) == 1
    page = parse(path.read_text(encoding="utf-8"))
    assert "b2" in page.all_text and "gradient check FAILED" in page.all_text


def test_cli_demo_writes_the_planted_bug_page(tmp_path):
    path = tmp_path / "demo.html"
    assert main(["demo", "--network", "S", "--html", str(path)]) == 0
    page = parse(path.read_text(encoding="utf-8"))
    assert "planted bug 'scaled'" in page.all_text
    assert Counter(c[3] for c in cells_of(page, "W2")) == {"fail": 512}


@pytest.mark.parametrize("argv", [["check", "--layers", "6,5,4,3", "--examples", "8", "--html"],
                                  ["check", "--layers", "6,5,4,3", "--examples", "8", "--json"],
                                  ["demo", "--network", "S", "--html"]])
@pytest.mark.parametrize("where", ["missing/r.out", "a_file/r.out", "."])
def test_cli_bad_output_path_is_one_line_exit_2(tmp_path, capsys, argv, where):
    (tmp_path / "a_file").write_text("")
    assert main(argv + [str(tmp_path / where)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # refused before the check ran
    assert err.startswith(f"fastcheck: error: {argv[-1]} ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_nightly_writes_a_page_beside_each_report(tmp_path):
    suite = parse_suite({"problems": [{"name": "mlp", "layers": [6, 5, 4, 3], "examples": 8,
                                       "points": [{"seed": 0}, {"seed": 1}]}]})
    run_dir = tmp_path / "night"
    run_suite(suite, run_dir, history=tmp_path / "h.sqlite", progress=False)
    reports = sorted(p.stem for p in run_dir.glob("*@*.json"))
    assert reports == ["mlp@seed0", "mlp@seed1"]
    assert sorted(p.stem for p in run_dir.glob("*@*.html")) == reports  # and index.html, the summary
    page = parse((run_dir / "mlp@seed0.html").read_text(encoding="utf-8"))
    assert "fastcheck nightly: mlp@seed0" in page.all_text and "gradient check PASSED" in page.all_text
    assert not list(run_dir.glob(".*.tmp"))
