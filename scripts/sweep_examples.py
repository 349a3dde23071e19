"""Print the README's "The step sweep" examples: three checks that warn, and what the sweep says.

    python scripts/sweep_examples.py

The problems are the purpose-built ones of the tests (``tests/sweep_problems.py``): a small
tanh network whose backprop has one entry 0.1% off, the same network's right gradient under a
cost carrying a large constant, and under a sharp activation checked at eps = 1e-3. Each case
prints its report's verdict line and its step sweep (the first sentences, the rest counted).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the purpose-built problems

import sweep_problems as sp  # noqa: E402

import fastcheck as fc  # noqa: E402

CASES = {"one_entry_off": "dW2[3, 7] 0.1% too large: W2 warns, no entry is wrong enough to fail it",
         "large_constant": "the right gradient, the cost carrying a constant of 1e4",
         "sharp_curvature": "the right gradient of a sharp activation, tanh(10 z), checked at eps = 1e-3"}
#: Sentences shown per case (the rest are counted by kind).
SHOWN = 3


def main() -> int:
    for name, title in CASES.items():
        report = fc.check(*getattr(sp, name)(), eps=sp.EPS[name])
        lines = str(report).splitlines()
        start = next(k for k, line in enumerate(lines) if line.startswith("step sweep"))
        end = next((k for k in range(start + 1, len(lines)) if not lines[k].startswith("  ")), len(lines))
        print(f"# {title}")
        print(lines[0])
        shown = lines[start:min(end, start + 1 + SHOWN)]
        print("\n".join(shown))
        rest = report.sweeps[SHOWN:]
        if rest:
            counts = Counter(row.kind for row in rest)
            print(f"  ... and {len(rest)} more: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
