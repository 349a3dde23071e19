"""examples/layers_and_layouts.py runs as a user runs it, and the README shows what it prints."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECONDS = re.compile(r"(evaluations|from the trace|from the base pass), [\d.e+-]+ s$", re.M)
#: Rounding-level numbers (the noise of a correct gradient) may differ by platform and BLAS.
NUMBER = re.compile(r"-?\d\.\d+e[+-]\d+")


def normal(text: str) -> str:
    """The text with times and numbers masked, and without the worst-entries table (its rounding-level
    rows may come in another order on another machine)."""
    kept, table = [], False
    for line in text.splitlines():
        if line.startswith("worst entries:"):
            table = True
            continue
        if table and not line.strip():
            table = False
        if not table:
            kept.append(line)
    return NUMBER.sub("N", SECONDS.sub(r"\1, T s", "\n".join(kept)))


def test_the_example_runs_and_the_readme_shows_its_output():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "layers_and_layouts.py")],
                            capture_output=True, text=True, check=True)
    printed = normal(result.stdout)
    assert "b: the analytic gradient is 0.25 times the numeric one (= 1/4)" in printed
    assert "divided by 4 once too often" in printed
    assert "gradient keys left aside, not parameters: dZ2, dA1, dZ1" in printed
    assert printed.rstrip().endswith("pass")
    readme = (ROOT / "README.md").read_text()
    for block in (readme.split("### Layer checks, CS231n style")[1].split("```")[1],
                  readme.split("### Your gradients as they come")[1].split("```")[1]):
        assert normal(block.strip()) in printed
