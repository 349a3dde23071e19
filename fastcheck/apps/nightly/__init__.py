"""``fastcheck nightly``: exhaustive checks of a suite of problems, resumable, with history.

The modules, in the order a run goes through them: ``suite`` (the TOML schema, validated
into problems and points), ``units`` (each (problem, point) built, trained to its point
and prepared as a check, with the hashes that identify it), ``run`` (the run loop: chunk
by chunk into a locked run directory), ``store`` (the chunk files: atomic, checksummed),
``summary`` (the end-of-run table as text, Markdown and ``index.html``), ``history`` (the
SQLite history and its regressions) and ``command`` (the ``nightly`` and ``history``
subcommands).
"""

from .command import main, register
from .run import TARGET_CHUNK_SECONDS, RunLockedError, RunResults, run_suite
from .store import ChunkStore
from .suite import ConfigError, Point, Problem, Suite, load_suite, parse_suite
from .summary import UnitResult, format_index, format_markdown, format_summary

__all__ = ["ConfigError", "RunLockedError", "RunResults", "Point", "Problem", "Suite", "load_suite", "parse_suite",
           "ChunkStore", "UnitResult", "run_suite", "register", "main", "TARGET_CHUNK_SECONDS", "format_summary",
           "format_markdown", "format_index"]
