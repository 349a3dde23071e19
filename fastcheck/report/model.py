"""The report: overall and per-group differences, verdicts, worst entries, kinks,
directions, coverage and the guarantee of a subset check; its JSON round trip.

:class:`Report` holds the rows (:mod:`fastcheck.report.rows`) and the checked entries, and answers
questions across them; :mod:`fastcheck.report.build` makes it from an engine's evaluations (and
decides the verdicts), :mod:`fastcheck.report.text` and :mod:`fastcheck.report.html` draw it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core.finite import Bounds
from ..core.selection import escape_probability
from .html import report_html
from .layers import LAYERS
from .policy import entry_bands, entry_relative_errors
from .rows import DirectionRow, EntryRow, GroupRow, SweepRow
from .text import report_text

__all__ = ["Report", "GUARANTEE_FRACTION", "JSON_WORST", "JSON_KINKS", "LAYERS"]

#: How many worst entries ``to_json`` keeps.
JSON_WORST = 20
#: How many kink coordinates ``to_json`` lists (their count is always exact).
JSON_KINKS = 1000
#: The corrupted fraction the subset guarantee is stated for, by default.
GUARANTEE_FRACTION = 0.01


def _sweep_row(data: dict) -> SweepRow:
    return SweepRow(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class Report:
    """The result of a gradient check; see :func:`fastcheck.check`.

    Attributes
    ----------
    difference : float
        ``||numeric - analytic|| / (||numeric|| + ||analytic||)`` over the checked
        coordinates (less kinks, unless included); in directions mode, over the
        directional derivatives.
    verdict : {"pass", "warn", "fail"}
        Overall verdict: the worst of the overall, per-group and global-direction verdicts.
    passed : bool
        True when nothing is ``"fail"``.
    groups : list of GroupRow
    overall_directions : GroupRow or None
        In directions mode, the row of the directions over all of theta.
    directions : list of DirectionRow
    diagnoses : dict of str -> str
        For groups with wrong entries, what the error looks like when a known pattern
        explains it (a constant factor, a missing L2 term, a transpose, a flip, ...);
        under the key :data:`LAYERS` (``"(layers)"``), the layer where the error enters.
    notes : dict of str -> str
        Per group, what is worth knowing that is not an error: a gradient zero to rounding,
        ties in a max.
    kinks : list of EntryRow
        Coordinates whose perturbation crossed a kink (ties included).
    sweeps : list of SweepRow
        The step sweeps of flagged entries (by default the worst entries of the groups
        that warn; ``sweep`` in :func:`fastcheck.check`): whether the error is a bug,
        rounding or truncation. They explain a verdict; they never change it.
    settings : dict
        eps, mode, engine, seed, bounds, kink policy and the mode's options.
    produced : dict
        fastcheck's version, the date and the machine the report was built on (empty
        for a report read from an older JSON).
    n_params, n_checked, n_evaluations, n_kinks, n_ties : int
    elapsed : float
        Seconds spent, validation included.
    """

    # keyword-only: the report's fields, as JSON gives them back
    def __init__(self, *, difference, verdict, groups, entries, settings, n_params, n_checked,  # noqa: PLR0913
                 n_evaluations, elapsed, n_kinks=None, directions=(), overall_directions=None, diagnoses=None,
                 notes=None, produced=None, n_ties=None, rel=None, sweeps=()):
        self.difference = float(difference)
        self.verdict = verdict
        self.groups = list(groups)
        self.settings = dict(settings)
        self.n_params = int(n_params)
        self.n_checked = int(n_checked)
        self.n_evaluations = int(n_evaluations)
        self.elapsed = float(elapsed)
        self.directions = list(directions)
        self.overall_directions = overall_directions
        self.diagnoses = dict(diagnoses or {})
        self.notes = dict(notes or {})
        self.produced = dict(produced or {})
        self.sweeps = list(sweeps)
        # entries: flat_index, analytic, numeric, kink, and optionally rounding scale and tie, as arrays
        # sorted by flat_index
        entries = [np.asarray(a) for a in entries]
        self._index, self._analytic, self._numeric, self._kink = entries[:4]
        n = len(self._index)
        self._rounding = np.asarray(entries[4], dtype=np.float64) if len(entries) > 4 else np.full(n, np.nan)
        self._tie = np.asarray(entries[5], dtype=bool) if len(entries) > 5 else np.zeros(n, dtype=bool)
        self._starts = np.cumsum([0] + [g.size for g in self.groups])
        self.n_kinks = int(self._kink.sum()) if n_kinks is None else int(n_kinks)
        self.n_ties = int(self._tie.sum()) if n_ties is None else int(n_ties)
        self._rel_cache: np.ndarray | None = None if rel is None else np.asarray(rel)
        self._worst_cache: tuple[int, list[int]] = (0, [])  # (for which k, positions of the worst, best first)

    @property
    def _rel(self) -> np.ndarray:
        """Relative error of every kept entry (computed once)."""
        if self._rel_cache is None:
            self._rel_cache = entry_relative_errors(self._numeric, self._analytic)
        return self._rel_cache

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    def __bool__(self) -> bool:
        return self.passed

    def _row(self, p: int) -> EntryRow:
        i = int(self._index[p])
        position = int(np.searchsorted(self._starts, i, side="right") - 1)
        g = self.groups[position]
        index = tuple(int(v) for v in np.unravel_index(i - self._starts[position], g.shape)) if g.shape else ()
        a, n = float(self._analytic[p]), float(self._numeric[p])
        rounding = float(self._rounding[p])
        return EntryRow(g.name, index, i, a, n, abs(n - a), float(self._rel[p]), bool(self._kink[p]),
                        rounding if np.isfinite(rounding) else None, bool(self._tie[p]))

    def worst(self, k: int = 10) -> list[EntryRow]:
        """The k coordinates with the largest relative error (kinks left out when excluded, and the
        entries of a group zero to rounding); NaN entries (never a silent verdict) come first.

        In directions mode only escalated groups have coordinates; see :meth:`worst_directions`.
        """
        if k <= 0:
            return []
        if k > self._worst_cache[0]:  # computed once for the JSON's 20, which serve every smaller k
            self._worst_cache = (max(k, JSON_WORST), self._worst_positions(max(k, JSON_WORST)))
        return [self._row(p) for p in self._worst_cache[1][:k]]

    def _worst_positions(self, k: int) -> list[int]:
        candidates = np.arange(len(self._index))
        if self.settings.get("kinks") != "include":
            candidates = candidates[~self._kink | np.isnan(self._rel)]
        # a group zero to rounding passes whatever its entries' relative errors (rounding over rounding, ~1): none
        # of them is an error worth a row (its note says why it passes)
        zero = np.array([g.zero_to_rounding for g in self.groups] + [False], dtype=bool)
        candidates = candidates[~zero[np.searchsorted(self._starts, self._index[candidates], side="right") - 1]]
        rel = np.nan_to_num(self._rel[candidates], nan=np.inf)
        if 0 < k < len(rel):  # only the top k matter: keep all >= the k-th largest (ties included)
            cut = np.partition(rel, len(rel) - k)[len(rel) - k]
            keep = rel >= cut
            candidates, rel = candidates[keep], rel[keep]
        absolute = np.nan_to_num(np.abs(self._numeric[candidates] - self._analytic[candidates]), nan=np.inf)
        order = np.lexsort((self._index[candidates], -absolute, -rel))[:k]
        return [int(p) for p in candidates[order]]

    def worst_directions(self, k: int = 10) -> list[DirectionRow]:
        """The k directions with the largest relative error."""
        rows = [d for d in self.directions if self.settings.get("kinks") == "include" or not d.kink]
        return sorted(rows, key=lambda d: -d.rel_error)[:k]

    @property
    def kinks(self) -> list[EntryRow]:
        return [self._row(int(p)) for p in np.flatnonzero(self._kink)]

    @property
    def ties(self) -> list[EntryRow]:
        """The kinks found as ties (the analytic gradient is one side's derivative)."""
        return [self._row(int(p)) for p in np.flatnonzero(self._tie)]

    def entry_flags(self, indices) -> list[str]:
        """Per flat index of theta: ``"tie"``, ``"kink"`` (crossed, no tie) or ``""`` (neither, or not checked)."""
        p = np.clip(np.searchsorted(self._index, indices), 0, max(self._index.size - 1, 0))
        found = self._index[p] == indices if self._index.size else np.zeros(len(indices), dtype=bool)
        return ["tie" if f and self._tie[q] else "kink" if f and self._kink[q] else "" for q, f in zip(p, found)]

    def group(self, name: str) -> GroupRow:
        for row in self.groups:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def failing_groups(self) -> list[str]:
        return [g.name for g in self.groups if g.verdict == "fail"]

    def guarantee(self, fraction: float = GUARANTEE_FRACTION) -> dict[str, float]:
        """Per group checked coordinate by coordinate: the probability that a bug making at
        least ``fraction`` of the group's entries wrong would have been caught.

        Sampling is without replacement, so it is at least ``1 - (1 - fraction)^checked``
        (1 when the whole group was checked). Groups checked only by directions are left
        out, and so are groups whose escalation was narrowed down by bisection (their
        entries are not a uniform sample).
        """
        narrowed = self.settings.get("localised", {})
        return {g.name: 1.0 - escape_probability(g.checked, g.size, fraction)
                for g in self.groups if g.method == "coordinates" and g.name not in narrowed}

    @property
    def guarantee_fraction(self) -> float:
        """The corrupted fraction the report states its guarantee for (the settings' or
        :data:`GUARANTEE_FRACTION`)."""
        return self.settings.get("guarantee_fraction", GUARANTEE_FRACTION)

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        return report_text(self)

    # ------------------------------------------------------------------ HTML
    @property
    def has_entries(self) -> bool:
        """True when every checked coordinate is kept (a report built in process); a report
        read by :meth:`from_json` keeps only the worst entries and the kinks."""
        return len(self._index) == self.n_checked

    def entry_errors(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Group ``name``'s checked coordinates: ``(positions, rel_error, kink)``, positions
        being flat indices into the group's array, in increasing order."""
        position = [g.name for g in self.groups].index(name)
        lo, hi = np.searchsorted(self._index, self._starts[position:position + 2])
        return self._index[lo:hi] - self._starts[position], self._rel[lo:hi], self._kink[lo:hi]

    def entry_bands(self, name: str, bounds: Bounds | None = None) -> np.ndarray:
        """Group ``name``'s checked coordinates, in the order of :meth:`entry_errors`: each
        one's band for the eye (:func:`fastcheck.report.policy.entry_bands`): an error within
        rounding noise is ``"pass"`` whatever its relative size, a wrong entry ``"fail"``."""
        bounds = bounds or Bounds(warn=self.settings["warn"], fail=self.settings["fail"])
        position = [g.name for g in self.groups].index(name)
        lo, hi = np.searchsorted(self._index, self._starts[position:position + 2])
        abs_error = np.abs(self._numeric[lo:hi] - self._analytic[lo:hi])
        return entry_bands(self._rel[lo:hi], abs_error, self._rounding[lo:hi], bounds)

    def to_html(self, title: str | None = None) -> str:
        """The report as one self-contained HTML page with inline SVG plots; see :mod:`fastcheck.report.html`.

        Parameters
        ----------
        title : str, optional
            The page's title and heading (default "fastcheck report").

        Returns
        -------
        str
            The page: the headline, the group, worst-entry and diagnosis tables, each group's
            difference on a log axis, error histograms and heat maps of the failing matrices.

        Examples
        --------
        >>> import numpy as np, fastcheck as fc
        >>> report = fc.check(lambda t: float(t @ t), np.arange(3.0), 2 * np.arange(3.0))
        >>> page = report.to_html(title="my check")
        >>> page.startswith("<!DOCTYPE html>") and "<title>my check</title>" in page
        True
        """
        return report_html(self, title)

    def save_html(self, path, title: str | None = None) -> None:
        """Write :meth:`to_html` to ``path`` (UTF-8)."""
        Path(path).write_text(self.to_html(title), encoding="utf-8")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        data = {
            "difference": self.difference,
            "verdict": self.verdict,
            "passed": self.passed,
            "settings": self.settings,
            "n_params": self.n_params,
            "n_checked": self.n_checked,
            "n_evaluations": self.n_evaluations,
            "elapsed": self.elapsed,
            "groups": [asdict(g) for g in self.groups],
            "overall_directions": asdict(self.overall_directions) if self.overall_directions else None,
            "worst": [asdict(e) for e in self.worst(JSON_WORST)],
            "n_kinks": self.n_kinks,
            "kinks": [asdict(e) for e in self.kinks[:JSON_KINKS]],
            "directions": [asdict(d) for d in self.directions],
            "diagnoses": self.diagnoses,
            "notes": self.notes,
            "n_ties": self.n_ties,
            "produced": self.produced,
        }
        if self.sweeps:  # absent when there is none, as in the reports of older versions
            data["sweeps"] = [asdict(s) for s in self.sweeps]
        if self.settings["mode"] != "full":
            f = self.guarantee_fraction
            data["guarantee"] = {"corrupted_fraction": f, "detection_probability": self.guarantee(f)}
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a report from :meth:`to_json`; it keeps the worst entries and kinks stored."""
        data = json.loads(text)

        def group_row(g):
            return GroupRow(**{**g, "shape": tuple(g["shape"])})

        rows = {e["flat_index"]: e for e in data["worst"] + data["kinks"]}
        ordered = [rows[i] for i in sorted(rows)]
        rounding = [e.get("rounding") for e in ordered]
        entries = (
            np.array([e["flat_index"] for e in ordered], dtype=np.int64),
            np.array([e["analytic"] for e in ordered], dtype=np.float64),
            np.array([e["numeric"] for e in ordered], dtype=np.float64),
            np.array([e["kink"] for e in ordered], dtype=bool),
            np.array([np.nan if r is None else r for r in rounding], dtype=np.float64),
            np.array([e.get("tie", False) for e in ordered], dtype=bool),
        )
        overall = data.get("overall_directions")
        return cls(difference=data["difference"], verdict=data["verdict"],
                   groups=[group_row(g) for g in data["groups"]], entries=entries, settings=data["settings"],
                   n_params=data["n_params"], n_checked=data["n_checked"], n_evaluations=data["n_evaluations"],
                   elapsed=data["elapsed"], n_kinks=data["n_kinks"],
                   directions=[DirectionRow(**d) for d in data.get("directions", [])],
                   diagnoses=data.get("diagnoses"), notes=data.get("notes"), produced=data.get("produced"),
                   n_ties=data.get("n_ties"), sweeps=[_sweep_row(s) for s in data.get("sweeps", [])],
                   overall_directions=group_row(overall) if overall else None)

