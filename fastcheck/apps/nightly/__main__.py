"""``python -m fastcheck.apps.nightly nightly|history ...``: the same as ``fastcheck nightly|history``."""

import sys

from .command import main

if __name__ == "__main__":  # imported (by doctest's walk of the package, say), it does nothing
    sys.exit(main())
