"""The report: overall and per-group differences, verdicts, worst entries, kinks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .finite import Bounds, relative_difference, relative_errors
from .layout import Layout

__all__ = ["Report", "GroupRow", "EntryRow", "build_report"]

#: How many worst entries ``to_json`` keeps.
JSON_WORST = 20
#: How many kink coordinates ``to_json`` lists (their count is always exact).
JSON_KINKS = 1000
#: An entry is wrong beyond rounding when its absolute error exceeds this many times the
#: rounding scale of a central difference, max(|J+|, |J-|) * 2**-52 / eps ...
NOISE_FACTOR = 1000.0
#: ... and this many times the median absolute error of its group.
MEDIAN_FACTOR = 100.0


@dataclass(frozen=True)
class GroupRow:
    """One parameter group's result.

    ``checked`` counts the coordinates compared, ``kinks`` those whose perturbation
    crossed a kink; ``difference`` covers the checked coordinates less the kinks,
    unless kinks were included. ``wrong_entries`` counts entries wrong beyond any
    rounding (see :func:`build_report`); one is enough for ``verdict`` to be ``"fail"``.
    """

    name: str
    shape: tuple[int, ...]
    size: int
    checked: int
    kinks: int
    difference: float
    verdict: str
    wrong_entries: int = 0


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


class Report:
    """The result of a gradient check; see :func:`fastcheck.check`.

    Attributes
    ----------
    difference : float
        ``||numeric - analytic|| / (||numeric|| + ||analytic||)`` over the checked
        coordinates (less kinks, unless included).
    verdict : {"pass", "warn", "fail"}
        Overall verdict: the worst of the overall and per-group verdicts.
    passed : bool
        True when nothing is ``"fail"``.
    groups : list of GroupRow
    kinks : list of EntryRow
        Coordinates whose perturbation crossed a kink.
    settings : dict
        eps, mode, engine, seed, bounds and the kink policy used.
    n_params, n_checked, n_evaluations, n_kinks : int
    elapsed : float
        Seconds spent, validation included.
    """

    def __init__(self, *, difference, verdict, groups, entries, settings, n_params, n_checked,
                 n_evaluations, elapsed, n_kinks=None):
        self.difference = float(difference)
        self.verdict = verdict
        self.groups = list(groups)
        self.settings = dict(settings)
        self.n_params = int(n_params)
        self.n_checked = int(n_checked)
        self.n_evaluations = int(n_evaluations)
        self.elapsed = float(elapsed)
        # entries: flat_index, analytic, numeric, kink as arrays sorted by flat_index
        self._index, self._analytic, self._numeric, self._kink = (np.asarray(a) for a in entries)
        self._starts = np.cumsum([0] + [g.size for g in self.groups])
        self.n_kinks = int(self._kink.sum()) if n_kinks is None else int(n_kinks)

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
        """The k coordinates with the largest relative error (kinks left out when excluded)."""
        candidates = np.arange(len(self._index))
        if self.settings.get("kinks") != "include":
            candidates = candidates[~self._kink]
        rel = relative_errors(self._numeric[candidates], self._analytic[candidates])
        absolute = np.abs(self._numeric[candidates] - self._analytic[candidates])
        order = np.lexsort((self._index[candidates], -absolute, -rel))[:k]
        return [self._row(int(p)) for p in candidates[order]]

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

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        s = self.settings
        head = {"pass": "PASSED", "warn": "PASSED with warnings", "fail": "FAILED"}[self.verdict]
        lines = [
            f"gradient check {head}: difference {self.difference:.2e} "
            f"(pass < {s['warn']:.0e} <= warn < {s['fail']:.0e} <= fail)",
            f"  {s['engine']} engine, mode {s['mode']}, eps {s['eps']:.0e}: "
            f"{self.n_checked:,} of {self.n_params:,} coordinates, "
            f"{self.n_evaluations:,} cost evaluations, {self.elapsed:.3g} s",
        ]
        rows = [("group", "shape", "checked", "kinks", "wrong", "difference", "verdict")]
        for g in self.groups:
            rows.append((g.name, "x".join(map(str, g.shape)) or "()", f"{g.checked}/{g.size}",
                         str(g.kinks), str(g.wrong_entries), f"{g.difference:.2e}", g.verdict))
        lines += [""] + _table(rows)
        worst = self.worst(5)
        if worst and worst[0].rel_error > 0:
            lines += ["", "worst entries:"]
            rows = [("entry", "analytic", "numeric", "abs error", "rel error")]
            for e in worst:
                rows.append((e.label, f"{e.analytic:.6e}", f"{e.numeric:.6e}", f"{e.abs_error:.2e}",
                             f"{e.rel_error:.2e}"))
            lines += _table(rows)
        if self.n_kinks:
            policy = "included in" if s.get("kinks") == "include" else "left out of"
            shown = ", ".join(e.label for e in self.kinks[:5])
            more = f" and {self.n_kinks - 5} more" if self.n_kinks > 5 else ""
            lines += ["", f"{self.n_kinks} coordinate(s) crossed a kink ({policy} the verdict): {shown}{more}"]
        if self.failing_groups:
            lines += ["", f"wrong: {', '.join(self.failing_groups)}"]
        if any(g.wrong_entries for g in self.groups):
            lines.append("  ('wrong' counts entries off by more than the fail bound and far beyond rounding)")
        return "\n".join(lines)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {
            "difference": self.difference,
            "verdict": self.verdict,
            "passed": self.passed,
            "settings": self.settings,
            "n_params": self.n_params,
            "n_checked": self.n_checked,
            "n_evaluations": self.n_evaluations,
            "elapsed": self.elapsed,
            "groups": [asdict(g) for g in self.groups],
            "worst": [asdict(e) for e in self.worst(JSON_WORST)],
            "n_kinks": self.n_kinks,
            "kinks": [asdict(e) for e in self.kinks[:JSON_KINKS]],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a report from :meth:`to_json`; it keeps the worst entries and kinks stored."""
        data = json.loads(text)
        groups = [GroupRow(**{**g, "shape": tuple(g["shape"])}) for g in data["groups"]]
        rows = {e["flat_index"]: e for e in data["worst"] + data["kinks"]}
        ordered = [rows[i] for i in sorted(rows)]
        entries = (
            np.array([e["flat_index"] for e in ordered], dtype=np.int64),
            np.array([e["analytic"] for e in ordered], dtype=np.float64),
            np.array([e["numeric"] for e in ordered], dtype=np.float64),
            np.array([e["kink"] for e in ordered], dtype=bool),
        )
        return cls(difference=data["difference"], verdict=data["verdict"], groups=groups, entries=entries,
                   settings=data["settings"], n_params=data["n_params"], n_checked=data["n_checked"],
                   n_evaluations=data["n_evaluations"], elapsed=data["elapsed"], n_kinks=data["n_kinks"])


def _table(rows) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(r[1:], widths[1:])]
        out.append("  " + "  ".join(cells))
    return out


def build_report(layout: Layout, analytic: np.ndarray, evaluations, *, bounds: Bounds, settings: dict,
                 elapsed: float) -> Report:
    """Compare ``analytic`` (flat, all of theta) with the engine's central differences.

    A group's verdict is its difference's band, except that a group with an entry
    wrong beyond rounding fails: an entry whose relative error is at least the fail
    bound and whose absolute error exceeds both ``NOISE_FACTOR`` times the rounding
    scale of its central difference and ``MEDIAN_FACTOR`` times its group's median
    absolute error. Without it one wrong entry of a large group (W2[3, 7] off by 10%)
    would be diluted by the norm into a ``warn``. Kinks are left out of the
    differences unless ``settings["kinks"] == "include"``.
    """
    idx = np.asarray(evaluations.indices, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    numeric = np.asarray(evaluations.numeric)[order]
    kinks = np.asarray(evaluations.kinks, dtype=bool)[order]
    an = analytic[idx]
    counted = np.ones_like(kinks) if settings.get("kinks") == "include" else ~kinks
    gid = layout.group_ids(idx)

    abs_error = np.abs(numeric - an)
    rounding = np.maximum(np.abs(evaluations.cost_plus), np.abs(evaluations.cost_minus))[order]
    rounding = rounding * np.finfo(np.float64).eps / settings["eps"]
    suspect = counted & (relative_errors(numeric, an) >= bounds.fail) & (abs_error > NOISE_FACTOR * rounding)

    groups, verdicts = [], []
    for position, g in enumerate(layout.groups):
        mine = gid == position
        use = mine & counted
        d = relative_difference(numeric[use], an[use])
        wrong = 0
        if (suspect & mine).any():
            wrong = int((suspect & mine & (abs_error > MEDIAN_FACTOR * np.median(abs_error[use]))).sum())
        verdict = "fail" if wrong else bounds.verdict(d) if mine.any() else "pass"
        groups.append(GroupRow(g.name, g.shape, g.size, int(mine.sum()), int((mine & kinks).sum()), d, verdict,
                               wrong))
        verdicts.append(verdict)
    difference = relative_difference(numeric[counted], an[counted])
    verdicts.append(bounds.verdict(difference))
    verdict = "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else "pass"

    settings = {**settings, "warn": bounds.warn, "fail": bounds.fail}
    return Report(difference=difference, verdict=verdict, groups=groups, entries=(idx, an, numeric, kinks),
                  settings=settings, n_params=layout.n_params, n_checked=len(idx),
                  n_evaluations=evaluations.n_evaluations, elapsed=elapsed)
