"""The report: overall and per-group differences, verdicts, worst entries, kinks,
directions, coverage and the guarantee of a subset check."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.finite import Bounds, relative_difference, relative_errors
from ..core.layout import Layout
from ..core.selection import escape_probability
from .diagnose import diagnose_group

__all__ = ["Report", "GroupRow", "EntryRow", "DirectionRow", "build_report"]

#: How many worst entries ``to_json`` keeps.
JSON_WORST = 20
#: How many kink coordinates ``to_json`` lists (their count is always exact).
JSON_KINKS = 1000
#: An entry is wrong beyond rounding when its absolute error exceeds this many times the
#: rounding scale of a central difference, max(|J+|, |J-|) * 2**-52 / eps ...
NOISE_FACTOR = 1000.0
#: ... and this many times the median absolute error of its group.
MEDIAN_FACTOR = 100.0
#: The corrupted fraction the subset guarantee is stated for, by default.
GUARANTEE_FRACTION = 0.01


@dataclass(frozen=True)
class GroupRow:
    """One parameter group's result.

    ``method`` is ``"coordinates"`` (``checked`` coordinates compared one by one) or
    ``"directions"`` (``checked`` random directions supported on the group);
    ``escalated`` says the group was re-checked coordinate by coordinate after a cheap
    mode flagged it. ``kinks`` counts the coordinates (or directions) whose
    perturbation crossed a kink; ``difference`` leaves them out unless kinks were
    included. ``wrong_entries`` counts entries wrong beyond any rounding (see
    :func:`build_report`); one is enough for ``verdict`` to be ``"fail"``.
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


@dataclass(frozen=True)
class EntryRow:
    """One coordinate: where it is, the two gradients and how far apart they are."""

    group: str
    index: tuple[int, ...]
    flat_index: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    kink: bool

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
        For groups that are not ``pass``, what the error looks like when a known
        pattern explains it (a constant factor, a missing L2 term, a transpose, ...).
    kinks : list of EntryRow
        Coordinates whose perturbation crossed a kink.
    settings : dict
        eps, mode, engine, seed, bounds, kink policy and the mode's options.
    n_params, n_checked, n_evaluations, n_kinks : int
    elapsed : float
        Seconds spent, validation included.
    """

    def __init__(self, *, difference, verdict, groups, entries, settings, n_params, n_checked,
                 n_evaluations, elapsed, n_kinks=None, directions=(), overall_directions=None, diagnoses=None):
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
        # entries: flat_index, analytic, numeric, kink as arrays sorted by flat_index
        self._index, self._analytic, self._numeric, self._kink = (np.asarray(a) for a in entries)
        self._starts = np.cumsum([0] + [g.size for g in self.groups])
        self.n_kinks = int(self._kink.sum()) if n_kinks is None else int(n_kinks)
        self._rel_cache: np.ndarray | None = None
        self._worst_cache: tuple[int, list[int]] = (0, [])  # (for which k, positions of the worst, best first)

    @property
    def _rel(self) -> np.ndarray:
        """Relative error of every kept entry (computed once)."""
        if self._rel_cache is None:
            self._rel_cache = relative_errors(self._numeric, self._analytic)
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
        rel = float(relative_errors(np.array([n]), np.array([a]))[0])
        return EntryRow(g.name, index, i, a, n, abs(n - a), rel, bool(self._kink[p]))

    def worst(self, k: int = 10) -> list[EntryRow]:
        """The k coordinates with the largest relative error (kinks left out when excluded).

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
            candidates = candidates[~self._kink]
        rel = self._rel[candidates]
        if 0 < k < len(rel):  # only the top k matter: keep all >= the k-th largest (ties included)
            cut = np.partition(rel, len(rel) - k)[len(rel) - k]
            keep = rel >= cut
            candidates, rel = candidates[keep], rel[keep]
        absolute = np.abs(self._numeric[candidates] - self._analytic[candidates])
        order = np.lexsort((self._index[candidates], -absolute, -rel))[:k]
        return [int(p) for p in candidates[order]]

    def worst_directions(self, k: int = 10) -> list[DirectionRow]:
        """The k directions with the largest relative error."""
        rows = [d for d in self.directions if self.settings.get("kinks") == "include" or not d.kink]
        return sorted(rows, key=lambda d: -d.rel_error)[:k]

    @property
    def kinks(self) -> list[EntryRow]:
        return [self._row(int(p)) for p in np.flatnonzero(self._kink)]

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

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        head, coverage = self._headline()
        lines = [head, "  " + coverage]
        rows = [("group", "shape", "checked", "kinks", "wrong", "difference", "verdict")]
        for g in self.groups + ([self.overall_directions] if self.overall_directions else []):
            checked = f"{g.checked} dirs" if g.method == "directions" else f"{g.checked}/{g.size}"
            verdict = g.verdict + (" (escalated)" if g.escalated else "")
            rows.append((g.name, "x".join(map(str, g.shape)) or "()", checked, str(g.kinks),
                         str(g.wrong_entries), f"{g.difference:.2e}", verdict))
        lines += [""] + _table(rows)
        lines += self._guarantee_lines()
        worst = self.worst(5)
        if worst and worst[0].rel_error > 0:
            lines += ["", "worst entries:"]
            rows = [("entry", "analytic", "numeric", "abs error", "rel error")]
            for e in worst:
                rows.append((e.label, f"{e.analytic:.6e}", f"{e.numeric:.6e}", f"{e.abs_error:.2e}",
                             f"{e.rel_error:.2e}"))
            lines += _table(rows)
        if self.n_kinks:
            lines += ["", self._kink_line()]
        if self.diagnoses:
            lines += ["", "diagnosis:"] + [f"  {name}: {text}" for name, text in self.diagnoses.items()]
        if self.failing_groups:
            lines += ["", f"wrong: {', '.join(self.failing_groups)}"]
        if any(g.wrong_entries for g in self.groups):
            lines.append("  ('wrong' counts entries off by more than the fail bound and far beyond rounding)")
        return "\n".join(lines)

    def _headline(self) -> list[str]:
        """The verdict line and the settings-and-coverage line (also the HTML page's headline)."""
        s = self.settings
        head = {"pass": "PASSED", "warn": "PASSED with warnings", "fail": "FAILED"}[self.verdict]
        return [f"gradient check {head}: difference {self.difference:.2e} "
                f"(pass < {s['warn']:.0e} <= warn < {s['fail']:.0e} <= fail)",
                f"{s['engine']} engine, mode {s['mode']}, eps {s['eps']:.0e}: " + self._coverage_line()
                + f", {self.n_evaluations:,} cost evaluations, {self.elapsed:.3g} s"]

    def _kink_line(self) -> str:
        policy = "included in" if self.settings.get("kinks") == "include" else "left out of"
        shown = ", ".join(e.label for e in self.kinks[:5])
        more = f" and {self.n_kinks - 5} more" if self.n_kinks > 5 else ""
        return f"{self.n_kinks} coordinate(s) crossed a kink ({policy} the verdict): {shown}{more}"

    def _coverage_line(self) -> str:
        if self.settings["mode"] == "directions":
            n = self.settings["n_directions"]
            text = f"{n} random directions per group and {n} over all of theta"
            return text + (f", then {self.n_checked:,} coordinates" if self.n_checked else "")
        return f"{self.n_checked:,} of {self.n_params:,} coordinates ({self.n_checked / self.n_params:.2%})"

    def _guarantee_lines(self) -> list[str]:
        if self.settings["mode"] == "full":
            return []
        f = self.settings.get("guarantee_fraction", GUARANTEE_FRACTION)
        lines = [""]
        probabilities = self.guarantee(f)
        partial = {name: p for name, p in probabilities.items() if p < 1.0}
        if partial:
            shown = "; ".join(f"{name} {p:.1%}" for name, p in partial.items())
            others = ("other groups were checked in full" if self.settings["mode"] == "subset"
                      else "groups of a random sample of entries")
            lines.append(f"guarantee: a bug making >= {f:.0%} of a group's entries wrong would have been caught "
                         f"with probability at least: {shown} ({others})")
        for name, info in self.settings.get("localised", {}).items():
            which = "all" if info["rechecked"] == info["entries"] else f"{info['rechecked']:,} of them at random,"
            lines.append(f"narrowed down: {name} by bisection with random directions ({info['evaluations']:,} cost "
                         f"evaluations) to {info['entries']:,} entries, {which} re-checked one by one")
        if self.settings["mode"] == "directions":
            unescalated = [g.name for g in self.groups if g.method == "directions"]
            if unescalated:
                lines.append(f"directions only: {', '.join(unescalated)} (a wrong group shows in its directional "
                             "difference; its entries are named once escalated)")
        return lines if len(lines) > 1 else []

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

    def to_html(self, title: str | None = None) -> str:
        """The report as one self-contained HTML page with inline SVG plots; see :mod:`fastcheck.html`.

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
        from .html import report_html

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
        }
        if self.settings["mode"] != "full":
            f = self.settings.get("guarantee_fraction", GUARANTEE_FRACTION)
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
        entries = (
            np.array([e["flat_index"] for e in ordered], dtype=np.int64),
            np.array([e["analytic"] for e in ordered], dtype=np.float64),
            np.array([e["numeric"] for e in ordered], dtype=np.float64),
            np.array([e["kink"] for e in ordered], dtype=bool),
        )
        overall = data.get("overall_directions")
        return cls(difference=data["difference"], verdict=data["verdict"],
                   groups=[group_row(g) for g in data["groups"]], entries=entries, settings=data["settings"],
                   n_params=data["n_params"], n_checked=data["n_checked"], n_evaluations=data["n_evaluations"],
                   elapsed=data["elapsed"], n_kinks=data["n_kinks"],
                   directions=[DirectionRow(**d) for d in data.get("directions", [])],
                   diagnoses=data.get("diagnoses"),
                   overall_directions=group_row(overall) if overall else None)


def _table(rows) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(r[1:], widths[1:])]
        out.append("  " + "  ".join(cells))
    return out


def _worst_verdict(verdicts) -> str:
    verdicts = list(verdicts)
    return "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else "pass"


def build_report(layout: Layout, analytic: np.ndarray, evaluations=None, *, bounds: Bounds, settings: dict,
                 elapsed: float, directions=None, escalated=(), theta: np.ndarray | None = None,
                 context: dict | None = None) -> Report:
    """Compare ``analytic`` (flat, all of theta) with an engine's central differences.

    ``evaluations`` holds coordinate results (any subset of theta), ``directions``
    directional ones. A group with coordinate results gets a coordinate row, otherwise
    a directions row.

    A coordinate row's verdict is its difference's band, except that a group with an
    entry wrong beyond rounding fails: an entry whose relative error is at least the
    fail bound and whose absolute error exceeds both ``NOISE_FACTOR`` times the
    rounding scale of its central difference and ``MEDIAN_FACTOR`` times its group's
    median absolute error. Without it one wrong entry of a large group (W2[3, 7] off by
    10%) would be diluted by the norm into a ``warn``. Kinks are left out of the
    differences unless ``settings["kinks"] == "include"``.

    With ``theta`` (the parameter values) every coordinate group that is not ``pass``
    gets a diagnosis of the error's shape when one fits (:mod:`fastcheck.diagnose`);
    ``context`` may give ``m`` and ``l2`` to name a missing 1/m or L2 term.
    """
    include = settings.get("kinks") == "include"
    if evaluations is None:
        idx = np.zeros(0, dtype=np.int64)
        numeric = cost_plus = cost_minus = np.zeros(0)
        kinks = np.zeros(0, dtype=bool)
        n_evaluations = 0
    else:
        idx = np.asarray(evaluations.indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        idx = idx[order]
        numeric = np.asarray(evaluations.numeric)[order]
        kinks = np.asarray(evaluations.kinks, dtype=bool)[order]
        cost_plus = np.asarray(evaluations.cost_plus)[order]
        cost_minus = np.asarray(evaluations.cost_minus)[order]
        n_evaluations = evaluations.n_evaluations
    an = analytic[idx]
    counted = np.ones_like(kinks) if include else ~kinks
    gid = layout.group_ids(idx)
    abs_error = np.abs(numeric - an)
    rounding = np.maximum(np.abs(cost_plus), np.abs(cost_minus)) * np.finfo(np.float64).eps / settings["eps"]
    suspect = counted & (relative_errors(numeric, an) >= bounds.fail) & (abs_error > NOISE_FACTOR * rounding)

    direction_rows, direction_groups = [], np.zeros(0, dtype=object)
    if directions is not None:
        n_evaluations += directions.n_evaluations
        d_abs = np.abs(directions.numeric - directions.analytic)
        d_rel = relative_errors(directions.numeric, directions.analytic)
        direction_rows = [DirectionRow(d.group, d.number, float(a), float(n), float(e), float(r), bool(k))
                          for d, a, n, e, r, k in zip(directions.directions, directions.analytic,
                                                      directions.numeric, d_abs, d_rel, directions.kinks)]
        direction_groups = np.array([d.group for d in directions.directions], dtype=object)
        d_counted = np.ones(len(direction_rows), dtype=bool) if include else ~directions.kinks

    def directions_row(name, shape, size):
        mine = direction_groups == name
        use = mine & d_counted
        d = relative_difference(directions.numeric[use], directions.analytic[use])
        return GroupRow(name, shape, size, int(mine.sum()), int((mine & directions.kinks).sum()), d,
                        bounds.verdict(d), 0, "directions")

    groups, diagnoses = [], {}
    for position, g in enumerate(layout.groups):
        mine = gid == position
        if not mine.any() and directions is not None:
            groups.append(directions_row(g.name, g.shape, g.size))
            continue
        use = mine & counted
        d = relative_difference(numeric[use], an[use])
        wrong = int((suspect & mine).sum())
        outlier = wrong > 0 and (suspect & mine & (abs_error > MEDIAN_FACTOR * np.median(abs_error[use]))).any()
        verdict = "fail" if outlier else bounds.verdict(d) if mine.any() else "pass"
        partial = mine.sum() < g.size and directions is not None and (direction_groups == g.name).any()
        if partial:  # escalated in part after its directions: what they found stands until its entries are named
            cheap = directions_row(g.name, g.shape, g.size)
            if _worst_verdict([cheap.verdict, verdict]) != verdict:
                verdict = cheap.verdict
                diagnoses[g.name] = (
                    f"its {cheap.checked} directions differ by {cheap.difference:.2e} ({cheap.verdict}), but the "
                    f"{int(mine.sum()):,} of {g.size:,} entries re-checked one by one are right: the wrong ones are "
                    f"among the {g.size - int(mine.sum()):,} not re-checked (check {g.name} in full, or give the "
                    "escalation more time)")
        groups.append(GroupRow(g.name, g.shape, g.size, int(mine.sum()), int((mine & kinks).sum()), d, verdict,
                               wrong, "coordinates", g.name in escalated))
        if verdict != "pass" and theta is not None and g.name not in diagnoses:
            where = np.flatnonzero(use)

            def labels(positions, where=where):
                return [layout.describe(int(idx[where[p]])) for p in positions]

            sentence = diagnose_group(g.shape, theta[idx[where]], an[where], numeric[where], suspect[where], labels,
                                      is_weight=g.name.startswith("W"), **(context or {}))
            if sentence:
                diagnoses[g.name] = sentence

    overall = None
    if directions is not None:
        from ..core.directions import GLOBAL

        if (direction_groups == GLOBAL).any():
            overall = directions_row(GLOBAL, (layout.n_params,), layout.n_params)
        difference = relative_difference(directions.numeric[d_counted], directions.analytic[d_counted])
    else:
        difference = relative_difference(numeric[counted], an[counted])
    verdicts = [g.verdict for g in groups] + [bounds.verdict(difference)] + ([overall.verdict] if overall else [])
    settings = {**settings, "warn": bounds.warn, "fail": bounds.fail}
    return Report(difference=difference, verdict=_worst_verdict(verdicts), groups=groups,
                  entries=(idx, an, numeric, kinks), settings=settings, n_params=layout.n_params,
                  n_checked=len(idx), n_evaluations=n_evaluations, elapsed=elapsed, directions=direction_rows,
                  overall_directions=overall, diagnoses=diagnoses)
