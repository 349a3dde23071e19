"""fastcheck's own exceptions.

Every error raised for bad input is a subclass of :class:`FastcheckError`, itself a
``ValueError``, so ``except ValueError`` keeps working for callers who do not care
which check failed. Messages name the argument, what was seen, what was expected and
the fix.
"""

__all__ = [
    "FastcheckError",
    "InputError",
    "DtypeError",
    "CostError",
    "NondeterministicCostError",
    "MutationError",
    "WorkerError",
    "CostTimeoutError",
    "ends_run",
    "user_failure",
    "message_of",
    "a_type",
]


class FastcheckError(ValueError):
    """Base class of every error fastcheck raises for bad input or a bad cost."""


class InputError(FastcheckError):
    """Parameters, gradients or settings that do not fit together."""


class DtypeError(InputError, TypeError):
    """An array that is not float64 where float64 is required."""


class CostError(FastcheckError):
    """The cost function raised, or returned something that is not a finite scalar."""


class NondeterministicCostError(CostError):
    """The cost gave two different values at the same parameters."""


class MutationError(CostError):
    """The cost modified the arrays it was given."""


class WorkerError(CostError):
    """A worker process died during a check (killed, crashed in native code, out of memory)."""


class CostTimeoutError(CostError):
    """An evaluation of the cost did not return within the check's ``timeout``."""


def ends_run(exc: BaseException) -> bool:
    """Whether user code ended the run with ``exc``: ``sys.exit`` or a ``BaseException`` of its own.

    A check reports either as the cost (or factory) failing, never as a pass. Ctrl-C
    (``KeyboardInterrupt``), ``GeneratorExit`` and fastcheck's own signals (a time limit, a
    SIGTERM) pass through.
    """
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)) or isinstance(exc, Exception):
        return False
    return not type(exc).__module__.startswith("fastcheck.")


def user_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is user code failing: an ``Exception``, or user code ending the run (:func:`ends_run`)."""
    return isinstance(exc, Exception) or ends_run(exc)


def message_of(exc: BaseException) -> str:
    """``': <the message>'`` of ``exc`` for the end of a sentence, or ``' (with no message)'``."""
    text = str(exc)
    return f": {text}" if text.strip() else " (with no message)"


def a_type(value) -> str:
    """``'an int'``, ``'a dict'``: the type of ``value`` with its article, for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
