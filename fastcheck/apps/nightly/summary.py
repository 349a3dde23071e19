"""The end of a nightly run: one :class:`UnitResult` per (problem, point), and their table
as text (the summary printed), Markdown (for CI job summaries) and ``index.html``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ...report.html import index_html
from ...report.model import Report
from ...report.text import text_table

__all__ = ["UnitResult", "format_summary", "format_markdown", "format_index"]


@dataclass
class UnitResult:
    """What the summary shows for one (problem, point)."""

    problem: str
    point: str
    status: str  # "run", "resumed" (some chunks from an earlier session), "done" (finished earlier), "error",
    # "not run" (the run ended before it)
    report: Report | None = None
    regressions: list = field(default_factory=list)
    error: str | None = None
    report_path: Path | None = None
    chunks_reused: int = 0
    chunks_computed: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.passed and not self.regressions


def _worst_group(report):
    rows = [g for g in report.groups if math.isfinite(g.difference)]
    return max(rows, key=lambda g: g.difference) if rows else None


def _summary_rows(results: list[UnitResult]) -> list[tuple[str, ...]]:
    rows = [("problem", "point", "verdict", "difference", "worst group", "time", "status", "notes")]
    for r in results:
        if r.error is not None:
            rows.append((r.problem, r.point, "error", "-", "-", "-", r.status, r.error))
            continue
        rep = r.report
        worst = _worst_group(rep)
        notes = "; ".join([f"REGRESSION {x}" for x in r.regressions]
                          + ([f"wrong: {', '.join(rep.failing_groups)}"] if rep.failing_groups else []))
        rows.append((r.problem, r.point, rep.verdict, f"{rep.difference:.2e}",
                     f"{worst.name} {worst.difference:.2e}" if worst else "-", f"{rep.elapsed:.3g} s", r.status,
                     notes or "-"))
    return rows


def _headline(results: list[UnitResult]) -> str:
    failed = sum(r.report is not None and not r.report.passed for r in results)
    errors = sum(r.error is not None for r in results)
    regressed = sum(bool(r.regressions) for r in results)
    unwritten = len(getattr(results, "failures", ()))  # a run's RunResults: outputs it could not write
    ok = all(r.ok for r in results) and not unwritten
    return (f"fastcheck nightly {'PASSED' if ok else 'FAILED'}: {len(results)} check(s), "
            f"{len(results) - failed - errors} passed, {failed} failed, {errors} error(s), {regressed} regressed"
            + (f", {unwritten} output(s) not written" if unwritten else ""))


def format_summary(results: list[UnitResult]) -> str:
    """The end-of-run table, as text."""
    return "\n".join([_headline(results), ""] + text_table(_summary_rows(results)))


def format_markdown(results: list[UnitResult]) -> str:
    """The end-of-run table, as Markdown (for CI job summaries)."""
    rows = _summary_rows(results)
    out = [f"### {_headline(results)}", "", "| " + " | ".join(rows[0]) + " |",
           "|" + "|".join(["---"] * len(rows[0])) + "|"]
    for row in rows[1:]:
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(out) + "\n"


def format_index(results: list[UnitResult], run_dir) -> str:
    """The end-of-run table as an HTML page, each check linked to its own page."""
    rows = _summary_rows(results)
    links = [f"{r.problem}@{r.point}.html" if (Path(run_dir) / f"{r.problem}@{r.point}.html").exists() else None
             for r in results]
    verdicts = [r.report.verdict if r.report is not None else "fail" for r in results]
    return index_html(f"fastcheck nightly: {Path(run_dir).resolve().name}", _headline(results),
                      ("check", *rows[0][2:]), [(f"{row[0]}@{row[1]}", *row[2:]) for row in rows[1:]], links,
                      verdicts)
