"""The README's command-line examples on ``examples/`` run as written and print what it shows."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: Times and rates (how long, on this machine) are the only part of a plan that may differ.
TIME = re.compile(r"\d[\d.]*(?:e[+-]\d+)? (?:s|ms|us)\b")


def fastcheck(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples"))
    return subprocess.run([sys.executable, "-m", "fastcheck.apps.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def readme_commands():
    """(command, output) of the dry-run block: lines after ``$ PYTHONPATH=examples fastcheck``."""
    block = README.split("plan as in a check:")[1].split("```text\n")[1].split("```")[0]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    return [(lines[i].split("fastcheck ", 1)[1].split(), lines[i + 1]) for i in range(0, len(lines), 2)]


@pytest.mark.parametrize("command, shown", readme_commands(), ids=lambda v: v[1] if isinstance(v, list) else "")
def test_the_readme_dry_runs_print_what_it_shows(command, shown):
    done = fastcheck(*command)
    assert done.returncode == 0, done.stderr
    assert TIME.sub("T", done.stdout.strip()) == TIME.sub("T", shown)


def test_the_least_squares_problem_has_the_right_gradient():
    done = fastcheck("check", "problems:least_squares", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reference engine" in fastcheck("check", "problems:least_squares").stdout


def test_the_readme_shows_the_nightly_suite_as_it_is():
    shown = README.split("`examples/nightly.toml`, as it is:")[1].split("```toml\n")[1].split("```")[0]
    assert shown == (ROOT / "examples" / "nightly.toml").read_text()
