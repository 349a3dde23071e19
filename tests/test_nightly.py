"""fastcheck nightly: resumable runs (kill -9 and resume), corrupted chunks, the lock,
config errors, history and regressions."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastcheck.apps import nightly
from fastcheck.apps.nightly import ChunkStore, main, parse_suite, run_suite
from fastcheck.apps.nightly.history import History
from fastcheck.report import Report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

PROBLEMS = '''
import os, time
import numpy as np

CALLS = {"n": 0, "limit": None}

def slow(seed=0):
    """A black-box cost slow enough (a sleep per call) for a kill to land mid-run."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((12, 30))
    x0 = rng.standard_normal(30)

    def cost(theta):
        time.sleep(float(os.environ.get("NIGHTLY_TEST_SLEEP", "0")))
        CALLS["n"] += 1
        if CALLS["limit"] is not None and CALLS["n"] > CALLS["limit"]:
            raise KeyboardInterrupt  # an interruption, in process
        return float(np.sum(np.tanh(A @ theta)) + 0.5 * theta @ theta)

    def grads(theta):
        return A.T @ (1.0 - np.tanh(A @ theta) ** 2) + theta

    return cost, x0, grads

def drifting(seed=0):
    """Its gradient is off by a relative error read from NIGHTLY_TEST_GRAD_ERROR."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((4, 5)), "b": rng.standard_normal(4)}
    error = float(os.environ.get("NIGHTLY_TEST_GRAD_ERROR", "0"))

    def cost(p):
        return float(np.sum(np.sin(p["W"])) + 0.5 * np.sum(p["b"] ** 2))

    return cost, params, {"W": np.cos(params["W"]) * (1 + error), "b": params["b"].copy()}

def broken(seed=0):
    raise RuntimeError("no data today")
'''

MLP_SUITE = """
[[problems]]
name = "mlp"
layers = [24, 16, 8, 4]
hidden = "tanh"
l2 = 0.1
examples = 16
chunk_size = 6
points = [{seed = 0}, {seed = 1}, {seed = 0, train_steps = 3, learning_rate = 0.1}]
"""

BLACKBOX_SUITE = """
[[problems]]
name = "box"
factory = "nightly_user:slow"
chunk_size = 4
points = [{seed = 0}, {seed = 1}, {seed = 2}]
"""

# The child process: `fastcheck nightly`, with each chunk's computation made slower by
# NIGHTLY_TEST_CHUNK_SLEEP seconds, so a run lasts seconds however fast the machine and a
# kill at a random moment lands mid-run, inside a chunk's computation or between chunks.
CALL = """
import os, sys, time
from fastcheck.apps import nightly
delay, save = float(os.environ.get("NIGHTLY_TEST_CHUNK_SLEEP", "0")), nightly.ChunkStore.save
def slow_save(self, *args, **kwargs):
    time.sleep(delay)
    return save(self, *args, **kwargs)
nightly.ChunkStore.save = slow_save
sys.exit(nightly.main(sys.argv[1:]))
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "nightly_user.py").write_text(PROBLEMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("nightly_user", None)
    yield "nightly_user"
    sys.modules.pop("nightly_user", None)


def _suite(tmp_path, text, name="suite.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _spawn(tmp_path, args, env=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           **(env or {})}
    return subprocess.Popen([sys.executable, "-c", CALL, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _chunk_files(run_dir):
    return sorted((Path(run_dir) / "chunks").glob("*/chunk-*.bin")) if (Path(run_dir) / "chunks").is_dir() else []


def _reports(run_dir):
    return {p.name: Report.from_json(p.read_text()) for p in sorted(Path(run_dir).glob("*@*.json"))}


def _assert_same_report(comp: Report, ref: Report):
    assert comp.difference == ref.difference
    assert comp.verdict == ref.verdict
    assert comp.groups == ref.groups
    assert comp.worst(20) == ref.worst(20)
    assert comp.kinks == ref.kinks
    assert (comp.n_checked, comp.n_evaluations, comp.n_kinks) == (ref.n_checked, ref.n_evaluations, ref.n_kinks)
    assert comp.settings == ref.settings


def _kill_mid_run(tmp_path, suite, run_dir, seed, env=None):
    """Start a nightly, SIGKILL it at a random moment after its first chunk is written."""
    proc = _spawn(tmp_path, ["nightly", suite, "--run-dir", str(run_dir)], env)
    try:
        deadline = time.monotonic() + 60
        while not _chunk_files(run_dir):
            assert proc.poll() is None, "the run ended before writing a chunk"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0.0, 0.5))
        while not _chunk_files(run_dir):  # between two points: kill in the middle of the next one
            assert proc.poll() is None, "the run finished before the kill: make the test problem slower"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", ["mlp", "blackbox"])
def test_killed_run_resumes_to_the_uninterrupted_report(tmp_path, user_module, kind, seed):
    # Each run lasts >= 1.5 s (MLP: 3 x 95 saved chunks; black box: 3 x 7), and the kill
    # comes <= 0.5 s after the first chunk: it lands mid-run on any machine.
    text, env = ((MLP_SUITE, {"NIGHTLY_TEST_CHUNK_SLEEP": "0.01"}) if kind == "mlp" else
                 (BLACKBOX_SUITE, {"NIGHTLY_TEST_SLEEP": "0.004", "NIGHTLY_TEST_CHUNK_SLEEP": "0.05"}))
    suite = _suite(tmp_path, text)
    killed, clean = tmp_path / "runs" / "killed", tmp_path / "runs" / "clean"
    _kill_mid_run(tmp_path, suite, killed, seed, env)
    survivors = {p: p.stat().st_mtime_ns for p in _chunk_files(killed)}
    assert survivors, "the killed run left no chunk"
    n_units = len(nightly.load_suite(suite).problems[0].points)
    assert len(_reports(killed)) < n_units
    finished = {name[: -len(".json")] for name in _reports(killed)}  # units whose report the kill spared

    resumed = _spawn(tmp_path, ["nightly", suite, "--run-dir", str(killed)])
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    if any(path.parent.name not in finished for path in survivors):  # an unfinished unit had chunks
        assert "resumed" in out
    for path, mtime in survivors.items():  # finished work is merged, not redone (or is done with)
        assert not path.exists() or path.stat().st_mtime_ns == mtime
    assert not _chunk_files(killed)  # finished units drop their chunks

    run_suite(nightly.load_suite(suite), clean, progress=False)  # uninterrupted, in this process
    comp, ref = _reports(killed), _reports(clean)
    assert sorted(comp) == sorted(ref) and len(ref) == n_units
    for name in ref:
        _assert_same_report(comp[name], ref[name])

    with History(tmp_path / "runs" / "history.sqlite", create=False) as db:  # one row per unit and run
        for problem, point in db.units():
            assert len(db.results(problem, point)) == 2


def _chunk_calls(chunks: int, size: int = 4) -> int:
    """Cost calls of ``chunks`` chunks of ``size`` coordinates: both signs, and the sample evaluated again."""
    from fastcheck.core.objective import recheck_sample

    return chunks * (2 * size + len(recheck_sample(size, 0)))


def _interrupted(tmp_path, user_module, limit, chunk_size=4):
    """Run the black-box suite in process until the cost raises KeyboardInterrupt after ``limit`` calls."""
    module = __import__(user_module)
    # the reference loop, whose calls of the cost the interruption counts
    suite = parse_suite({"problems": [{"name": "box", "factory": f"{user_module}:slow", "chunk_size": chunk_size,
                                       "engine": "reference", "points": [{"seed": 0}]}]})
    run_dir = tmp_path / "runs" / "night"
    module.CALLS.update(n=0, limit=limit)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, run_dir)
    module.CALLS.update(n=0, limit=None)
    return suite, run_dir


def test_corrupted_truncated_and_foreign_chunks_are_recomputed(tmp_path, user_module, capsys):
    suite, run_dir = _interrupted(tmp_path, user_module, limit=2 + _chunk_calls(6))  # base twice, then 6 chunks
    files = _chunk_files(run_dir)
    assert len(files) == 6
    flipped = bytearray(files[0].read_bytes())
    flipped[-3] ^= 0xFF
    files[0].write_bytes(bytes(flipped))
    files[1].write_bytes(files[1].read_bytes()[:-5])
    data = files[2].read_bytes()
    files[2].write_bytes(data.replace(b'"key":"', b'"key":"0', 1))  # another configuration's chunk
    files[3].write_bytes(files[3].read_bytes()[:20])
    capsys.readouterr()

    results = run_suite(suite, run_dir)
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "truncated" in err and "key mismatch" in err
    assert results[0].status == "resumed"
    assert results[0].chunks_reused == 2

    clean = run_suite(suite, tmp_path / "runs" / "clean")
    _assert_same_report(results[0].report, clean[0].report)
    assert results[0].report.n_checked == 30


def test_chunk_store_roundtrip_and_checksum(tmp_path):
    from fastcheck.core.results import Evaluations

    indices = np.arange(10, 20, dtype=np.int64)
    ev = Evaluations(indices[2:6].copy(), np.arange(4.0), -np.arange(4.0), np.ones(4), np.array([1, 0, 0, 1], bool),
                     8)
    store = ChunkStore(tmp_path / "c", "k1")
    path = store.save(2, 6, ev, 0.5)
    [chunk] = store.load(indices)
    for f in ("indices", "cost_plus", "cost_minus", "numeric", "kinks"):
        np.testing.assert_array_equal(getattr(chunk.evaluations, f), getattr(ev, f))
    assert (chunk.start, chunk.stop, chunk.evaluations.n_evaluations) == (2, 6, 8)
    assert ChunkStore(tmp_path / "c", "k2").load(indices) == []  # another key: never merged (and removed)
    assert not path.exists()


def test_concurrent_run_refuses(tmp_path, user_module, capsys):
    suite = _suite(tmp_path, BLACKBOX_SUITE)
    run_dir = tmp_path / "runs" / "night"
    proc = _spawn(tmp_path, ["nightly", suite, "--run-dir", str(run_dir)],
                  {"NIGHTLY_TEST_SLEEP": "0.005", "NIGHTLY_TEST_CHUNK_SLEEP": "0.05"})
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "run.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        assert main(["nightly", suite, "--run-dir", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "is in use by another `fastcheck nightly`" in err and f"pid {proc.pid}" in err
    finally:
        proc.kill()
        proc.communicate()
    assert main(["nightly", suite, "--run-dir", str(run_dir)]) == 0  # the lock died with the process


CONFIG_ERRORS = [
    ("", "problems: missing"),
    ("problems = []", "problems: expected a non-empty array"),
    ("colour = 1\n[[problems]]\nname='a'\nlayers=[2,2]", "colour: unknown key"),
    ("[[problems]]\nlayers = [3, 2]", "problems[0].name: missing"),
    ("[[problems]]\nname = 'a b'\nlayers = [3, 2]", "problems[0].name: expected a name"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\n[[problems]]\nname='a'\nlayers=[3,2]", "problems[1].name: duplicate"),
    ("[[problems]]\nname = 'a'", "problems[0].layers: missing"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\n[[problems]]\nname='b'\nlayers=[3,'x']",
     "problems[1].layers: expected an array of at least 2 positive integers"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nlayer=[1]", "problems[0].layer: unknown key"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nhidden='swish'", "problems[0].hidden: expected one of"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\noutput=3", "problems[0].output: expected one of"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nl2=-1", "problems[0].l2: expected a number >= 0"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nexamples=0", "problems[0].examples: expected an integer >= 1"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nexamples=2.5", "problems[0].examples: expected an integer"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nbug='scaled'", "problems[0].bug: bugs are planted in layer 2"),
    ("[[problems]]\nname='a'\nlayers=[3,2,2,2]\nbug='typo'", "problems[0].bug: expected one of"),
    ("[[problems]]\nname='a'\nnetwork='XL'", "problems[0].network: expected one of 'S', 'M', 'L'"),
    ("[[problems]]\nname='a'\nnetwork='S'\nlayers=[3,2]", "problems[0].layers: give `network` or"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nengine='fast'", "problems[0].engine: expected one of"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nmode='directions'", "problems[0].mode: 'directions' cannot run"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nmode='subset'", "problems[0].mode: 'subset' needs exactly one"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nfraction=0.5", "problems[0].fraction: goes with mode='subset'"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nmode='subset'\nfraction=1.5", "problems[0].fraction: expected a number"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\neps=1", "problems[0].eps: expected a step in [1e-12, 1e-1]"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\neps='small'", "problems[0].eps: expected a step"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nwarn=1e-2\nfail=1e-3", "problems[0].warn: expected warn <= fail"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nfail=0", "problems[0].fail: expected a positive number"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nn_jobs=0", "problems[0].n_jobs: expected a positive integer or -1"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nbackend='spark'", "problems[0].backend: expected one of"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nbackend='dask'", "problems[0].scheduler: backend 'dask' needs"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nbackend='dask'\nscheduler='tcp://h:1'",
     "problems[0].backend: 'dask' is for user factories"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nscheduler='tcp://x:1'", "problems[0].scheduler: goes with"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\nchunk_size=0", "problems[0].chunk_size: expected an integer >= 1"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints={seed=0}", "problems[0].points: expected a non-empty array"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[]", "problems[0].points: expected a non-empty array"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{seed=-1}]", "problems[0].points[0].seed: expected an integer"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{train_steps=2}]", "problems[0].points[0].seed: missing"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{seed=0, steps=2}]", "problems[0].points[0].steps: unknown"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{seed=0, learning_rate=0.1}]",
     "problems[0].points[0].learning_rate: goes with train_steps"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{seed=0, train_steps=2, learning_rate=0}]",
     "problems[0].points[0].learning_rate: expected a positive number"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[{seed=0}, {seed=0}]", "problems[0].points[1]: duplicate point"),
    ("[[problems]]\nname='a'\nlayers=[3,2]\npoints=[3]", "problems[0].points[0]: expected a table"),
    ("[[problems]]\nname='a'\nfactory='no colon'", "problems[0].factory: expected 'module:function'"),
    ("[[problems]]\nname='a'\nfactory='no_such_module_xyz:f'", "problems[0].factory: cannot import module"),
    ("[[problems]]\nname='a'\nfactory='nightly_user:nothing'", "problems[0].factory: module 'nightly_user' has no"),
    ("[[problems]]\nname='a'\nfactory='nightly_user:slow'\nlayers=[3,2]", "problems[0].layers: unknown key (MLP"),
    ("[[problems]]\nname='a'\nfactory='nightly_user:slow'\nbackend='dask'\nscheduler='tcp://h:1'",
     "problems[0].n_jobs: backend 'dask' runs workers"),
    ("[defaults]\nmode='sub'\n[[problems]]\nname='a'\nlayers=[3,2]", "defaults.mode: expected one of"),
    ("[defaults]\nhidden='relu'\n[[problems]]\nname='a'\nlayers=[3,2]", "defaults.hidden: unknown key"),
    ("[[problems]\nname='a'", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS)
def test_config_errors_name_the_key(tmp_path, user_module, capsys, text, message):
    suite = _suite(tmp_path, text)
    assert main(["nightly", suite, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastcheck: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "run").exists()  # nothing ran


def test_usage_errors(tmp_path, capsys):
    assert main(["nightly", str(tmp_path / "missing.toml"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "cannot read suite" in capsys.readouterr().err
    assert main(["nightly", "x.toml"]) == 2
    assert "--run-dir" in capsys.readouterr().err
    assert main(["nightly", "x.toml", "--run-dir", "r", "--chunk-size", "0"]) == 2
    assert "--chunk-size: expected a positive integer" in capsys.readouterr().err
    assert main(["history", "--history", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_regression_is_flagged_even_when_passing(tmp_path, user_module, monkeypatch, capsys):
    suite = _suite(tmp_path, "[[problems]]\nname = 'drift'\nfactory = 'nightly_user:drifting'\n"
                             "points = [{seed = 0}, {seed = 1}]\n")
    history = tmp_path / "runs" / "history.sqlite"
    markdown = tmp_path / "summary.md"
    monkeypatch.setenv("NIGHTLY_TEST_GRAD_ERROR", "1e-9")
    assert main(["nightly", suite, "--run-dir", str(tmp_path / "runs" / "night1")]) == 0
    first = capsys.readouterr().out
    assert "PASSED" in first and "REGRESSION" not in first

    monkeypatch.setenv("NIGHTLY_TEST_GRAD_ERROR", "5e-8")  # 50x worse, still far below warn = 1e-6
    code = main(["nightly", suite, "--run-dir", str(tmp_path / "runs" / "night2"), "--markdown", str(markdown)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in out and "2 regressed" in out and "REGRESSION W" in out
    assert out.count("pass") >= 2  # the verdicts themselves still pass
    md = markdown.read_text()
    assert md.startswith("### fastcheck nightly FAILED") and "| drift | seed0 | pass |" in md
    assert "REGRESSION W" in md

    # the same run resumed reports the same regressions (recorded once)
    assert main(["nightly", suite, "--run-dir", str(tmp_path / "runs" / "night2")]) == 1
    assert "REGRESSION W" in capsys.readouterr().out

    assert main(["history", "drift", "--history", str(history)]) == 0
    table = capsys.readouterr().out
    assert "drift @ seed0: 2 run(s)" in table and "drift @ seed1: 2 run(s)" in table
    assert table.count("REGRESSED W") == 2
    lines = [line for line in table.splitlines() if "pass" in line]
    assert len(lines) == 4
    assert main(["history", "nope", "--history", str(history)]) == 2
    assert "no results for problem 'nope'" in capsys.readouterr().err

    monkeypatch.setenv("NIGHTLY_TEST_GRAD_ERROR", "5e-8")  # compared with the last *passing* run: still flagged
    with History(history) as db:
        row = db.results("drift", "seed0")[-1]
    assert row["regressions"][0].group == "W" and row["regressions"][0].factor > 10


def test_unit_errors_do_not_stop_the_suite(tmp_path, user_module, capsys):
    suite = _suite(tmp_path, "[[problems]]\nname='bad'\nfactory='nightly_user:broken'\n"
                             "[[problems]]\nname='ok'\nfactory='nightly_user:drifting'\n")
    assert main(["nightly", suite, "--run-dir", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "RuntimeError: no data today" in out and "1 error(s)" in out
    assert "ok " in out


def test_training_points_use_the_gradient_under_test(tmp_path):
    suite = parse_suite({"problems": [
        {"name": "good", "layers": [5, 4, 3, 2], "points": [{"seed": 0, "train_steps": 5, "learning_rate": 0.5}]},
        {"name": "bad", "layers": [5, 4, 3, 2], "bug": "scaled",
         "points": [{"seed": 0, "train_steps": 5, "learning_rate": 0.5}]}]})
    good, bad = run_suite(suite, tmp_path / "r")
    assert good.report.passed and not bad.report.passed and bad.report.failing_groups == ["W2"]
    import fastcheck as fc

    net = fc.MLP([5, 4, 3, 2])
    X, Y = net.random_data(32, seed=1)
    params = net.init(seed=0)
    for _ in range(5):
        g = net.gradient(params, X, Y)
        params = {k: v - 0.5 * g["d" + k] for k, v in params.items()}
    ref = net.check(params, net.gradient(params, X, Y), X, Y)
    assert good.report.difference == ref.difference and good.report.groups == ref.groups
    assert bad.point == "seed0+train5-lr0.5"


def test_uninterrupted_matches_check(tmp_path):
    """One chunk or many, the nightly report is the check's report, number for number."""
    import fastcheck as fc

    suite = parse_suite({"problems": [{"name": "n", "layers": [7, 6, 5, 3], "hidden": "relu", "l2": 0.1,
                                       "examples": 12, "points": [{"seed": 3}]}]})
    net = fc.MLP([7, 6, 5, 3], l2=0.1)
    params = net.init(seed=3)
    X, Y = net.random_data(12, seed=1)
    ref = net.check(params, net.gradient(params, X, Y), X, Y)
    for chunk_size in (None, 1, 17):
        [result] = run_suite(suite, tmp_path / f"r{chunk_size}", chunk_size=chunk_size)
        comp = result.report
        assert comp.difference == ref.difference and comp.groups == ref.groups and comp.worst(20) == ref.worst(20)
        assert comp.kinks == ref.kinks
        data = json.loads((tmp_path / f"r{chunk_size}" / "n@seed3.json").read_text())
        assert data["settings"]["nightly"]["problem"] == "n" and len(data["settings"]["nightly"]["key"]) == 64


def test_example_suite_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    markdown = tmp_path / "summary.md"
    code = main(["nightly", str(EXAMPLES / "nightly.toml"), "--run-dir", str(tmp_path / "runs" / "2024-01-01"),
                 "--markdown", str(markdown)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "6 check(s), 6 passed" in out
    assert (tmp_path / "runs" / "history.sqlite").is_file()
    assert markdown.read_text().count("| pass |") == 6
    assert main(["history", "--history", str(tmp_path / "runs" / "history.sqlite")]) == 0
    assert "logistic @ seed1+train10-lr0.5: 1 run(s)" in capsys.readouterr().out


def test_regression_baseline_is_the_last_passing_run(tmp_path, user_module, monkeypatch, capsys):
    suite = _suite(tmp_path, "[[problems]]\nname = 'drift'\nfactory = 'nightly_user:drifting'\n")
    runs = tmp_path / "runs"
    for night, (error, code) in enumerate([("1e-9", 0), ("0.5", 1), ("5e-8", 1)]):
        monkeypatch.setenv("NIGHTLY_TEST_GRAD_ERROR", error)
        assert main(["nightly", suite, "--run-dir", str(runs / f"night{night}")]) == code
    # the third night compares with the first (the last passing run), not with the failing second
    assert re.search(r"REGRESSION W \d\.\de-(09|10) -> 2\.5e-08", capsys.readouterr().out.splitlines()[-1])
    with History(runs / "history.sqlite") as db:
        verdicts = [(r["verdict"], [x.group for x in r["regressions"]]) for r in db.results("drift", "default")]
    assert verdicts == [("pass", []), ("fail", ["W"]), ("pass", ["W"])]


def test_progress_line_and_the_cli(tmp_path, user_module, capsys):
    from fastcheck.apps import cli

    suite = parse_suite({"problems": [{"name": "box", "factory": f"{user_module}:slow", "chunk_size": 7}]})
    run_suite(suite, tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    assert "box@default: 7/30 coordinates (23%), ETA" in err and "box@default: pass, difference" in err
    path = _suite(tmp_path, f"[[problems]]\nname = 'box'\nfactory = '{user_module}:slow'\n")
    assert cli.main(["nightly", path, "--run-dir", str(tmp_path / "r2")]) == 0
    assert "1 check(s), 1 passed" in capsys.readouterr().out
    assert cli.main(["history", "box", "--history", str(tmp_path / "history.sqlite")]) == 0
    assert "box @ default: 2 run(s)" in capsys.readouterr().out


def test_parallel_and_dask_backends_give_the_same_report(tmp_path, user_module):
    pytest.importorskip("fastcheck.engines.blackbox")
    distributed = pytest.importorskip("distributed")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                           dashboard_address=":0")
    try:
        base = {"factory": f"{user_module}:slow", "chunk_size": 9, "engine": "reference"}  # the loop, on workers too
        suite = parse_suite({"problems": [
            {"name": "serial", **base},
            {"name": "loky", "n_jobs": 2, **base},
            {"name": "dask", "n_jobs": 2, "backend": "dask", "scheduler": cluster.scheduler_address, **base}]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            serial, loky, dask = run_suite(suite, tmp_path / "r")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster.close()
    for other in (loky, dask):
        assert other.error is None, other.error
        assert other.report.difference == serial.report.difference
        assert other.report.groups == serial.report.groups
        assert other.report.worst(20) == serial.report.worst(20)


def test_chunks_of_another_configuration_are_never_merged(tmp_path, user_module, capsys):
    suite, run_dir = _interrupted(tmp_path, user_module, limit=2 + _chunk_calls(3))
    assert len(_chunk_files(run_dir)) == 3
    changed = parse_suite({"problems": [{"name": "box", "factory": f"{user_module}:slow", "chunk_size": 4,
                                         "engine": "reference", "eps": 1e-6, "points": [{"seed": 0}]}]})
    capsys.readouterr()
    [result] = run_suite(changed, run_dir)
    assert capsys.readouterr().err.count("key mismatch") == 3
    assert result.status == "run" and result.chunks_reused == 0
    [clean] = run_suite(changed, tmp_path / "runs" / "clean")
    _assert_same_report(result.report, clean.report)


def test_chunks_left_by_a_finished_unit_are_cleared(tmp_path):
    """A kill between writing a unit's report and clearing its chunks leaves chunks behind."""
    suite = nightly.load_suite(_suite(tmp_path, MLP_SUITE))
    run_dir = tmp_path / "runs" / "night"
    run_suite(suite, run_dir, progress=False)
    label = next(iter(_reports(run_dir)))[: -len(".json")]
    stale = run_dir / "chunks" / label / "chunk-0-1.bin"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over")
    results = run_suite(suite, run_dir, progress=False)
    assert all(r.status == "done" for r in results)
    assert not stale.exists()


def test_the_run_directory_gets_an_index_page_linking_every_check(tmp_path, user_module):
    from html.parser import HTMLParser

    suite = parse_suite({"problems": [
        {"name": "good", "layers": [4, 3, 2], "points": [{"seed": 0}]},
        {"name": "bad", "layers": [4, 3, 3, 2], "bug": "scaled", "points": [{"seed": 0}]},
        {"name": "broken", "factory": f"{user_module}:broken"}]})
    run_dir = tmp_path / "runs" / "night"
    run_suite(suite, run_dir, progress=False)
    page = (run_dir / "index.html").read_text()

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.links = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append(dict(attrs).get("class"))
            if tag == "a":
                self.links.append(dict(attrs)["href"])

    parser = Rows()
    parser.feed(page)
    assert parser.links == ["good@seed0.html", "bad@seed0.html"]  # the broken problem has no page
    assert all((run_dir / link).exists() for link in parser.links)
    assert parser.rows == [None, "pass", "fail", "fail"]  # header, then one row per check
    assert "fastcheck nightly FAILED: 3 check(s), 1 passed, 1 failed, 1 error(s)" in page
    assert "no data today" in page  # the broken factory's error


def test_a_user_problem_runs_on_the_traced_engine_unless_it_names_another(tmp_path, user_module):
    def problem(name, **more):
        return {"name": name, "factory": f"{user_module}:drifting", "chunk_size": 7, **more}

    suite = parse_suite({"problems": [problem("default"), problem("loop", engine="reference"),
                                      problem("box", engine="blackbox")]})
    results = run_suite(suite, tmp_path / "r")
    assert [r.report.settings["engine"] for r in results] == ["traced", "reference", "blackbox"]
    assert all(r.report.passed for r in results)
    # resumable all the same: an exhaustive check in chunks merges to the whole
    assert all(r.report.n_checked == 24 for r in results)
    with pytest.raises(nightly.ConfigError, match=r"problems\[0\]\.engine: .*'batched'"):
        parse_suite({"problems": [problem("x", engine="batched")]})


def test_a_suite_takes_the_step_options(tmp_path, user_module):
    base = {"factory": f"{user_module}:drifting", "engine": "reference"}
    suite = parse_suite({"defaults": {"eps": "auto"}, "problems": [
        {"name": "auto", **base}, {"name": "four", "stencil": 4, "eps": 1e-4, **base}]})
    auto, four = run_suite(suite, tmp_path / "r")
    assert auto.report.passed and four.report.passed
    assert auto.report.settings["eps"] == "auto" and four.report.settings["stencil"] == 4
    assert four.report.n_evaluations >= 4 * 24 > auto.report.n_evaluations  # four evaluations per coordinate
    with pytest.raises(nightly.ConfigError, match=r"problems\[0\]\.stencil"):
        parse_suite({"problems": [{"name": "x", "stencil": 3, **base}]})


def test_a_group_that_warns_gets_its_step_sweep_in_the_nightly_report(tmp_path, user_module, monkeypatch):
    monkeypatch.setenv("NIGHTLY_TEST_GRAD_ERROR", "1e-5")  # W warns
    base = {"factory": f"{user_module}:drifting", "chunk_size": 5}
    suite = parse_suite({"problems": [{"name": "swept", **base}, {"name": "unswept", "sweep": False, **base}]})
    swept, unswept = run_suite(suite, tmp_path / "r")
    assert swept.report.verdict == unswept.report.verdict == "warn"
    assert {row.kind for row in swept.report.sweeps} == {"bug"} and swept.report.sweeps[0].label.startswith("W[")
    assert Report.from_json(swept.report_path.read_text()).sweeps == swept.report.sweeps  # on disk too
    assert unswept.report.sweeps == []
