"""fastcheck bench: the runner's rows, table, JSON and errors (no timings asserted)."""

import json

import numpy as np
import pytest

from fastcheck.apps.bench import command as bench
from fastcheck.apps.bench import measure, output

FASTCHECK_ROWS = ["fastcheck batched", "fastcheck reference", "fastcheck directions", "fastcheck subset 1%"]


def test_bench_S_prints_fastchecks_rows_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--networks", "S", "--repeats", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("network  params"):]
    lines = table.splitlines()
    for name in FASTCHECK_ROWS:
        (line,) = [line for line in lines if f"  {name}  " in line]
        assert line.startswith("S ") and "2,676" in line and " pass" in line
    assert not [line for line in lines if line.startswith("S ") and "torch" in line]  # peers only with --peers
    result = json.loads(out.read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == FASTCHECK_ROWS
    for r in rows.values():
        assert r["network"] == "S" and r["n_params"] == 2676
        assert r["passed"] and r["seconds"] > 0 and r["extra_memory_mb"] >= 0
        assert not r["extrapolated"]  # S is small enough to run every method whole
    assert rows["fastcheck batched"]["ratio_to_batched"] == 1.0
    assert rows["fastcheck batched"]["repeats"] >= 3
    assert result["settings"]["networks"] == ["S"]
    assert "numpy" in result["environment"]["versions"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--networks", "X"], "unknown network 'X'"),
    (["--networks", ","], "--networks is empty"),
    (["--repeats", "1"], "at least 3"),
    (["--plot", "out.svg"], "must be a .png"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("fastcheck: error:")


def test_register_adds_the_subcommand():
    import argparse

    parser = argparse.ArgumentParser(prog="fastcheck")
    sub = parser.add_subparsers(dest="command")
    bench.register(sub)
    args = parser.parse_args(["bench", "--networks", "S,M", "--peers", "--scaling"])
    assert args.func is bench.run_bench_command and args.peers and args.scaling and args.networks == "S,M"


def test_growth_exponent_and_extrapolation():
    n = np.array([1e3, 1e4, 1e5, 1e6])
    exponent, constant = measure.growth_exponent(n, 2e-6 * n**1.3)
    assert exponent == pytest.approx(1.3) and constant == pytest.approx(2e-6)
    assert measure._extrapolate(1000, 10, 1.5, 100, 6.0) == pytest.approx(1.5 + 0.05 * 990)
    assert measure._extrapolate(1000, 10, 7.0, 100, 6.0) == pytest.approx(60.0)  # noise: proportional
    assert measure._scaling_width(1000) == 19  # 2*19^2 + 12*19 + 10 = 960
    assert all(a < b for a, b in zip(measure.SCALING_TARGETS, measure.SCALING_TARGETS[1:]))


def _result():
    row = dict(network="M", n_params=109386, kind="exhaustive", method="torch gradcheck", seconds=200.0, passed=True,
               difference=None, extra_memory_mb=12.0, repeats=1, extrapolated=True, sample=[20, 200],
               sample_seconds=[0.1, 0.5], ratio_to_batched=2000.0, note="extrapolated")
    batched = dict(row, method="fastcheck batched", seconds=0.1, extrapolated=False, sample=None,
                   ratio_to_batched=1.0, note="")
    return {"rows": [batched, row], "skipped_peers": ["jax"],
            "scaling": {"points": [{"n_params": 1000, "seconds": 0.01}, {"n_params": 10**6, "seconds": 3.0}],
                        "exponent": 0.83, "constant": 1e-4, "examples": 64}}


def test_format_table_labels_extrapolated_rows():
    text = output.format_table(_result())
    assert "200*" in text and "2e+03" in text and "pass (sample)" in text
    assert "extrapolated from seeded samples" in text and "skipped: jax" in text and "n^0.83" in text


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    output.plot(_result(), str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_run_method_in_process_on_a_sample():
    out = measure.run_method("fastcheck reference", "S", k=50, repeats=1)
    assert out["passed"] and out["seconds"] > 0 and out["repeats"] == 1
