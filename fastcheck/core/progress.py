"""One progress line on stderr: items done, share, ETA and time elapsed, rewritten in place.

Every long loop of the package reports through :class:`ProgressLine` (the engines' loops,
in this process or as chunks come back from workers, and the nightly run's units), so a
user sees one format whatever runs the check. A loop that may report takes
``progress`` as the caller's setting (True, False, None: see :class:`ProgressLine`) or as
the caller's own line, and opens it with :func:`progress_line`.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

__all__ = ["ProgressLine", "progress_line", "SHOW_AFTER", "format_duration"]

#: With ``enabled=None``, the line appears once a run has taken this long (s): short runs stay quiet.
SHOW_AFTER = 2.0
#: The line is rewritten at most this often (s), and always for the last item.
REFRESH = 0.2


class ProgressLine:
    """A one-line progress report on stderr: ``label: done/total noun (pct%), ETA ... (... elapsed)``.

    Parameters
    ----------
    total : int
        Items to do.
    enabled : bool or None
        True: shown from the first update; None: shown when stderr is a terminal, once
        the run has taken ``after`` seconds; False: never.
    noun : str
        What the items are ("coordinates", "directions").
    label : str
        What runs ("fastcheck", or a nightly unit's ``problem@point``).
    after : float
        Seconds before the line appears with ``enabled=None``.
    refresh : float
        Least seconds between two rewrites of the line.

    Examples
    --------
    >>> with ProgressLine(3, False) as line:
    ...     for _ in range(3):
    ...         line.update(1)
    >>> line.done
    3
    """

    def __init__(self, total: int, enabled: bool | None = None, *, noun: str = "coordinates",
                 label: str = "fastcheck", after: float = SHOW_AFTER, refresh: float = REFRESH):
        self.total, self.done, self.noun, self.label = int(total), 0, noun, label
        self.enabled = enabled is True or (enabled is None and _stderr_is_tty())
        self.after = 0.0 if enabled is True else after
        self.refresh = refresh
        self.started = self.last = time.perf_counter()
        self.shown = False
        self._width = 0

    def update(self, n: int = 1, *, eta: float | None = None) -> None:
        """``n`` more items done; the line is rewritten when due.

        ``eta``: the seconds left, when the caller knows better than the average rate
        of this run (say, part of the work was done in an earlier session).
        """
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self.started
        if elapsed < self.after or (now - self.last < self.refresh and self.done < self.total):
            return
        self.last = now
        if eta is None:
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
        share = self.done / self.total if self.total else 1.0
        self._write(f"{self.done:,}/{self.total:,} {self.noun} ({share:.0%}), "
                    f"ETA {format_duration(eta)} ({format_duration(elapsed)} elapsed)")
        self.shown = True

    def finish(self, text: str | None = None) -> None:
        """End the line: with ``text``, rewrite it as ``label: text`` (when enabled); then a newline."""
        if self.enabled and text is not None:
            self._write(text)
            self.shown = True
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False

    def _write(self, text: str) -> None:
        line = f"{self.label}: {text}"
        sys.stderr.write("\r" + line.ljust(self._width) + "   ")  # spaces wipe the end of a longer line
        sys.stderr.flush()
        self._width = len(line)

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def progress_line(progress, total: int, *, noun: str = "coordinates"):
    """The progress line of a loop over ``total`` items, as a context manager.

    ``progress`` is a setting (True, False or None, as ``enabled`` of
    :class:`ProgressLine`): a new line, ended when the block ends; or a line of the
    caller's (anything with ``update(n)``), used as it is and left for the caller to end.
    """
    if progress is None or isinstance(progress, bool):
        return ProgressLine(total, progress, noun=noun)
    return contextlib.nullcontext(progress)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def format_duration(seconds: float) -> str:
    """``'42 s'``, ``'3 min 05 s'``, ``'2 h 07 min'``; ``'?'`` when unknown (infinite)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
