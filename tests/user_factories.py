"""Factories of user problems that misbehave, for the tests of the command line and nightly
(copied beside each test as a module of the user's: never imported from here)."""

import sys

import numpy as np


def good(seed=0):
    x = np.arange(4.0) + 1 + seed
    return (lambda t: float(0.5 * np.sum(t ** 2))), x, x.copy()


def bad(seed=0):
    x = np.arange(4.0) + 1
    return (lambda t: float(0.5 * np.sum(t ** 2))), x, 2 * x


def exits(seed=0):
    sys.exit(0)


def no_seed():
    return good()


def cost_exits(seed=0):
    x = np.arange(4.0) + 1
    calls = {"n": 0}

    def cost(t):
        calls["n"] += 1
        if calls["n"] > 3:  # after the checks of the input: while the coordinates are evaluated
            sys.exit(0)
        return float(0.5 * np.sum(t ** 2))

    return cost, x, x.copy()


def grads_exit(seed=0):
    x = np.arange(4.0) + 1

    def grads(t):  # the gradient under test, called by the training of a point
        sys.exit(0)

    return (lambda t: float(0.5 * np.sum(t ** 2))), x, grads


def interrupted(seed=0):
    x = np.arange(4.0) + 1
    calls = {"n": 0}

    def cost(t):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return float(0.5 * np.sum(t ** 2))

    return cost, x, x.copy()


class Ended(BaseException):
    """A user's own BaseException (not an Exception): it ends a program as sys.exit does."""


def cost_base_exception(seed=0):
    def cost(t):
        raise Ended("weird")

    return cost, np.arange(4.0) + 1, np.arange(4.0) + 1


def cost_base_exception_later(seed=0):
    x = np.arange(4.0) + 1
    calls = {"n": 0}

    def cost(t):
        calls["n"] += 1
        if calls["n"] > 3:  # while the coordinates are evaluated
            raise Ended()
        return float(0.5 * np.sum(t ** 2))

    return cost, x, x.copy()


def factory_base_exception(seed=0):
    raise Ended("no data")


def float32(seed=0):
    x = np.arange(4.0, dtype=np.float32) + 1
    return (lambda t: float(0.5 * np.sum(np.asarray(t, dtype=np.float64) ** 2))), x, x.copy()
