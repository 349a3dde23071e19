"""Gradient checks as assertions, for a project's own test suite.

>>> import numpy as np, fastcheck as fc
>>> x = np.array([1.0, -2.0, 3.0])
>>> report = fc.assert_gradient(lambda theta: float(theta @ x), np.zeros(3), x.copy())
>>> fc.assert_gradient(lambda theta: float(theta @ x), np.zeros(3), 2 * x)
Traceback (most recent call last):
...
AssertionError: gradient check FAILED: difference 3.33e-01 ...
"""

from __future__ import annotations

from .api import check, check_layer
from .report import Report

__all__ = ["assert_gradient", "assert_layer", "assert_report"]


def assert_report(report: Report, *, strict: bool = False) -> Report:
    """Raise ``AssertionError`` with the report's text unless it passed.

    Parameters
    ----------
    report : Report
    strict : bool
        Also fail on ``"warn"`` (a difference between the warn and fail bounds), not
        only on ``"fail"``.

    Returns
    -------
    Report
        The same report, for further assertions.
    """
    __tracebackhide__ = True  # pytest shows the assertion, not this frame
    bad = not report.passed or (strict and report.verdict == "warn")
    if bad:
        raise AssertionError(str(report))
    return report


def assert_gradient(cost, params, grads, *, strict: bool = False, **options) -> Report:
    """:func:`fastcheck.check`, raising ``AssertionError`` (with the report) unless it passes.

    Parameters
    ----------
    cost, params, grads
        As for :func:`fastcheck.check`.
    strict : bool
        Also fail on a ``"warn"`` verdict.
    **options
        Any option of :func:`fastcheck.check` (``mode``, ``eps``, ``n_jobs``, ...).

    Returns
    -------
    Report
        The passing report.

    Raises
    ------
    AssertionError
        The check did not pass; the message is the full report: the verdict, the
        difference of every group, the worst entries and the diagnoses.
    FastcheckError
        Bad input, as for :func:`fastcheck.check` (a ``ValueError``, not an assertion:
        a broken test set-up is not a wrong gradient).

    Examples
    --------
    In a pytest test of a hand-written backprop::

        def test_backprop():
            fc.assert_gradient(cost, params, my_backprop(params))
    """
    __tracebackhide__ = True
    return assert_report(check(cost, params, grads, **options), strict=strict)


def assert_layer(forward, inputs, grads=None, *, strict: bool = False, **options) -> Report:
    """:func:`fastcheck.check_layer`, raising ``AssertionError`` (with the report) unless it passes.

    ``backward=``, ``dout=``, ``seed=`` and every option of :func:`fastcheck.check` are
    accepted as there; ``strict`` also fails on a ``"warn"`` verdict.
    """
    __tracebackhide__ = True
    return assert_report(check_layer(forward, inputs, grads, **options), strict=strict)
