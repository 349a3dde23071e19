"""Problems for ``fastcheck check MODULE:FUNCTION``: factories returning ``(cost, params, grads)``.

    PYTHONPATH=examples fastcheck check problems:course_mlp --dry-run
    PYTHONPATH=examples fastcheck check problems:least_squares --dry-run
"""

import numpy as np


def least_squares(seed=0, n=6):
    """J(w) = ||A^-1 (w - b)||^2 / 2 through np.linalg.solve, which the traced engine does not follow."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    b = rng.standard_normal(n)
    params = {"w": rng.standard_normal(n)}

    def cost(p):
        r = np.linalg.solve(A, p["w"] - b)
        return float(0.5 * r @ r)

    def grads(p):
        r = np.linalg.solve(A, p["w"] - b)
        return {"w": np.linalg.solve(A.T, r)}

    return cost, params, grads(params)


def course_mlp(seed=0):
    """The course's 784-120-40-1 network of ``user_course_mlp.py`` (99,081 parameters), its own backprop."""
    import user_course_mlp as course

    params = course.initialize_parameters_deep(course.LAYER_DIMS, seed=seed)
    AL, caches = course.L_model_forward(course.X, params)
    return course.cost, params, course.L_model_backward(AL, course.Y, caches, course.LAMBD)
