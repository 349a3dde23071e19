"""numba's options for every kernel of the package, in one place.

Central differences live on exact cancellation, so ``fastmath`` stays off; ``cache``
keeps compiled kernels on disk between runs. This module does not import numba: the
kernel modules do, and only they are imported lazily.
"""

JIT_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}
