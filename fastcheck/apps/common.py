"""What the command-line front doors share: exit codes, the argument parser, one-line
errors and the checks of output paths.

``fastcheck`` (:mod:`fastcheck.apps.cli`) and ``python -m fastcheck.apps.bench`` both run
through :func:`run_command`, so bad usage or input is always one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from ..errors import FastcheckError

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError", "Parser", "one_line",
           "run_command", "check_output", "write_output", "refuse_unfitting", "memory_limit"]

#: Copies of the parameters a check holds at once at the least (params, gradient, flat theta, numeric).
_COPIES = 4

#: Nothing failed; a gradient check (or the planted bug's detection) failed; bad usage or input.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Interrupted (Ctrl-C), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line usage; becomes one line on stderr and exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` instead of printing the usage and exiting."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)  # a subcommand's overrides: its --help, for unknown options

    def error(self, message):  # one line, exit 2, instead of argparse's usage dump
        raise UsageError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, an unknown option pointing at its subcommand's --help (``fastcheck check --help``)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see {parsed.command_prog} --help)")
        return parsed


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(exc).split())


class _GuardedStdout:
    """``sys.stdout`` for one command: a write that fails (the reader left, a full disk) never stops it.

    The report is printed after the outputs (``--json``, ``--html``) are written, and the exit
    code says the verdict, whatever happens to stdout: a check that failed exits 1 even when
    nobody reads what it printed. The first failure is kept (:attr:`error`); from then on
    writes go nowhere.
    """

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def _guarded(self, action, *args):
        if self.error is None:
            try:
                return action(*args)
            except OSError as exc:  # BrokenPipeError, ENOSPC, EIO, ...
                self.error = exc
                _silence(self.stream)
        return None

    def write(self, text):
        self._guarded(self.stream.write, text)
        return len(text)

    def flush(self):
        self._guarded(self.stream.flush)

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the real stream's
        return getattr(self.stream, name)


def _silence(stream) -> None:
    """Point a failed stream's file descriptor at the null device, so Python's exit-time flush stays quiet."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to flush at exit
        pass


def run_command(parser: argparse.ArgumentParser, argv) -> int:
    """Parse ``argv`` with ``parser`` and call the chosen subcommand's ``func(args)``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A :class:`Parser` whose subcommands ``set_defaults(func=...)``.
    argv : list of str or None
        The arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        The subcommand's exit code, also when stdout could not be written (its reader went
        away, a full disk: one line on stderr, except for a closed pipe such as ``| head``);
        :data:`EXIT_USAGE` after a :class:`UsageError` or a fastcheck error or running out
        of memory (printed as one line on stderr), :data:`EXIT_INTERRUPTED` after Ctrl-C.
    """
    stdout = sys.stdout
    guarded = sys.stdout = _GuardedStdout(stdout)
    try:
        with warnings.catch_warnings():  # restores showwarning after the command
            warnings.showwarning = _one_line_warning
            code = _run(parser, argv)
        guarded.flush()
    finally:
        sys.stdout = stdout
    if guarded.error is not None and not isinstance(guarded.error, BrokenPipeError):
        print(f"fastcheck: error: cannot write to stdout: {guarded.error.strerror or guarded.error} "
              f"(exit code {code} all the same)", file=sys.stderr)
    return code


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning (an up-cast with ``--cast``) as one line on stderr, without the source line."""
    print(f"fastcheck: warning: {one_line(message)}", file=sys.stderr if file is None else file)


def _run(parser: argparse.ArgumentParser, argv) -> int:
    try:
        args = parser.parse_args(argv)  # --help exits 0 here, as it should
        try:
            return args.func(args)
        except SystemExit as exc:  # user code ended the run: never a success, whatever its code
            print(f"fastcheck: error: user code called sys.exit({exc.code!r}): the run ended here", file=sys.stderr)
            return EXIT_USAGE
    except (UsageError, FastcheckError) as exc:
        print(f"fastcheck: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:  # a problem too large for this machine: say so, not a traceback
        print("fastcheck: error: out of memory: the problem does not fit in this machine's memory (or the "
              "process's limit); check a smaller network or a subset", file=sys.stderr)
        return EXIT_USAGE


def check_output(path: str | None, flag: str) -> None:
    """Refuse an output path whose directory is missing before any work is done.

    Raises
    ------
    UsageError
        When ``path`` is a directory or its directory does not exist (``flag`` names the option).
    """
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag} {path!r} is a directory; give a file name")
    if not target.parent.is_dir():
        raise UsageError(f"{flag} {path!r}: directory {str(target.parent)!r} does not exist")


def write_output(path: str | None, text: str, flag: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) when given; a failure is a :class:`UsageError` naming ``flag``."""
    if path is None:
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path!r}: {exc.strerror or exc}") from None


def memory_limit() -> int | None:
    """The bytes this process may use at most: the smaller of physical memory and ``RLIMIT_AS`` (None: unknown)."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not every platform says
        pass
    try:
        import resource  # POSIX only: imported where a limit is asked for

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) if limits else None


def refuse_unfitting(n_params: int, flag: str) -> None:
    """Refuse, before allocating anything, a problem whose parameters alone cannot fit in memory.

    Raises
    ------
    UsageError
        When :data:`_COPIES` float64 copies of ``n_params`` exceed :func:`memory_limit`.
    """
    limit = memory_limit()
    need = _COPIES * 8 * n_params
    if limit is not None and need > limit:
        raise UsageError(f"{flag}: {n_params:,} parameters need at least {need / 2**30:.1f} GiB "
                         f"({_COPIES} float64 copies), more than the {limit / 2**30:.1f} GiB this process may use; "
                         "check a smaller network")
