"""fastcheck: is d-theta really the gradient of J(theta)? Fast, exact answers.

>>> import fastcheck as fc
>>> net = fc.MLP([8, 6, 3], hidden="relu", output="softmax", l2=0.1)
>>> params = net.init(seed=0)
>>> X, Y = net.random_data(m=16, seed=1)
>>> net.check(params, net.gradient(params, X, Y), X, Y).passed
True
"""

from .api import Plan, check, check_layer, plan
from .core.finite import DEFAULT_EPS, Bounds, relative_difference
from .core.layout import CastWarning, Group, Layout
from .errors import (
    CostError,
    DtypeError,
    FastcheckError,
    InputError,
    MutationError,
    NondeterministicCostError,
    WorkerError,
)
from .mlp.model import MLP
from .report import DirectionRow, EntryRow, GroupRow, Report
from .testing import assert_gradient, assert_layer, assert_report

__version__ = "0.1.0"

__all__ = [
    "check",
    "check_layer",
    "plan",
    "assert_gradient",
    "assert_layer",
    "assert_report",
    "Plan",
    "MLP",
    "Report",
    "GroupRow",
    "EntryRow",
    "DirectionRow",
    "Layout",
    "Group",
    "Bounds",
    "DEFAULT_EPS",
    "relative_difference",
    "FastcheckError",
    "InputError",
    "DtypeError",
    "CostError",
    "NondeterministicCostError",
    "MutationError",
    "WorkerError",
    "CastWarning",
]
