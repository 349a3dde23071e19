"""``python -m fastcheck.apps.bench``: the same as ``fastcheck bench``."""

import sys

from .command import main

if __name__ == "__main__":  # imported (by doctest's walk of the package, say), it does nothing
    sys.exit(main())
