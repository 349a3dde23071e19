"""examples/layers_and_layouts.py runs as a user runs it, and the README shows what it prints."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECONDS = re.compile(r"evaluations, [\d.e+-]+ s$", re.M)


def test_the_example_runs_and_the_readme_shows_its_output():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "layers_and_layouts.py")],
                            capture_output=True, text=True, check=True)
    printed = SECONDS.sub("evaluations, T s", result.stdout)
    assert "b: the analytic gradient is 0.25 times the numeric one" in printed
    assert "gradient keys left aside, not parameters: dZ2, dA1, dZ1" in printed
    assert printed.rstrip().endswith("pass")
    readme = (ROOT / "README.md").read_text()
    for block in (readme.split("### Layer checks, CS231n style")[1].split("```")[1],
                  readme.split("### Your gradients as they come")[1].split("```")[1]):
        assert SECONDS.sub("evaluations, T s", block.strip()) in printed
