"""fastcheck nightly when things go wrong around the checks: user code that exits or is
interrupted, outputs that cannot be written, a planted lock, edited reports, a lost run.json."""

import errno
import json
import pathlib
import sqlite3
import sys
from pathlib import Path

import pytest

from fastcheck.apps.nightly import ConfigError, main, parse_suite
from fastcheck.apps.nightly import run as nightly_run
from fastcheck.apps.nightly.history import History

USER = (Path(__file__).with_name("user_factories.py")).read_text()


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A module ``hardening_user`` of factories, importable; the tests run in ``tmp_path``."""
    (tmp_path / "hardening_user.py").write_text(USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("hardening_user", None)
    yield tmp_path
    sys.modules.pop("hardening_user", None)


def _suite(path, *factories):
    path.write_text("".join(f'[[problems]]\nname = "{name}"\nfactory = "hardening_user:{name}"\n'
                            for name in factories))
    return str(path)


def _lines(text):
    return [line for line in text.splitlines() if line]


# ---------------------------------------------------------------- user code ending the run
def test_a_factory_exit_after_a_failure_is_an_error_not_a_success(user, capsys):
    assert main(["nightly", _suite(user / "s.toml", "bad", "exits", "good"), "--run-dir", "night"]) == 1
    out = capsys.readouterr().out
    assert "3 check(s), 1 passed, 1 failed, 1 error(s)" in out
    assert "hardening_user:exits exited SystemExit: 0" in out
    assert (user / "night" / "index.html").is_file()


def test_a_cost_calling_sys_exit_is_an_error_of_its_check(user, capsys):
    assert main(["nightly", _suite(user / "s.toml", "good", "cost_exits", "bad"), "--run-dir", "night"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("fastcheck nightly FAILED: 3 check(s), 1 passed, 1 failed, 1 error(s)")
    assert (user / "night" / "index.html").is_file()


def test_user_code_exiting_elsewhere_ends_the_run_with_its_summary(user, capsys):
    (user / "s.toml").write_text('[[problems]]\nname = "good"\nfactory = "hardening_user:good"\n'
                                 '[[problems]]\nname = "g"\nfactory = "hardening_user:grads_exit"\n'
                                 'points = [{train_steps = 2}]\n'
                                 '[[problems]]\nname = "bad"\nfactory = "hardening_user:bad"\n')
    assert main(["nightly", str(user / "s.toml"), "--run-dir", "night"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("fastcheck nightly FAILED: 3 check(s), 1 passed, 0 failed, 2 error(s)")
    assert "sys.exit(0): the run ended here" in out and "not run: the run ended before it" in out
    index = (user / "night" / "index.html").read_text()
    assert "good@default" in index and "bad@default" in index


def test_ctrl_c_in_a_cost_exits_130_with_the_summary(user, capsys):
    assert main(["nightly", _suite(user / "s.toml", "good", "interrupted"), "--run-dir", "night"]) == 130
    out = capsys.readouterr().out
    assert "interrupted (Ctrl-C)" in out and out.startswith("fastcheck nightly FAILED: 2 check(s), 1 passed")
    assert (user / "night" / "index.html").is_file()


def test_a_factory_without_seed_is_named(user, capsys):
    (user / "s.toml").write_text('[[problems]]\nname = "n"\nfactory = "hardening_user:no_seed"\n'
                                 'points = [{seed = 3}]\n')
    assert main(["nightly", str(user / "s.toml"), "--run-dir", "night"]) == 1
    assert "hardening_user:no_seed does not take a `seed` keyword" in capsys.readouterr().out


# ---------------------------------------------------------------- outputs that cannot be written
def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_index_html_still_prints_the_summary_and_writes_markdown(user, monkeypatch, capsys):
    real = nightly_run.write_atomic
    monkeypatch.setattr(nightly_run, "write_atomic",
                        lambda path, data, **kw: _enospc() if path.name == "index.html" else real(path, data, **kw))
    code = main(["nightly", _suite(user / "s.toml", "good"), "--run-dir", "night", "--markdown", "sum.md"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.startswith("fastcheck nightly FAILED: 1 check(s), 1 passed, 0 failed, 0 error(s), "
                                   "0 regressed, 1 output(s) not written")
    [line] = _lines(captured.err)
    assert "index.html" in line and "No space left on device" in line
    assert (user / "sum.md").is_file() and (user / "night" / "good@default.json").is_file()
    assert not list((user / "night").glob(".*.tmp"))


def test_a_full_disk_at_markdown_still_writes_index_html(user, monkeypatch, capsys):
    real = pathlib.Path.write_text
    monkeypatch.setattr(pathlib.Path, "write_text",
                        lambda self, *a, **kw: _enospc() if self.name == "sum.md" else real(self, *a, **kw))
    code = main(["nightly", _suite(user / "s.toml", "good"), "--run-dir", "night", "--markdown", "sum.md"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.startswith("fastcheck nightly FAILED")
    [line] = _lines(captured.err)
    assert "--markdown" in line and "No space left on device" in line
    assert (user / "night" / "index.html").is_file()


def test_a_read_only_history_is_reported_and_the_checks_run_on(user, monkeypatch, capsys):
    def read_only(self, **_row):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(History, "record", read_only)
    assert main(["nightly", _suite(user / "s.toml", "good", "bad"), "--run-dir", "night"]) == 1
    captured = capsys.readouterr()
    [line] = _lines(captured.err)
    assert "not written (attempt to write a readonly database)" in line
    assert "2 check(s), 1 passed, 1 failed" in captured.out  # the second check ran all the same


# ---------------------------------------------------------------- security and hygiene
def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(user, capsys):
    victim = user / "precious.txt"
    victim.write_text("do not truncate me")
    (user / "night").mkdir()
    (user / "night" / ".lock").symlink_to(victim)
    assert main(["nightly", _suite(user / "s.toml", "good"), "--run-dir", "night"]) == 2
    [line] = _lines(capsys.readouterr().err)
    assert "lock file" in line and "symlink" in line
    assert victim.read_text() == "do not truncate me"


def test_a_lock_that_is_not_a_regular_file_is_refused(user, capsys):
    (user / "night" / ".lock").mkdir(parents=True)
    assert main(["nightly", _suite(user / "s.toml", "good"), "--run-dir", "night"]) == 2
    assert "lock file" in capsys.readouterr().err


def test_a_rejected_suite_runs_none_of_its_factory_modules(user):
    (user / "marker_mod.py").write_text("open('IMPORTED', 'w').close()\ndef f():\n    pass\n")
    with pytest.raises(ConfigError, match=r"problems\[1\]\.layers"):
        parse_suite({"problems": [{"name": "a", "factory": "marker_mod:f"},
                                  {"name": "b", "layers": "not a list"}]})
    assert not (user / "IMPORTED").exists()
    parse_suite({"problems": [{"name": "a", "factory": "marker_mod:f"}]})  # a valid suite imports it
    assert (user / "IMPORTED").exists()
    sys.modules.pop("marker_mod", None)


def test_an_edited_finished_report_is_recomputed(user, capsys):
    suite = _suite(user / "s.toml", "bad")
    assert main(["nightly", suite, "--run-dir", "night"]) == 1
    path = user / "night" / "bad@default.json"
    original = json.loads(path.read_text())
    edited = {**original, "verdict": "pass", "difference": 0.0}
    path.write_text(json.dumps(edited))
    capsys.readouterr()
    assert main(["nightly", suite, "--run-dir", "night"]) == 1  # not the edited "pass"
    captured = capsys.readouterr()
    assert "does not match its checksum" in captured.err
    assert json.loads(path.read_text())["difference"] == original["difference"]


def test_a_lost_run_json_does_not_record_a_unit_twice(user, capsys):
    suite = _suite(user / "s.toml", "good", "bad")
    main(["nightly", suite, "--run-dir", "runs/night"])
    (user / "runs" / "night" / "run.json").unlink()
    main(["nightly", suite, "--run-dir", "runs/night"])
    with History(user / "runs" / "history.sqlite", create=False) as db:
        for problem, point in db.units():
            assert len(db.results(problem, point)) == 1
