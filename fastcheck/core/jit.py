"""numba's options for every kernel of the package, in one place.

Central differences live on exact cancellation, so ``fastmath`` stays off; ``cache``
keeps compiled kernels on disk between runs. Kernels are serial and ``nogil``; their
callers run ranges of independent tasks on threads (:func:`fastcheck.core.threads.in_chunks`)
rather than ``parallel=True``: a parallel kernel is compiled and optimised again inside its
gufunc and the gufunc's two wrappers, which made the first run after an install (a fresh
numba cache) about a third slower. This module does not import numba: the kernel modules
do, and only they are imported lazily.
"""

JIT_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}
