"""Bad invocations of the command line: exit code 2 (1 for a check that failed or could not
run), at most one line on stderr (exactly one for exit 2), never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = {
    "mods.py": (Path(__file__).with_name("user_factories.py")).read_text(),
    "syntax_error.py": "def f(:\n",
    "raises_at_import.py": "raise RuntimeError('no data today')\n",
    "exits_at_import.py": "import sys\nsys.exit(0)\n",
}

SUITES = {
    "good.toml": '[[problems]]\nname = "g"\nfactory = "mods:good"\n',
    "syntax.toml": '[[problems]]\nname = "s"\nfactory = "syntax_error:f"\n',
    "raises.toml": '[[problems]]\nname = "s"\nfactory = "raises_at_import:f"\n',
    "exits_at_import.toml": '[[problems]]\nname = "s"\nfactory = "exits_at_import:f"\n',
    # a problem FAILED first, then a factory calls sys.exit(0): never green
    "fail_then_exit.toml": '[[problems]]\nname = "b"\nfactory = "mods:bad"\n'
                           '[[problems]]\nname = "e"\nfactory = "mods:exits"\n',
}

GIB = 2 ** 30


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory holding the user modules, the suites and the bad paths of the table."""
    d = tmp_path_factory.mktemp("cli")
    for name, text in {**MODULES, **SUITES}.items():
        (d / name).write_text(text)
    (d / "latin1.toml").write_bytes('[[problems]]\nname = "caf\xe9"\n'.encode("latin-1"))
    (d / "a_file").write_text("not a directory")
    (d / "a_dir").mkdir()
    (d / "garbage.sqlite").write_bytes(b"this is not an SQLite file" * 10)
    # a valid history corrupted in its middle: the first record fails after the header reads fine
    subprocess.run(_cli("nightly", "good.toml", "--run-dir", "seed_run", "--history", "corrupt.sqlite"),
                   cwd=d, capture_output=True, check=True, env=_env())
    data = bytearray((d / "corrupt.sqlite").read_bytes())
    data[4096:8192] = b"\xab" * 4096
    (d / "corrupt.sqlite").write_bytes(bytes(data))
    return d


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _cli(*argv):
    return [sys.executable, "-m", "fastcheck.apps.cli", *argv]


def _limit_memory(nbytes):
    def set_limit():  # in the child only: the test process keeps its own limit
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return set_limit


def _dask():
    return pytest.mark.skipif(not _has("distributed"), reason="needs distributed")


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


CASES = [
    pytest.param(["check", "--layers", "4,3,2", "--params-seed", "-5"], 2, "--params-seed", None, id="negative-seed"),
    pytest.param(["check", "--layers", "30000,30000,10"], 2, "parameters need", 3 * GIB, id="too-big-under-rlimit"),
    pytest.param(["check", "mods:good", "--scheduler", "notanaddress"], 2, "cannot reach a Dask scheduler", None,
                 id="scheduler-not-an-address", marks=_dask()),
    pytest.param(["check", "mods:good", "--scheduler", "tcp://127.0.0.1:1"], 2, "cannot reach a Dask scheduler",
                 None, id="scheduler-unreachable", marks=_dask()),
    pytest.param(["check", "syntax_error:f"], 2, "SyntaxError", None, id="check-syntax-error"),
    pytest.param(["check", "raises_at_import:f"], 2, "RuntimeError", None, id="check-raises-at-import"),
    pytest.param(["check", "mods:exits"], 2, "exited SystemExit", None, id="check-factory-exits"),
    # a BaseException of the user's own ends the run as sys.exit does: one line, never a pass
    pytest.param(["check", "mods:cost_base_exception"], 2, "the cost raised Ended at the unperturbed parameters: "
                 "weird", None, id="cost-raises-base-exception"),
    pytest.param(["check", "mods:cost_base_exception_later", "--engine", "reference"], 2,
                 "raised Ended at theta[0] - eps (with no message)", None, id="cost-raises-base-exception-later"),
    pytest.param(["check", "mods:grads_exit"], 2, "user code called sys.exit(0): the run ended here", None,
                 id="grads-exit"),
    pytest.param(["check", "mods:float32"], 2, "(on the command line: --cast)", None, id="float32-names-cast"),
    pytest.param(["check", "mods:float32", "--cast"], 0, "fastcheck: warning: up-cast", None, id="float32-cast"),
    pytest.param(["check", "mods:factory_base_exception"], 2, "raised Ended: no data", None,
                 id="factory-raises-base-exception"),
    pytest.param(["nightly", "latin1.toml", "--run-dir", "r"], 2, "not UTF-8", None, id="suite-not-utf8"),
    pytest.param(["nightly", "good.toml", "--run-dir", "a_file"], 2, "is not a directory", None,
                 id="run-dir-is-a-file"),
    pytest.param(["nightly", "good.toml", "--run-dir", "a_file/night"], 2, "cannot be created", None,
                 id="run-dir-cannot-be-created"),
    pytest.param(["nightly", "good.toml", "--run-dir", "r", "--markdown", "missing/x.md"], 2, "does not exist",
                 None, id="markdown-missing-dir"),
    pytest.param(["nightly", "syntax.toml", "--run-dir", "r"], 2, "SyntaxError", None, id="nightly-syntax-error"),
    pytest.param(["nightly", "raises.toml", "--run-dir", "r"], 2, "RuntimeError", None,
                 id="nightly-raises-at-import"),
    pytest.param(["nightly", "exits_at_import.toml", "--run-dir", "r"], 2, "SystemExit", None,
                 id="nightly-module-exits-at-import"),
    # the checks run, the history is reported as not written: never a silent success
    pytest.param(["nightly", "good.toml", "--run-dir", "r_garbage", "--history", "garbage.sqlite"], 1,
                 "not written", None, id="history-not-a-database"),
    pytest.param(["nightly", "good.toml", "--run-dir", "r_corrupt", "--history", "corrupt.sqlite"], 1,
                 "not written", None, id="history-corrupt-mid-file"),
    pytest.param(["nightly", "good.toml", "--run-dir", "r_dir", "--history", "a_dir"], 1, "not written", None,
                 id="history-is-a-directory"),
    pytest.param(["nightly", "fail_then_exit.toml", "--run-dir", "r_exit"], 1, None, None,
                 id="nightly-factory-exits-after-a-failure"),
]


@pytest.mark.parametrize(("argv", "code", "message", "memory"), CASES)
def test_bad_invocation_is_one_line_never_a_traceback(workdir, argv, code, message, memory):
    result = subprocess.run(_cli(*argv), cwd=workdir, capture_output=True, text=True, timeout=120, env=_env(),
                            preexec_fn=_limit_memory(memory) if memory else None)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("fastcheck: warning: ")]
    assert len(lines) == 1 if code == 2 else len(lines) <= 1, result.stderr
    if message is not None:
        assert message in result.stderr
    if argv[0] == "nightly" and code == 1:  # the summary of what finished is printed
        assert result.stdout.startswith("fastcheck nightly FAILED")


def test_a_factory_exiting_after_a_failure_keeps_the_summary_and_index(workdir):
    result = subprocess.run(_cli("nightly", "fail_then_exit.toml", "--run-dir", "r_exit2"), cwd=workdir,
                            capture_output=True, text=True, timeout=120, env=_env())
    assert result.returncode == 1
    assert "1 failed, 1 error(s)" in result.stdout and "mods:exits exited SystemExit: 0" in result.stdout
    assert (Path(workdir) / "r_exit2" / "index.html").is_file()
    assert (Path(workdir) / "r_exit2" / "b@default.json").is_file()


# ---------------------------------------------------------------------- stdout that cannot be written
def _closed_pipe_run(workdir, argv):
    """Run the CLI with stdout a pipe whose reader left at once (as `| true` or `| head` do)."""
    with subprocess.Popen(_cli(*argv), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=_env()) as process:
        process.stdout.close()
        stderr = process.stderr.read().decode()
        return process.wait(timeout=120), stderr


@pytest.mark.parametrize(("problem", "code"), [("mods:bad", 1), ("mods:good", 0)])
def test_a_closed_stdout_keeps_the_verdict_and_the_files(workdir, problem, code):
    json_path = Path(workdir) / f"closed_{code}.json"
    returncode, stderr = _closed_pipe_run(workdir, ["check", problem, "--json", json_path.name])
    assert returncode == code, stderr
    assert "Traceback" not in stderr and stderr == ""  # a reader leaving is no error of ours
    assert json_path.is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(("argv", "code"), [
    (["check", "mods:bad"], 1),
    (["check", "mods:good"], 0),
    (["nightly", "fail_then_exit.toml", "--run-dir", "r_full"], 1),
])
def test_a_full_stdout_is_one_line_and_the_verdict(workdir, argv, code):
    with open("/dev/full", "w") as full:
        result = subprocess.run(_cli(*argv), cwd=workdir, stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=120, env=_env())
    assert "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr
    assert result.stderr.splitlines()[-1].startswith("fastcheck: error: cannot write to stdout")
