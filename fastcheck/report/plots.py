"""The report's plots, drawn as inline SVG: where a gradient is wrong.

- each group's difference on a log axis over the pass / warn / fail bands;
- per group, a histogram of the per-entry relative errors (decade bins), or of the
  per-direction ones for groups checked by random directions;
- for a group of two or more axes checked coordinate by coordinate that fails or has wrong
  entries, a heat map of the relative error over the matrix (a conv kernel ``(F, C, 3, 3)``
  as F rows of C*3*3), max-pooled to at most ``HEAT_CELLS`` cells a side: a single wrong
  entry is one red cell, a transposed gradient a red matrix. Entries are coloured by
  :func:`fastcheck.report.policy.entry_bands`: an error within rounding noise is never
  painted as a warning;
- per swept entry (:mod:`fastcheck.report.sweep`), its error against the step on log-log
  axes, beside the rounding scale: flat for a bug, a V for a right gradient.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from ..core.finite import Bounds
from .policy import ZERO_FACTOR
from .text import entries, group_rows

__all__ = ["difference_plot", "error_plots", "sweep_plot", "HEAT_CELLS", "LOWEST", "BAND"]

#: A heat map has at most this many cells a side; larger matrices are max-pooled.
HEAT_CELLS = 64
#: The histograms' decade bins span [10**LOWEST, 1]; smaller errors (and 0) go in the first.
LOWEST = -16

#: Per band: background shade, and the light and dark ends of its colour ramp.
BAND = {"pass": ("#e6f4ea", "#eef8f0", "#8ccb98"), "warn": ("#fff3cd", "#fbd46d", "#d08c00"),
        "fail": ("#fde0dd", "#f4978e", "#a50f15")}
_KINK, _UNCHECKED = "#aaa3d6", "url(#fc-hatch)"


def _colour(value: float, bounds: Bounds, band: str | None = None) -> str:
    """A ramp per band (``value``'s, unless given), lighter to darker as ``value`` grows (log
    scale) within it; a value beyond its given band takes the band's end."""
    band = band or bounds.verdict(value)
    warn, fail = bounds.warn, bounds.fail
    lo, hi = {"pass": (10.0 ** LOWEST, warn), "warn": (warn, fail), "fail": (fail, 1.0)}[band]
    t = (math.log10(max(value, lo)) - math.log10(lo)) / max(math.log10(hi / lo), 1e-9) if value == value else 1.0
    _, light, dark = BAND[band]
    t = min(max(t, 0.0), 1.0)
    mixed = (round((1 - t) * int(light[i:i + 2], 16) + t * int(dark[i:i + 2], 16)) for i in (1, 3, 5))
    return "#" + "".join(f"{c:02x}" for c in mixed)


class _LogAxis:
    """Maps values to x over the decades ``[10**lo, 10**hi]``, clamping (0 to the left, NaN to the right)."""

    def __init__(self, lo: int, hi: int, x0: float, x1: float):
        self.lo, self.hi, self.x0, self.x1 = lo, hi, x0, x1

    def __call__(self, value: float) -> float:
        e = math.log10(value) if value > 0 else self.lo if value == 0 else self.hi
        e = min(max(e, self.lo), self.hi)
        return self.x0 + (e - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)

    def edges(self, bounds: Bounds) -> list[tuple[str, float, float]]:
        warn, fail = self(bounds.warn), self(bounds.fail)
        return [("pass", self.x0, warn), ("warn", warn, fail), ("fail", fail, self.x1)]

    def bands(self, y0: float, y1: float, bounds: Bounds) -> list[str]:
        return [_rect(a, y0, b - a, y1 - y0, BAND[band][0]) for band, a, b in self.edges(bounds) if b > a]

    def ticks(self, y0: float, y1: float) -> list[str]:
        """Decade grid lines from y0 to y1 and labels below y1, every 1, 2 or 4 decades."""
        step = 1 if self.hi - self.lo <= 8 else 2 if self.hi - self.lo <= 16 else 4
        out = []
        for e in range(self.lo, self.hi + 1):
            x = self(10.0 ** e)
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1 + 3}" stroke="#0002"/>')
            if (self.hi - e) % step == 0:
                out.append(_text(x, y1 + 13, "1" if e == 0 else f"1e{e}", "middle"))
        return out


def _rect(x, y, w, h, fill, cls="", title="") -> str:
    attrs = f' class="{cls}"' if cls else ""
    inner = f"<title>{escape(title)}</title></rect>" if title else "</rect>"
    return f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}"{attrs}>{inner}'


def _text(x, y, text, anchor="start", extra="") -> str:
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _n(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


def _svg(width, height, parts, label, cls) -> str:
    return (f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">'
            + "".join(parts) + "</svg>")


def _short(name: str, n: int = 16) -> str:
    return name if len(name) <= n else name[:n - 1] + "\u2026"


# ---------------------------------------------------------------------- plots
def difference_plot(report, bounds) -> str:
    """One row per group: its difference as a dot on a log axis over the verdict bands."""
    rows = [(g.name, g.difference, g.verdict, g.zero_to_rounding) for g in group_rows(report)]
    rows.append(("overall", report.difference, report.verdict, False))
    positive = [d for _, d, _, _ in rows if d > 0 and math.isfinite(d)]
    lo = max(min([LOWEST] + [math.floor(math.log10(d)) for d in positive]), -20)
    left, width, row_h, top = 120, 460, 18, 18
    axis = _LogAxis(lo, 0, left, left + width)
    bottom = top + row_h * len(rows)
    parts = axis.bands(top, bottom, bounds) + axis.ticks(top, bottom)
    parts += [_text((a + b) / 2, top - 5, band, "middle") for band, a, b in axis.edges(bounds) if b - a > 24]
    for k, (name, d, verdict, zero) in enumerate(rows):
        y = top + row_h * (k + 0.5)
        if k == len(rows) - 1:
            parts.append(f'<line x1="0" y1="{y - row_h / 2:.1f}" x2="{left + width + 80}" y2="{y - row_h / 2:.1f}" '
                         'stroke="#888" stroke-dasharray="3 3"/>')
        parts.append(_text(left - 8, y + 3.5, _short(name), "end"))
        # a gradient zero to rounding passes whatever its difference (rounding over rounding): say so, not the number
        title = (f"{name}: {verdict} (zero): zero to rounding, difference {d:.2e}" if zero
                 else f"{name}: {d:.2e} ({verdict})")
        parts.append(f'<circle cx="{axis(d):.1f}" cy="{y:.1f}" r="5" fill="{BAND[verdict][2]}" stroke="#fff">'
                     f"<title>{escape(title)}</title></circle>")
        parts.append(_text(left + width + 8, y + 3.5, f"{verdict} (zero)" if zero else f"{d:.2e}"))
    return _svg(left + width + 70, bottom + 20, parts, "difference per group on a log axis", "differences")


def _histogram(caption: str, rel: np.ndarray, kink: np.ndarray, noun: tuple[str, str], bounds: Bounds) -> str:
    """Decade-binned counts of ``rel`` (kinks stacked in their own colour); bar heights on a log scale.

    ``noun``: what is counted, one and many (``("entry", "entries")``)."""
    with np.errstate(divide="ignore"):
        decade = np.floor(np.log10(np.maximum(rel, 10.0 ** LOWEST)))
    decade = np.nan_to_num(decade, nan=-1.0)  # NaN errors count in the top bin
    bins = np.clip(decade, LOWEST, -1).astype(np.int64) - LOWEST
    n_bins = -LOWEST
    counted = np.bincount(bins[~kink], minlength=n_bins)
    kinked = np.bincount(bins[kink], minlength=n_bins)
    left, width, height, top = 16, 16 * n_bins, 90, 14
    axis = _LogAxis(LOWEST, 0, left, left + width)
    scale = height / math.log10(1 + max(int((counted + kinked).max()), 1))
    parts = axis.bands(top, top + height, bounds) + axis.ticks(top + height, top + height)
    for b in range(n_bins):
        x0, x1 = axis(10.0 ** (b + LOWEST)) + 1, axis(10.0 ** (b + LOWEST + 1)) - 1
        span = f"< 1e{b + LOWEST + 1}" if b == 0 else f"[1e{b + LOWEST}, 1e{b + LOWEST + 1})"
        y = top + height
        total = 0
        for count, fill, what in ((counted[b], BAND[bounds.verdict(10.0 ** (b + LOWEST + 0.5))][2], ""),
                                  (kinked[b], _KINK, " crossing a kink")):
            if count:
                h = (math.log10(1 + total + count) - math.log10(1 + total)) * scale
                y -= h
                total += count
                parts.append(_rect(x0, y, x1 - x0, h, fill, title=f"{span}: {entries(count, *noun)}{what}"))
        if total:
            parts.append(_text((x0 + x1) / 2, y - 2, f"{total:,}", "middle", ' style="font-size:8px"'))
    return (f"<figure>{_svg(left + width + 16, top + height + 18, parts, caption, 'histogram')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def error_plots(report, bounds) -> list[str]:
    include = report.settings.get("kinks") == "include"
    figures, maps = [], []
    by_group: dict[str, list] = {}
    for d in report.directions:
        by_group.setdefault(d.group, []).append(d)
    for g in group_rows(report):
        if g.method == "coordinates" and report.has_entries and g.checked:
            positions, rel, kink = report.entry_errors(g.name)
            figures.append(_histogram(f"{g.name}: {g.checked:,} coordinates" + (f", {g.kinks} kinks" if g.kinks
                                      else ""), rel, kink, ("entry", "entries"), bounds))
            if len(g.shape) >= 2 and (g.wrong_entries or g.verdict == "fail"):
                maps.append(_heat_map(g, positions, rel, np.zeros_like(kink) if include else kink,
                                      report.entry_bands(g.name, bounds), bounds))
        elif by_group.get(g.name):
            rows = by_group[g.name]
            figures.append(_histogram(f"{g.name}: {len(rows)} directions", np.array([d.rel_error for d in rows]),
                                      np.array([d.kink for d in rows]), ("direction", "directions"), bounds))
    out = []
    if maps:
        legend = "".join(f'<span class="sw" style="background:{c}"></span>{escape(t)}' for c, t in (
            (_colour(1e-12, bounds), f"< {bounds.warn:.0e}, or within rounding"),
            (_colour(bounds.warn, bounds), "warn"),
            (_colour(0.1, bounds), "fail"), (_KINK, "kink only"),
            ("repeating-linear-gradient(45deg,#f4f4f4 0 2px,#b0b0b0 2px 3px)", "not checked")))
        out += ["<h2>Where the errors are</h2>",
                f'<p class="note">Worst entry per cell, by band then relative error (hover a cell for its entries); '
                f"an error within {ZERO_FACTOR:g} rounding scales of a central difference counts as rounding."
                f"{legend}</p>",
                '<div class="plots">' + "".join(maps) + "</div>"]
    out.append("<h2>Relative error per entry" + (" and per direction" if report.directions else "") + "</h2>")
    if not report.has_entries:
        out.append('<p class="note">This report was read from JSON, which keeps only the worst entries and the '
                   "kinks: the per-entry histograms and heat maps need the report built in process.</p>")
    if figures:
        out.append('<p class="note">Counts per decade of |numeric - analytic| / (|numeric| + |analytic|), '
                   "over the verdict bands; bar heights on a log scale.</p>")
        out.append('<div class="plots">' + "".join(figures) + "</div>")
    return out


def _heat_map(g, positions, rel, kink, bands, bounds) -> str:
    """The relative error of a group over its matrix (axis 0 by the other axes flattened),
    max-pooled to at most HEAT_CELLS a side: each cell shows its worst entry by band, then
    by relative error."""
    n_rows, n_cols = g.shape[0], g.size // g.shape[0]
    severity = np.full(g.size, -1)  # -1 unchecked or a kink left out; then pass, warn, fail
    severity[positions[~kink]] = (bands[~kink] == "warn") + 2 * (bands[~kink] == "fail")
    value = np.full(g.size, -np.inf)
    value[positions[~kink]] = np.nan_to_num(rel[~kink], nan=np.inf)
    checked = np.zeros(g.size, dtype=bool)
    checked[positions] = True
    br, bc = -(-n_rows // HEAT_CELLS), -(-n_cols // HEAT_CELLS)
    nr, nc = -(-n_rows // br), -(-n_cols // bc)

    def cells(a, fill):
        """``a`` laid out as (nr, nc, br * bc): the entries of each cell on the last axis."""
        padded = np.full((nr * br, nc * bc), fill, dtype=a.dtype)
        padded[:n_rows, :n_cols] = a.reshape(n_rows, n_cols)
        return padded.reshape(nr, br, nc, bc).transpose(0, 2, 1, 3).reshape(nr, nc, br * bc)

    by_severity, by_value = cells(severity, -1), cells(value, -np.inf)
    worst = np.lexsort((by_value, by_severity), axis=-1)[..., -1:]  # the last by severity, then value
    top_severity = np.take_along_axis(by_severity, worst, -1)[..., 0]
    top_value = np.take_along_axis(by_value, worst, -1)[..., 0]
    any_checked = cells(checked, False).any(axis=-1)
    cell = max(4, min(16, 320 // max(nr, nc)))
    left, top = 34, 14
    parts = []
    for i in range(nr):
        for j in range(nc):
            r0, c0 = i * br, j * bc
            r1, c1 = min(r0 + br, n_rows), min(c0 + bc, n_cols)
            single = (r1 - r0, c1 - c0) == (1, 1)
            where = f"{g.name}[{r0}, {c0}]" if single else f"{g.name}[{r0}:{r1}, {c0}:{c1}]"
            if single and len(g.shape) > 2:  # the entry's own index too
                where += f": {g.name}[{', '.join(map(str, np.unravel_index(r0 * n_cols + c0, g.shape)))}]"
            v = top_value[i, j]
            if top_severity[i, j] >= 0:
                cls = ("pass", "warn", "fail")[top_severity[i, j]]
                note = f"{'' if single else 'max '}{v:.2e}" + (" (rounding)" if cls == "pass" and v >= bounds.warn
                                                                else "")
                fill = _colour(v, bounds, cls)
            elif any_checked[i, j]:
                fill, cls, note = _KINK, "kink", "kink (left out)"
            else:
                fill, cls, note = _UNCHECKED, "unchecked", "not checked"
            parts.append(_rect(left + j * cell, top + i * cell, cell, cell, fill, cls, f"{where}: {note}"))
    step_r, step_c = (max(-(-n // 6), -(-24 // cell)) for n in (nr, nc))
    parts += [_text(left - 3, top + i * cell + min(cell, 10) - 1, str(i * br), "end") for i in range(0, nr, step_r)]
    parts += [_text(left + j * cell, top - 4, str(j * bc)) for j in range(0, nc, step_c)]
    wrong = entries(g.wrong_entries, "wrong entry", "wrong entries")
    shape = "x".join(map(str, g.shape)) + (f" as {n_rows}x{n_cols}" if len(g.shape) > 2 else "")
    columns = "columns" if len(g.shape) == 2 else f"columns (axes 1\u2013{len(g.shape) - 1} flattened)"
    caption = (f"{g.name} ({shape}): {g.verdict}, {wrong}; rows 0\u2013{n_rows - 1} \u2193, "
               f"{columns} 0\u2013{n_cols - 1} \u2192, {br}x{bc} entries per cell")
    return (f"<figure>{_svg(left + nc * cell + 8, top + nr * cell + 6, parts, caption, 'heatmap')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


#: The colour of a sweep's error line, per kind.
_SWEEP = {"bug": BAND["fail"][2], "unresolved": BAND["warn"][2], "rounding": "#2f6fb0", "truncation": "#2f6fb0",
          "kink": "#2f6fb0"}


def sweep_plot(row) -> str:
    """One entry's step sweep: its error against eps on log-log axes, with the rounding scale
    (dashed, slope -1) and the check's own step (a vertical line). A flat line is a bug; a
    V whose right arm rises with eps is truncation, whose left arm rises as eps falls is rounding."""
    steps, errors = np.asarray(row.steps), np.asarray(row.errors)
    rounding = np.asarray(row.rounding)
    values = [v for v in np.concatenate([errors, rounding]) if v > 0 and math.isfinite(v)]
    lo_y = math.floor(math.log10(min(values))) if values else -16
    hi_y = math.ceil(math.log10(max(values))) if values else 0
    hi_y = max(hi_y, lo_y + 1)
    lo_x = math.floor(math.log10(min(steps.min(), row.eps)))
    hi_x = math.ceil(math.log10(max(steps.max(), row.eps)))
    left, top, width, height = 44, 10, 220, 120
    x_axis = _LogAxis(lo_x, hi_x, left, left + width)

    def y(v):
        e = min(max(math.log10(v), lo_y), hi_y) if v > 0 else lo_y
        return top + height - (e - lo_y) / (hi_y - lo_y) * height

    parts = [_rect(left, top, width, height, "#fafafa")] + x_axis.ticks(top, top + height)
    step_y = max(1, -(-(hi_y - lo_y) // 5))
    for e in range(lo_y, hi_y + 1, step_y):
        parts.append(f'<line x1="{left}" y1="{y(10.0 ** e):.1f}" x2="{left + width}" y2="{y(10.0 ** e):.1f}" '
                     'stroke="#0001"/>')
        parts.append(_text(left - 4, y(10.0 ** e) + 3, f"1e{e}", "end"))
    x = x_axis(row.eps)
    parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" stroke="#888" '
                 f'stroke-dasharray="2 2"><title>the check\'s eps = {row.eps:.1e}</title></line>')
    for series, colour, dash in ((rounding, "#999", ' stroke-dasharray="4 3"'), (errors, _SWEEP[row.kind], "")):
        points = [(x_axis(h), y(v)) for h, v in zip(steps, series) if v > 0 and math.isfinite(v)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
    for h, v in zip(steps, errors):
        if v > 0 and math.isfinite(v):
            parts.append(f'<circle cx="{x_axis(h):.1f}" cy="{y(v):.1f}" r="3" fill="{_SWEEP[row.kind]}">'
                         f"<title>eps = {h:.0e}: error {v:.2e}</title></circle>")
    parts.append(_text(left + width / 2, top + height + 26, "eps", "middle"))
    caption = f"{row.label}: {row.kind}; error (dots) and rounding scale |J| 2^-52 / eps (dashed) against eps"
    return (f"<figure>{_svg(left + width + 10, top + height + 32, parts, caption, 'sweep')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>")
