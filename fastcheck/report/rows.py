"""The rows of a report: one parameter group (:class:`GroupRow`), one coordinate (:class:`EntryRow`), one
random direction (:class:`DirectionRow`) and one entry's step sweep (:class:`SweepRow`).

Plain frozen records, written as JSON by their fields (``dataclasses.asdict``); :class:`~.model.Report`
holds them and answers questions across them, :mod:`fastcheck.report.build` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GroupRow", "EntryRow", "DirectionRow", "SweepRow"]


@dataclass(frozen=True)
class GroupRow:
    """One parameter group's result.

    ``method`` is ``"coordinates"`` (``checked`` coordinates compared one by one) or
    ``"directions"`` (``checked`` random directions supported on the group);
    ``escalated`` says the group was re-checked coordinate by coordinate after a cheap
    mode flagged it. ``kinks`` counts the coordinates (or directions) whose
    perturbation crossed a kink; ``difference`` leaves them out unless kinks were
    included. ``wrong_entries`` counts entries wrong beyond any rounding (see
    :func:`fastcheck.report.build.build_report`); one is enough for ``verdict`` to be ``"fail"``.
    ``ties`` counts the kinks found from the one-sided differences, where the analytic
    gradient is one side's derivative (see :func:`fastcheck.report.policy.ties`);
    ``zero_to_rounding`` says every entry, analytic and numeric, is zero to within
    rounding (the group passes whatever its difference).
    """

    name: str
    shape: tuple[int, ...]
    size: int
    checked: int
    kinks: int
    difference: float
    verdict: str
    wrong_entries: int = 0
    method: str = "coordinates"
    escalated: bool = False
    ties: int = 0
    zero_to_rounding: bool = False


@dataclass(frozen=True)
class EntryRow:
    """One coordinate: where it is, the two gradients and how far apart they are.

    ``rounding`` is the rounding scale of its central difference (None when unknown: a
    report read from an older JSON); ``tie`` says its kink was found from the one-sided
    differences, the analytic gradient being one side's derivative.
    """

    group: str
    index: tuple[int, ...]
    flat_index: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    kink: bool
    rounding: float | None = None
    tie: bool = False

    @property
    def label(self) -> str:
        return f"{self.group}[{', '.join(map(str, self.index))}]"


@dataclass(frozen=True)
class DirectionRow:
    """One random direction: its group (or ``"(all)"``), number, ``u . grad`` and the central difference."""

    group: str
    number: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    kink: bool


@dataclass(frozen=True)
class SweepRow:
    """One flagged entry re-evaluated at the steps of a sweep (see :mod:`fastcheck.report.sweep`).

    ``steps`` run from large to small; at each, ``numeric`` is the central difference by
    full evaluations of the cost, ``errors`` its distance to ``analytic`` and ``rounding``
    its rounding scale (NaN where the step is lost in rounding at this coordinate);
    ``eps`` is the check's own step at this entry. ``kind`` is ``"bug"``, ``"rounding"``,
    ``"truncation"``, ``"unresolved"`` or ``"kink"``, and ``sentence`` says it with its numbers.
    """

    label: str
    flat_index: int
    analytic: float
    steps: tuple[float, ...]
    numeric: tuple[float, ...]
    errors: tuple[float, ...]
    rounding: tuple[float, ...]
    eps: float
    kind: str
    sentence: str
