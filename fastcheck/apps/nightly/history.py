"""The history of nightly checks: one SQLite file, one row per checked (problem, point).

Each finished (problem, point) of a ``fastcheck nightly`` run is recorded with its
config hash, fastcheck's version, the time, the overall and per-group differences and
verdicts, kink counts, the compute time and the machine's cores. A **regression** is a
group whose difference grew more than :data:`REGRESSION_FACTOR` times over the last
passing run (``verdict != "fail"``) of the same (problem, point), even if it still
passes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ...errors import FastcheckError, InputError
from ...report.text import text_table
from ..common import one_line

__all__ = ["History", "Recorder", "Regression", "REGRESSION_FACTOR", "REGRESSION_FLOOR", "format_history", "text_table"]

#: A group regressed when its difference exceeds this many times its last passing one ...
REGRESSION_FACTOR = 10.0
#: ... measured from at least this difference (a baseline of exactly 0 is not a reason to
#: flag rounding noise).
REGRESSION_FLOOR = 1e-13

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    problem TEXT NOT NULL,
    point TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    version TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    verdict TEXT NOT NULL,
    difference REAL,
    n_kinks INTEGER NOT NULL,
    n_checked INTEGER NOT NULL,
    elapsed REAL NOT NULL,
    cores INTEGER,
    regressions TEXT NOT NULL,
    UNIQUE (run_id, problem, point)
);
CREATE TABLE IF NOT EXISTS groups (
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    difference REAL,
    verdict TEXT NOT NULL,
    kinks INTEGER NOT NULL,
    checked INTEGER NOT NULL,
    PRIMARY KEY (result_id, position)
);
CREATE INDEX IF NOT EXISTS results_by_unit ON results (problem, point, id);
"""


@dataclass(frozen=True)
class Regression:
    """Group ``group`` of (problem, point) went from ``before`` (run of ``since``) to ``now``."""

    group: str
    before: float
    now: float
    since: str

    @property
    def factor(self) -> float:
        return self.now / max(self.before, REGRESSION_FLOOR)

    def __str__(self) -> str:
        return f"{self.group} {self.before:.1e} -> {self.now:.1e} (x{self.factor:.3g})"


def _to_json_float(value):
    return None if value is None or not math.isfinite(value) else float(value)


class History:
    """The SQLite history file; created on first use.

    Parameters
    ----------
    path : str or Path
    create : bool
        Create the file when missing (``fastcheck nightly``); otherwise a missing file is
        an :class:`InputError` (``fastcheck history``).
    """

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError(f"history file {str(self.path)!r} does not exist (give --history FILE; "
                             "`fastcheck nightly` writes it in the run directory's parent by default)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA foreign_keys = ON")
            if create:  # a commit without a full fsync: one row per unit must not slow the run down
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"history file {str(self.path)!r} is not a fastcheck history database: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def record(self, *, run_id: str, problem: str, point: str, config_hash: str, data_hash: str, version: str,
               report, timestamp: str | None = None) -> list[Regression]:
        """Record one finished (problem, point) of run ``run_id``; return its regressions.

        Idempotent: recording the same (run_id, problem, point) with the same
        ``data_hash`` again (a resumed run) returns the regressions found the first time;
        with another ``data_hash`` (the suite changed mid-run) the row is replaced.
        """
        cur = self._db.execute("SELECT id, data_hash, regressions FROM results WHERE run_id=? AND problem=? "
                               "AND point=?", (run_id, problem, point))
        existing = cur.fetchone()
        if existing is not None:
            if existing[1] == data_hash:
                return [Regression(**r) for r in json.loads(existing[2])]
            with self._db:
                self._db.execute("DELETE FROM results WHERE id=?", (existing[0],))
        regressions = self._regressions(run_id, problem, point, report)
        timestamp = timestamp or datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._db:
            cur = self._db.execute(
                "INSERT INTO results (run_id, problem, point, config_hash, data_hash, version, timestamp, verdict, "
                "difference, n_kinks, n_checked, elapsed, cores, regressions) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, problem, point, config_hash, data_hash, version, timestamp, report.verdict,
                 _to_json_float(report.difference), report.n_kinks, report.n_checked, report.elapsed,
                 os.cpu_count(), json.dumps([r.__dict__ for r in regressions])))
            self._db.executemany(
                "INSERT INTO groups (result_id, position, name, difference, verdict, kinks, checked) "
                "VALUES (?,?,?,?,?,?,?)",
                [(cur.lastrowid, p, g.name, _to_json_float(g.difference), g.verdict, g.kinks, g.checked)
                 for p, g in enumerate(report.groups)])
        return regressions

    def _regressions(self, run_id, problem, point, report) -> list[Regression]:
        row = self._db.execute("SELECT id, timestamp FROM results WHERE problem=? AND point=? AND run_id<>? "
                               "AND verdict<>'fail' ORDER BY id DESC LIMIT 1", (problem, point, run_id)).fetchone()
        if row is None:
            return []
        before = dict(self._db.execute("SELECT name, difference FROM groups WHERE result_id=?", (row[0],)))
        out = []
        for g in report.groups:
            old = before.get(g.name)
            if old is None or not math.isfinite(g.difference):
                continue
            if g.difference > REGRESSION_FACTOR * max(old, REGRESSION_FLOOR):
                out.append(Regression(g.name, float(old), float(g.difference), row[1]))
        return out

    # ------------------------------------------------------------------ reading
    def units(self, problem: str | None = None) -> list[tuple[str, str]]:
        """The (problem, point) pairs recorded, in order of first appearance."""
        sql = "SELECT problem, point, MIN(id) FROM results"
        args: tuple = ()
        if problem is not None:
            sql, args = sql + " WHERE problem=?", (problem,)
        return [(p, q) for p, q, _ in self._db.execute(sql + " GROUP BY problem, point ORDER BY MIN(id)", args)]

    def results(self, problem: str, point: str, last: int | None = None) -> list[dict]:
        """The recorded results of (problem, point), oldest first (the ``last`` newest)."""
        cur = self._db.execute(
            "SELECT id, run_id, config_hash, version, timestamp, verdict, difference, n_kinks, elapsed, cores, "
            "regressions FROM results WHERE problem=? AND point=? ORDER BY id DESC LIMIT ?",
            (problem, point, -1 if last is None else int(last)))
        keys = ("id", "run_id", "config_hash", "version", "timestamp", "verdict", "difference", "n_kinks",
                "elapsed", "cores", "regressions")
        rows = [dict(zip(keys, r)) for r in cur.fetchall()][::-1]
        for r in rows:
            r["regressions"] = [Regression(**x) for x in json.loads(r["regressions"])]
            r["groups"] = [dict(zip(("name", "difference", "verdict"), g)) for g in self._db.execute(
                "SELECT name, difference, verdict FROM groups WHERE result_id=? ORDER BY position", (r["id"],))]
        return rows


class Recorder:
    """The history of a run, or once it fails, the reason it is not written: the checks run on unrecorded.

    ``failures`` gets one message per failure, ``note(message)`` says it as it happens.
    """

    def __init__(self, path: Path, failures: list[str], note):
        self.path, self.failures, self.note, self.db = path, failures, note, None
        try:
            self.db = History(path)
        except (FastcheckError, OSError, sqlite3.Error) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        message = f"history {str(self.path)!r} not written ({one_line(exc)}); the checks run on without it"
        self.note(message)
        self.failures.append(message)
        self.close()

    def record(self, **row) -> list:
        """The unit's regressions (none once the history failed)."""
        if self.db is None:
            return []
        try:
            return self.db.record(**row)
        except (OSError, sqlite3.Error) as exc:  # read-only, corrupt mid-file, a full disk
            self._fail(exc)
            return []

    def close(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None



def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2e}"


def format_history(history: History, problem: str | None = None, last: int = 10) -> str:
    """The trend of each (problem, point) as a text table: one line per run, oldest first.

    Columns: time (UTC), fastcheck version, config hash, verdict, overall difference, the
    difference of each group, kinks, compute seconds, cores and the regressions flagged.
    """
    units = history.units(problem)
    if not units:
        where = f" for problem {problem!r}" if problem else ""
        raise InputError(f"no results{where} in history file {str(history.path)!r}")
    lines = []
    for name, point in units:
        rows = history.results(name, point, last)
        group_names = list(dict.fromkeys(g["name"] for r in rows for g in r["groups"]))
        head = ("when (UTC)", "version", "config", "verdict", "difference", *group_names, "kinks", "time", "cores",
                "regressions")
        table = [head]
        for r in rows:
            per_group = {g["name"]: g["difference"] for g in r["groups"]}
            flags = "; ".join(f"REGRESSED {x}" for x in r["regressions"])
            table.append((r["timestamp"].replace("+00:00", "").replace("T", " "), r["version"], r["config_hash"][:8],
                          r["verdict"], _fmt(r["difference"]), *(_fmt(per_group.get(g)) for g in group_names),
                          str(r["n_kinks"]), f"{r['elapsed']:.3g} s", str(r["cores"]), flags or "-"))
        lines += [f"{name} @ {point}: {len(rows)} run(s)"] + text_table(table) + [""]
    return "\n".join(lines).rstrip() + "\n"
