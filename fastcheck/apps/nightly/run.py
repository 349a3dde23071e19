"""A nightly run: every unit of a suite, chunk by chunk into a run directory, resumably.

Each (problem, point) is a **unit** (:mod:`.units`): its coordinates are evaluated chunk
by chunk, every chunk written atomically to the run directory with a checksum and the
unit's key (:mod:`.store`). A run killed at any moment and started again with the same
command merges the chunks already written and computes only the rest; a corrupted chunk,
or one computed for another key, is recomputed, never merged. The report of a unit is the
same, number for number, as an uninterrupted run's; its ``elapsed`` is the unit's compute
time: the seconds spent evaluating its chunks, summed over every session that contributed
one, plus the last session's preparation (time lost to an interruption is not counted).
The last chunk of a unit is not written as a chunk: the report it completes is written
instead, so a unit that fits in one chunk costs no checkpoint at all.

Run directory layout::

    DIR/.lock                     held (flock) while a run is active
    DIR/run.json                  the run's id and start time
    DIR/PROBLEM@POINT.json        the report of each finished unit (``Report.from_json``)
    DIR/PROBLEM@POINT.sum         its checksum (and the run's id): a report that fails it is recomputed
    DIR/PROBLEM@POINT.html        its page
    DIR/index.html                the summary, each check linked to its page
    DIR/chunks/PROBLEM@POINT/     the unit's chunks until its report is written

Each finished unit is recorded in the history (:mod:`.history`), by default
``history.sqlite`` in the run directory's parent, so ``--run-dir runs/$(date +%F)``
keeps one history for every night. A history that cannot be opened or written is
reported and the checks run on; so does an ``index.html`` that cannot be written (both
are in :attr:`RunResults.failures`). Ctrl-C, or user code calling ``sys.exit``, ends the
run: the unit in flight and those not started are listed as errors, ``index.html`` is
written, and the exception is raised again.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
import uuid
from concurrent.futures import CancelledError  # what Dask raises when a cluster's workers all died
from datetime import datetime, timezone
from pathlib import Path

from ... import __version__
from ...core.progress import ProgressLine
from ...core.results import merge_evaluations
from ...errors import FastcheckError, InputError
from ...report.model import Report
from ..common import one_line
from .history import Recorder
from .store import Chunk, ChunkStore, canonical, sha256, write_atomic
from .suite import Problem, Suite
from .summary import UnitResult, format_index
from .units import Unit, prepare_unit

__all__ = ["RunLockedError", "RunResults", "run_suite", "TARGET_CHUNK_SECONDS", "CHUNK_GROWTH"]

#: The default chunk size aims at chunks of about this many seconds (a kill loses at most that).
TARGET_CHUNK_SECONDS = 2.0
#: A chunk at most this many times larger (or smaller) than the previous one.
CHUNK_GROWTH = 8


class RunLockedError(FastcheckError):
    """Another ``fastcheck nightly`` holds the run directory."""


class RunResults(list):
    """The :class:`UnitResult` of each unit, in suite order, and ``failures``: what the run could
    not do besides its checks (a history or an ``index.html`` not written), one message each."""

    def __init__(self, *args):
        super().__init__(*args)
        self.failures: list[str] = []

    @property
    def ok(self) -> bool:
        """Every check passed, nothing regressed, and every output was written."""
        return all(r.ok for r in self) and not self.failures


class _Sizer:
    """Chunk sizes: fixed, or about :data:`TARGET_CHUNK_SECONDS` from the check's speed."""

    def __init__(self, unit: Unit, fixed: int | None):
        self.fixed = fixed
        # a fixed size needs no estimate (which may time the user's cost): the first chunk's time is the rate
        self.rate = None if fixed else unit.prepared.seconds_per_coordinate()
        self.size = None

    def next(self) -> int:
        if self.fixed:
            return self.fixed
        size = max(1, int(TARGET_CHUNK_SECONDS / self.rate))
        if self.size is not None:
            size = min(max(size, self.size // CHUNK_GROWTH), self.size * CHUNK_GROWTH)
        self.size = max(1, size)
        return self.size

    def observe(self, k: int, seconds: float) -> None:
        if k:
            self.rate = max(seconds / k, 1e-12)


def _note(message: str) -> None:
    print(f"fastcheck nightly: {message}", file=sys.stderr)


def _dask_client(problem: Problem):
    if problem.options["backend"] != "dask":
        return contextlib.nullcontext()
    try:
        from dask.distributed import Client  # optional (fastcheck[distributed]): only for a problem on Dask
    except ImportError as exc:
        raise InputError(f"problem {problem.name!r} uses backend 'dask': install fastcheck[distributed]") from exc
    try:
        return Client(problem.options["scheduler"], timeout="10s")
    except (OSError, ValueError, TypeError) as exc:  # a malformed address, or nothing answering there
        raise InputError(f"problem {problem.name!r}: cannot reach the Dask scheduler "
                         f"{problem.options['scheduler']!r}: {exc}") from None


def _sum_path(report_path: Path) -> Path:
    return report_path.with_suffix(".sum")


def _write_report(path: Path, report: Report, key: str, run_id: str) -> None:
    """The report, then its checksum (over the unit's key and the report's bytes) and the run's id."""
    data = report.to_json().encode()
    write_atomic(path, data)
    write_atomic(_sum_path(path), canonical({"run_id": run_id, "sha256": sha256(key, data)}).encode())


def _finished_report(path: Path, key: str) -> Report | None:
    """The unit's report if it is finished: written for ``key`` and matching its checksum."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if json.loads(_sum_path(path).read_text())["sha256"] != sha256(key, data):
            _note(f"report {path} does not match its checksum (edited, corrupted, or of another configuration); "
                  "recomputing it")
            return None
        return Report.from_json(data.decode())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _gaps(chunks: list[Chunk], n: int) -> list[tuple[int, int]]:
    """The ranges of positions in ``[0, n)`` that no chunk covers."""
    out, pos = [], 0
    for c in chunks:
        if c.start > pos:
            out.append((pos, c.start))
        pos = max(pos, c.stop)
    if pos < n:
        out.append((pos, n))
    return out


def _line(progress: bool | None, label: str, total: int = 0) -> ProgressLine:
    """A unit's progress line, rewritten after every chunk (chunks take seconds: nothing to throttle)."""
    return ProgressLine(total, progress, label=label, refresh=0.0)


def _run_unit(unit: Unit, run_dir: Path, run_id: str, chunk_size: int | None, progress: bool | None) -> UnitResult:
    result = UnitResult(unit.problem.name, unit.point.name, "run")
    result.report_path = run_dir / f"{unit.label}.json"
    store = ChunkStore(run_dir / "chunks" / unit.label, unit.key)
    report = _finished_report(result.report_path, unit.key)
    if report is not None:  # a run killed between writing the report and clearing the chunks leaves some
        store.clear()
        result.status, result.report = "done", report
        return result
    prepared = unit.prepared
    indices = prepared.indices()
    n = len(indices)
    chunks = store.load(indices, warn=_note)
    result.chunks_reused = len(chunks)
    if chunks:
        result.status = "resumed"
    sizer = _Sizer(unit, chunk_size or unit.problem.options["chunk_size"])
    gaps = _gaps(chunks, n)
    done = sum(c.stop - c.start for c in chunks)
    with _line(progress, unit.label, n) as line:  # ended by a newline, whatever stops the unit
        for g, (lo, hi) in enumerate(gaps):
            pos = lo
            while pos < hi:
                stop = min(pos + sizer.next(), hi)
                tic = time.perf_counter()
                evaluations = prepared.evaluate(indices[pos:stop])
                seconds = time.perf_counter() - tic
                sizer.observe(stop - pos, seconds)
                last = stop == hi and g == len(gaps) - 1
                if not last:  # the last chunk is not written: the report it completes is, next
                    store.save(pos, stop, evaluations, seconds)
                chunks.append(Chunk(pos, stop, evaluations, seconds))
                result.chunks_computed += 1
                done += stop - pos
                pos = stop
                # the ETA from this session's rate: chunks of an earlier session took none of its time
                line.update(done - line.done, eta=(n - done) * sizer.rate)
        chunks.sort(key=lambda c: c.start)
        elapsed = unit.prepare_seconds + sum(c.seconds for c in chunks)
        # the step sweep of a warning group is not resumable, but short: a kill redoes at most its seconds
        report = prepared.report(merge_evaluations(c.evaluations for c in chunks), elapsed=elapsed, sweep=True)
        # the page first: a unit whose JSON report exists is finished, and so has its page
        write_atomic(run_dir / f"{unit.label}.html", report.to_html(f"fastcheck nightly: {unit.label}").encode())
        _write_report(result.report_path, report, unit.key, run_id)
        store.clear()
        result.report = report
        line.finish(f"{report.verdict}, difference {report.difference:.2e}")
    return result


@contextlib.contextmanager
def _locked(run_dir: Path):
    """Hold ``DIR/.lock`` while the block runs (released by the OS if the process dies)."""
    import fcntl  # POSIX only: imported where the lock is taken

    path = run_dir / ".lock"
    try:  # never through a symlink: a planted `.lock` must not get its target truncated
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                     0o644)
    except OSError as exc:
        raise InputError(f"run directory {str(run_dir)!r}: cannot open its lock file {str(path)!r} "
                         f"({exc.strerror or exc}; a symlink is refused): remove it, or give another --run-dir"
                         ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"run directory {str(run_dir)!r}: its lock file {str(path)!r} is not a regular file; "
                         "remove it, or give another --run-dir")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(f"run directory {str(run_dir)!r} is in use by another `fastcheck nightly` "
                             f"({holder}); wait for it to finish, or give another --run-dir") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {_now()}".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_id(run_dir: Path) -> str:
    """The run's id: from ``run.json``, else from a finished report's checksum (so a unit already
    in the history is not recorded again under a new id), else a new one."""
    path = run_dir / "run.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(path.read_text())["run_id"])
    run_id = uuid.uuid4().hex
    for sums in sorted(run_dir.glob("*.sum")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            run_id = str(json.loads(sums.read_text())["run_id"])
            break
    write_atomic(path, canonical({"run_id": run_id, "started": _now()}).encode())
    return run_id


def check_run_dir(run_dir) -> Path:
    """Refuse, before any work, a run directory that is a file or cannot be created (nothing is created).

    Raises
    ------
    InputError
        Naming the path and what is wrong with it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists():
        if not run_dir.is_dir():
            raise InputError(f"run directory {str(run_dir)!r} exists and is not a directory; give another --run-dir")
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise InputError(f"run directory {str(run_dir)!r} is not writable; give another --run-dir")
        return run_dir
    parent = run_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"run directory {str(run_dir)!r} cannot be created: {str(parent)!r} is not a writable "
                         "directory; give another --run-dir")
    return run_dir


def _write_index(run_dir: Path, results: RunResults) -> None:
    """``index.html``; a failure (a full disk) is reported, the summary is printed all the same."""
    try:
        write_atomic(run_dir / "index.html", format_index(results, run_dir).encode())
    except OSError as exc:
        message = f"{str(run_dir / 'index.html')!r} not written: {exc.strerror or exc}"
        _note(message)
        results.failures.append(message)


def _ended(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C): the run ended here"
    return f"user code called sys.exit({exc.code!r}): the run ended here"


def run_suite(suite: Suite, run_dir, *, history=None, chunk_size: int | None = None,
              progress: bool | None = None, results: RunResults | None = None) -> RunResults:
    """Check every (problem, point) of ``suite``, resuming what ``run_dir`` already holds.

    Parameters
    ----------
    suite : Suite
    run_dir : str or Path
        Created if missing; locked while the run is active.
    history : str or Path, optional
        The SQLite history (default ``history.sqlite`` in ``run_dir``'s parent). One that
        cannot be opened or written is reported (``results.failures``); the checks run on.
    chunk_size : int, optional
        Coordinates per chunk for every problem (default: the problem's ``chunk_size``,
        else chunks of about :data:`TARGET_CHUNK_SECONDS`).
    progress : bool, optional
        A progress line per unit on stderr (default: when stderr is a terminal).
    results : RunResults, optional
        Filled as units finish, and returned: the caller still has what finished when the
        run ends by ``KeyboardInterrupt`` or a ``sys.exit`` of user code, which are raised
        again once the unit in flight and those not run are listed and ``index.html`` is written.

    Returns
    -------
    RunResults
        A :class:`UnitResult` per unit, in suite order. A unit whose problem cannot be
        built or checked (its factory raised or exited, its cost is not deterministic,
        its Dask cluster died, ...) has ``status == "error"``.

    Raises
    ------
    RunLockedError
        Another run holds ``run_dir``.
    InputError
        ``run_dir`` is not a directory or cannot be created, or its ``.lock`` is not a
        regular file.
    """
    run_dir = check_run_dir(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"run directory {str(run_dir)!r} cannot be created: {exc.strerror or exc}") from None
    history_path = Path(history) if history is not None else run_dir.resolve().parent / "history.sqlite"
    results = RunResults() if results is None else results
    units = [(problem, point) for problem in suite.problems for point in problem.points]
    with _locked(run_dir):
        for leftover in run_dir.glob(".*.tmp"):  # a report being written when a run was killed
            leftover.unlink(missing_ok=True)
        run_id = _run_id(run_dir)
        db = Recorder(history_path, results.failures, _note)
        try:
            for i, (problem, point) in enumerate(units):
                try:
                    with _dask_client(problem):
                        unit = prepare_unit(problem, point)
                        result = _run_unit(unit, run_dir, run_id, chunk_size, progress)
                except (FastcheckError, ImportError, OSError, CancelledError) as exc:
                    if isinstance(exc, RunLockedError):
                        raise
                    message = one_line(exc)
                    _line(progress, f"{problem.name}@{point.name}").finish(f"error: {message}")
                    results.append(UnitResult(problem.name, point.name, "error", error=message))
                    continue
                except (KeyboardInterrupt, SystemExit) as exc:  # user code (or the user) ended the run
                    results.append(UnitResult(problem.name, point.name, "error", error=_ended(exc)))
                    results.extend(UnitResult(p.name, q.name, "not run", error="not run: the run ended before it")
                                   for p, q in units[i + 1:])
                    _write_index(run_dir, results)
                    raise
                result.regressions = db.record(run_id=run_id, problem=problem.name, point=point.name,
                                               config_hash=unit.config_hash, data_hash=unit.key,
                                               version=__version__, report=result.report)
                results.append(result)
        finally:
            db.close()
        _write_index(run_dir, results)
        return results
