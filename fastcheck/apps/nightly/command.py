"""``fastcheck nightly`` and ``fastcheck history``: the subcommands and their handlers.

:func:`register` adds both to any argparse subparsers (the ``fastcheck`` command line's);
:func:`main` runs them on a parser of their own, with the same one-line errors and exit
codes (:mod:`fastcheck.apps.common`).
"""

from __future__ import annotations

import sys

from ...errors import InputError
from ..common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Parser,
    UsageError,
    check_output,
    one_line,
    run_command,
    write_output,
)
from .history import History, format_history
from .run import TARGET_CHUNK_SECONDS, RunResults, check_run_dir, run_suite
from .suite import ConfigError, load_suite
from .summary import format_markdown, format_summary

__all__ = ["register", "main", "run_nightly", "run_history"]


def run_nightly(args) -> int:
    """``fastcheck nightly SUITE.toml --run-dir DIR``: 0 when everything passed and nothing regressed.

    The summary of what finished is printed (and written) however the run ends: 130 after
    Ctrl-C, 1 after user code called ``sys.exit`` (whatever its code), after a check that
    failed or could not run, or an output (history, ``index.html``, ``--markdown``) not written.
    """
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(f"--chunk-size: expected a positive integer, got {args.chunk_size}")
    check_output(args.markdown, "--markdown")
    check_run_dir(args.run_dir)  # the outputs before the suite: a bad one costs no import of the user's code
    suite = load_suite(args.suite)
    results, ended = RunResults(), None
    try:
        run_suite(suite, args.run_dir, history=args.history, chunk_size=args.chunk_size, results=results)
    except KeyboardInterrupt:
        ended = EXIT_INTERRUPTED
    except SystemExit:  # user code ended the run: never a success, whatever the code it exited with
        ended = EXIT_FAILED
    try:
        write_output(args.markdown, format_markdown(results), "--markdown")
    except UsageError as exc:  # a full disk: the summary is printed all the same
        print(f"fastcheck nightly: {one_line(exc)}", file=sys.stderr)
        results.failures.append(one_line(exc))
    print(format_summary(results))
    if ended is not None:
        return ended
    return EXIT_OK if results.ok else EXIT_FAILED


def run_history(args) -> int:
    """``fastcheck history [PROBLEM]``: the trend of each (problem, point), one line per run."""
    if args.last < 1:
        raise InputError(f"--last: expected a positive integer, got {args.last}")
    with History(args.history, create=False) as db:
        print(format_history(db, args.problem, args.last), end="")
    return EXIT_OK


def register(subparsers) -> None:
    """Add the ``nightly`` and ``history`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser(
        "nightly", help="check a suite of problems exhaustively, resumably, with history",
        description="Check every problem and point of SUITE.toml, chunk by chunk into --run-dir: run the same "
        "command again after an interruption to resume. Exit code 0 when every check passed and nothing "
        "regressed, 1 otherwise, 2 for a bad suite.")
    p.add_argument("suite", metavar="SUITE.toml", help="the suite file")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="where chunks and reports go (one per run)")
    p.add_argument("--history", metavar="FILE", help="SQLite history (default: history.sqlite beside DIR)")
    p.add_argument("--markdown", metavar="FILE", help="also write the summary table as Markdown")
    p.add_argument("--chunk-size", type=int, metavar="N",
                   help=f"coordinates per chunk (default: about {TARGET_CHUNK_SECONDS:g} s of work per chunk)")
    p.set_defaults(func=run_nightly)
    h = subparsers.add_parser("history", help="show the trend of nightly checks",
                              description="Show each (problem, point) of the history, one line per run; "
                              "regressions (a group's difference > 10x its last passing run) are flagged.")
    h.add_argument("problem", nargs="?", metavar="PROBLEM", help="only this problem")
    h.add_argument("--history", default="history.sqlite", metavar="FILE", help="default: ./history.sqlite")
    h.add_argument("--last", type=int, default=10, metavar="N", help="runs shown per point (default 10)")
    h.set_defaults(func=run_history)


def main(argv=None) -> int:
    """``fastcheck nightly|history ...`` on their own: ``main(["nightly", "suite.toml", "--run-dir", "runs/x"])``.

    Returns the exit code: 0 every check passed (and nothing regressed), 1 otherwise,
    2 bad usage or a bad suite (one line on stderr).
    """
    parser = Parser(prog="fastcheck")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    sub.required = True
    register(sub)
    return run_command(parser, argv)
