"""A time limit on each evaluation of a user's cost: the ``timeout`` of a check.

A cost that never returns (a deadlock, an endless loop, a network call that hangs) would
hang the check with it. While a :func:`time_limits` block is active, every evaluation under
:func:`time_limit` is watched by one thread of this process, which interrupts an
evaluation that overruns its limit:

- in the main thread, by a signal (SIGALRM): that also ends a ``time.sleep`` or a wait on
  a lock, and the previous handler is restored when the block ends;
- in another thread (joblib's threading backend, a Dask worker's threads), by an exception
  set asynchronously, which ends Python code at its next bytecode (not a sleep);
- code stuck in native code hears neither. In a worker process (a ``stuck_file`` was
  given), the watchdog then writes why into that file and ends the process, which its
  parent reports as a dead worker, naming the evaluation from the file.

The evaluation then raises :class:`~fastcheck.errors.CostTimeoutError` naming the point.
The limits are off by default; without them nothing here runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass

from ..errors import CostTimeoutError

__all__ = ["time_limits", "time_limit", "GRACE_SECONDS"]

#: After interrupting an overrunning evaluation, the watchdog waits this long (or the
#: limit, if longer) before it ends a worker process that is stuck in native code.
GRACE_SECONDS = 2.0
#: How often the watchdog looks at the clock.
POLL_SECONDS = 0.02


class _Overrun(BaseException):
    """Raised inside a cost that overran its limit: a BaseException, so the cost's own ``except Exception``
    does not swallow it."""


@dataclass
class _Slot:
    """One evaluation under a limit, in one thread."""

    seconds: float
    deadline: float
    where: str
    who: str
    stuck_file: str | None
    fired: float | None = None  # when it was first interrupted
    last: float = 0.0  # when it was last interrupted
    done: bool = False  # returned (or raised): interrupt it no more

    def message(self) -> str:
        return (f"{self.who} did not return within {self.seconds:g} s (`timeout`) {self.where}; a cost that "
                "hangs (a deadlock, an endless loop, a call that never answers) cannot be checked")


_lock = threading.Lock()
_slots: dict[int, _Slot] = {}  # thread ident -> the evaluation it is running
_stuck_files: dict[int, str | None] = {}  # thread ident (inside a block) -> its worker process's stuck file
_blocks = 0
_stop: threading.Event | None = None


def _reset_in_child() -> None:  # a forked process has none of its parent's threads, the watchdog included
    global _lock, _slots, _stuck_files, _blocks, _stop
    _lock, _slots, _stuck_files, _blocks, _stop = threading.Lock(), {}, {}, 0, None


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_in_child)
#: Where there is no SIGALRM (Windows), the main thread is interrupted as the others are.
_ALARM = getattr(signal, "SIGALRM", None)


def _main() -> int | None:
    """The main thread's ident, where a signal can interrupt it; else None."""
    return threading.main_thread().ident if _ALARM is not None else None


def _set_async(ident: int, exc) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode (None: drop one pending)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)


def _end_process(slot: _Slot) -> None:
    """A worker process whose cost is stuck in native code: say why, then end it (its parent reports it)."""
    with contextlib.suppress(OSError), open(slot.stuck_file, "w") as f:
        f.write(slot.message() + "; it was stuck in native code, and its worker process was ended")
    os._exit(70)


def _watch(stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        now = time.monotonic()
        with _lock:
            for ident, slot in _slots.items():
                if slot.done or now < slot.deadline:
                    continue
                if now - slot.last > 0.5:  # the first time, and again: the cost may have caught it
                    slot.fired, slot.last = slot.fired or now, now
                    if ident == _main():
                        signal.pthread_kill(ident, _ALARM)
                    else:
                        _set_async(ident, _Overrun)
                if slot.stuck_file and now - slot.deadline > max(GRACE_SECONDS, slot.seconds):
                    _end_process(slot)


def _on_alarm(signum, frame, previous):
    slot = _slots.get(_main())
    if slot is not None and slot.fired is not None and not slot.done:
        raise _Overrun
    if callable(previous):  # not ours: the program's own alarm
        previous(signum, frame)


@contextlib.contextmanager
def time_limits(seconds: float | None, stuck_file: str | None = None):
    """A block in which :func:`time_limit` watches evaluations (nothing happens when ``seconds`` is None).

    Parameters
    ----------
    seconds : float or None
        The limit the block's evaluations take (only whether it is None matters here).
    stuck_file : str, optional
        Only in a worker process (never the caller's: the process is ended): the file in
        which to say why, when an evaluation in this thread is stuck in native code.
    """
    global _blocks, _stop
    if seconds is None:
        yield
        return
    ident = threading.get_ident()
    in_main = ident == _main()
    if in_main:
        previous = signal.getsignal(_ALARM)
        signal.signal(_ALARM, lambda s, f: _on_alarm(s, f, previous))
    outer = _stuck_files.get(ident, _MISSING)
    with _lock:
        _stuck_files[ident] = stuck_file or (None if outer is _MISSING else outer)
        _blocks += 1
        if _stop is None:
            _stop = threading.Event()
            threading.Thread(target=_watch, args=(_stop,), name="fastcheck-timeout", daemon=True).start()
    try:
        yield
    finally:
        with _lock:
            _blocks -= 1
            if outer is _MISSING:
                del _stuck_files[ident]
            else:
                _stuck_files[ident] = outer
            if _blocks == 0:
                _stop.set()
                _stop = None
        if in_main:
            signal.signal(_ALARM, previous)


_MISSING = object()


@contextlib.contextmanager
def time_limit(seconds: float | None, where: str, who: str = "the cost"):
    """One evaluation that must end within ``seconds`` (None: no limit).

    ``who`` did not return ``where``: ``"at W1[2, 3] + eps"``, ``"on a stack of ..."``.

    Raises :class:`~fastcheck.errors.CostTimeoutError` when it does not. Outside a
    :func:`time_limits` block, the evaluation opens one of its own (slower: for the odd
    evaluation outside an engine's loop).
    """
    if seconds is None:
        yield
        return
    ident = threading.get_ident()
    if ident not in _stuck_files:
        with time_limits(seconds), time_limit(seconds, where, who):
            yield
        return
    slot = _Slot(seconds, time.monotonic() + seconds, where, who, _stuck_files[ident])
    with _lock:
        outer = _slots.get(ident)  # an evaluation inside another one's limit: the outer one resumes after
        _slots[ident] = slot
    overrun = False
    try:
        yield
    except _Overrun:
        overrun = True
    finally:
        while True:  # an interruption that comes a moment too late must not escape, nor leave the slot armed
            try:
                slot.done = True
                with _lock:
                    if outer is None:
                        _slots.pop(ident, None)
                    else:
                        _slots[ident] = outer
                if slot.fired is not None and ident != _main():
                    _set_async(ident, None)
                break
            except _Overrun:
                overrun = True
    if overrun or slot.fired is not None:  # interrupted, or the cost caught that and returned late
        raise CostTimeoutError(slot.message())
