"""``python -m fastcheck.apps.bench``: the same as ``fastcheck bench``."""

import sys

from .command import main

sys.exit(main())
