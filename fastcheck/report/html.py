"""The report as one self-contained HTML page: its tables, and plots drawn as inline SVG.

No script, font or fetch: the page opens offline and can be mailed or archived beside a
nightly run. Every user-provided string (group names, settings) is escaped.

The plots show *where* a gradient is wrong:

- each group's difference on a log axis over the pass / warn / fail bands;
- per group, a histogram of the per-entry relative errors (decade bins), or of the
  per-direction ones for groups checked by random directions;
- for a 2-D group checked coordinate by coordinate that fails or has wrong entries, a heat
  map of the relative error over the matrix, max-pooled to at most ``HEAT_CELLS`` cells a
  side: a single wrong entry is one red cell, a transposed gradient a red matrix.

A report read by :meth:`Report.from_json` keeps only its worst entries, so its page has
the tables, the difference plot and the direction histograms, not the per-entry plots.
"""

from __future__ import annotations

import json
import math
from html import escape

import numpy as np

from ..core.finite import Bounds
from .text import group_rows, guarantee_lines, headline, kink_line

__all__ = ["report_html", "index_html", "HEAT_CELLS"]

#: A heat map has at most this many cells a side; larger matrices are max-pooled.
HEAT_CELLS = 64
#: The histograms' decade bins span [10**LOWEST, 1]; smaller errors (and 0) go in the first.
LOWEST = -16
#: Rows of the worst-entries table.
WORST_ROWS = 10

#: Per band: background shade, and the light and dark ends of its colour ramp.
_BAND = {"pass": ("#e6f4ea", "#eef8f0", "#8ccb98"), "warn": ("#fff3cd", "#fbd46d", "#d08c00"),
         "fail": ("#fde0dd", "#f4978e", "#a50f15")}
_KINK, _UNCHECKED = "#aaa3d6", "url(#fc-hatch)"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;max-width:1120px;margin:1.5em auto;
padding:0 1em}
h1{font-size:1.35em;margin:0 0 .4em}h2{font-size:1.1em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de}
.verdict{font-size:1.1em;font-weight:600;padding:.45em .8em;border-radius:5px;display:inline-block}
.pass{background:#e6f4ea}.warn{background:#fff3cd}.fail{background:#fde0dd}
table{border-collapse:collapse;font-size:13px}th,td{padding:2px 9px;text-align:left;white-space:nowrap}
th{border-bottom:1px solid #999}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:14px 22px}figure{margin:0}figcaption{font-size:12px;color:#57606a}
svg text{font:10px system-ui,sans-serif;fill:#333}.note{color:#57606a}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:-2px;border:1px solid #999}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
"""
_HATCH = ('<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
          '<pattern id="fc-hatch" width="4" height="4" patternUnits="userSpaceOnUse">'
          '<rect width="4" height="4" fill="#f4f4f4"/><path d="M0 4L4 0" stroke="#b0b0b0"/></pattern></defs></svg>')


def report_html(report, title: str | None = None) -> str:
    """The page for ``report`` (a :class:`fastcheck.Report`), headed ``title`` (default "fastcheck report")."""
    bounds = Bounds(warn=report.settings["warn"], fail=report.settings["fail"])
    head, coverage = headline(report)
    title = title or "fastcheck report"
    body = [f"<h1>{escape(title)}</h1>", f'<p class="verdict {report.verdict}">{escape(head)}</p>',
            f"<p>{escape(coverage)}</p>"]
    body += [f"<p>{escape(line)}</p>" for line in guarantee_lines(report)]
    if report.n_kinks:
        body.append(f"<p>{escape(kink_line(report))}</p>")
    if report.failing_groups:
        body.append(f"<p><strong>wrong: {escape(', '.join(report.failing_groups))}</strong></p>")
    body += ["<h2>Groups</h2>", _groups_table(report)]
    if report.diagnoses:
        body += ["<h2>Diagnosis</h2>", "<ul>"]
        body += [f"<li><code>{escape(name)}</code>: {escape(text)}</li>" for name, text in report.diagnoses.items()]
        body.append("</ul>")
    body += _worst_tables(report, bounds)
    body += ["<h2>Difference per group</h2>", _difference_plot(report, bounds)]
    body += _error_plots(report, bounds)
    settings = escape(json.dumps(report.settings, indent=1, sort_keys=True, default=str))
    body.append(f"<details><summary>settings</summary><pre>{settings}</pre></details>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>{_HATCH}\n"
            + "\n".join(body) + "\n</body></html>\n")


def index_html(title: str, headline: str, header, rows, links, verdicts) -> str:
    """A page of one table (a nightly run's summary): ``rows`` of texts, the first cell of
    each linked to ``links[k]`` when given, each row shaded by ``verdicts[k]``."""
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for row, link, verdict in zip(rows, links, verdicts):
        cells = [f'<a href="{escape(link)}">{escape(row[0])}</a>' if link else escape(row[0])]
        cells += [escape(cell) for cell in row[1:]]
        cls = f' class="{verdict}"' if verdict in _BAND else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = [f"<h1>{escape(title)}</h1>", f"<p><strong>{escape(headline)}</strong></p>", "\n".join(out),
            "</tbody></table>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------- tables
def _table(header, rows, classes=None) -> str:
    """``rows`` of ``(text, numeric)`` cells; texts are escaped here."""
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes else ""
        cells = "".join(f'<td class="n">{escape(t)}</td>' if numeric else f"<td>{escape(t)}</td>" for t, numeric in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    return "\n".join(out + ["</tbody></table>"])


def _groups_table(report) -> str:
    rows, classes = [], []
    for g in group_rows(report):
        checked = f"{g.checked} dirs" if g.method == "directions" else f"{g.checked:,}/{g.size:,}"
        method = g.method + (", escalated" if g.escalated else "")
        rows.append([(g.name, False), ("x".join(map(str, g.shape)) or "()", True), (checked, True),
                     (f"{g.difference:.2e}", True), (g.verdict, False), (str(g.wrong_entries), True),
                     (str(g.kinks), True), (method, False)])
        classes.append(g.verdict)
    return _table(["group", "shape", "checked", "difference", "verdict", "wrong", "kinks", "method"], rows, classes)


def _worst_tables(report, bounds) -> list[str]:
    out = []
    worst = report.worst(WORST_ROWS)
    if worst and worst[0].rel_error > 0:
        rows = [[(e.label, False), (f"{e.analytic:.6e}", True), (f"{e.numeric:.6e}", True),
                 (f"{e.abs_error:.2e}", True), (f"{e.rel_error:.2e}", True), ("yes" if e.kink else "", False)]
                for e in worst]
        out += ["<h2>Worst entries</h2>",
                _table(["entry", "analytic", "numeric", "abs error", "rel error", "kink"], rows,
                       [bounds.verdict(e.rel_error) for e in worst])]
    directions = report.worst_directions(5)
    if directions:
        rows = [[(d.group, False), (str(d.number), True), (f"{d.analytic:.6e}", True), (f"{d.numeric:.6e}", True),
                 (f"{d.rel_error:.2e}", True)] for d in directions]
        out += ["<h2>Worst directions</h2>",
                _table(["group", "direction", "u . grad", "central difference", "rel error"], rows,
                       [bounds.verdict(d.rel_error) for d in directions])]
    return out


# ---------------------------------------------------------------------- colours and axes
def _colour(value: float, bounds: Bounds) -> str:
    """A ramp per band, lighter to darker as ``value`` grows (log scale) within its band."""
    band = bounds.verdict(value)
    warn, fail = bounds.warn, bounds.fail
    lo, hi = {"pass": (10.0 ** LOWEST, warn), "warn": (warn, fail), "fail": (fail, 1.0)}[band]
    t = (math.log10(max(value, lo)) - math.log10(lo)) / max(math.log10(hi / lo), 1e-9) if value == value else 1.0
    _, light, dark = _BAND[band]
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
        return [_rect(a, y0, b - a, y1 - y0, _BAND[band][0]) for band, a, b in self.edges(bounds) if b > a]

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
def _difference_plot(report, bounds) -> str:
    """One row per group: its difference as a dot on a log axis over the verdict bands."""
    rows = [(g.name, g.difference, g.verdict) for g in group_rows(report)]
    rows.append(("overall", report.difference, report.verdict))
    positive = [d for _, d, _ in rows if d > 0 and math.isfinite(d)]
    lo = max(min([LOWEST] + [math.floor(math.log10(d)) for d in positive]), -20)
    left, width, row_h, top = 120, 460, 18, 18
    axis = _LogAxis(lo, 0, left, left + width)
    bottom = top + row_h * len(rows)
    parts = axis.bands(top, bottom, bounds) + axis.ticks(top, bottom)
    parts += [_text((a + b) / 2, top - 5, band, "middle") for band, a, b in axis.edges(bounds) if b - a > 24]
    for k, (name, d, verdict) in enumerate(rows):
        y = top + row_h * (k + 0.5)
        if k == len(rows) - 1:
            parts.append(f'<line x1="0" y1="{y - row_h / 2:.1f}" x2="{left + width + 80}" y2="{y - row_h / 2:.1f}" '
                         'stroke="#888" stroke-dasharray="3 3"/>')
        parts.append(_text(left - 8, y + 3.5, _short(name), "end"))
        parts.append(f'<circle cx="{axis(d):.1f}" cy="{y:.1f}" r="5" fill="{_BAND[verdict][2]}" stroke="#fff">'
                     f"<title>{escape(name)}: {d:.2e} ({verdict})</title></circle>")
        parts.append(_text(left + width + 8, y + 3.5, f"{d:.2e}"))
    return _svg(left + width + 70, bottom + 20, parts, "difference per group on a log axis", "differences")


def _histogram(caption: str, rel: np.ndarray, kink: np.ndarray, noun: str, bounds: Bounds) -> str:
    """Decade-binned counts of ``rel`` (kinks stacked in their own colour); bar heights on a log scale."""
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
        for count, fill, what in ((counted[b], _BAND[bounds.verdict(10.0 ** (b + LOWEST + 0.5))][2], ""),
                                  (kinked[b], _KINK, " crossing a kink")):
            if count:
                h = (math.log10(1 + total + count) - math.log10(1 + total)) * scale
                y -= h
                total += count
                parts.append(_rect(x0, y, x1 - x0, h, fill, title=f"{span}: {count:,} {noun}{what}"))
        if total:
            parts.append(_text((x0 + x1) / 2, y - 2, f"{total:,}", "middle", ' style="font-size:8px"'))
    return (f"<figure>{_svg(left + width + 16, top + height + 18, parts, caption, 'histogram')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _error_plots(report, bounds) -> list[str]:
    include = report.settings.get("kinks") == "include"
    figures, maps = [], []
    by_group: dict[str, list] = {}
    for d in report.directions:
        by_group.setdefault(d.group, []).append(d)
    for g in group_rows(report):
        if g.method == "coordinates" and report.has_entries and g.checked:
            positions, rel, kink = report.entry_errors(g.name)
            figures.append(_histogram(f"{g.name}: {g.checked:,} coordinates" + (f", {g.kinks} kinks" if g.kinks
                                      else ""), rel, kink, "entries", bounds))
            if len(g.shape) == 2 and (g.wrong_entries or g.verdict == "fail"):
                maps.append(_heat_map(g, positions, rel, np.zeros_like(kink) if include else kink, bounds))
        elif by_group.get(g.name):
            rows = by_group[g.name]
            figures.append(_histogram(f"{g.name}: {len(rows)} directions", np.array([d.rel_error for d in rows]),
                                      np.array([d.kink for d in rows]), "directions", bounds))
    out = []
    if maps:
        legend = "".join(f'<span class="sw" style="background:{c}"></span>{escape(t)}' for c, t in (
            (_colour(1e-12, bounds), f"< {bounds.warn:.0e}"), (_colour(bounds.warn, bounds), "warn"),
            (_colour(0.1, bounds), "fail"), (_KINK, "kink only"),
            ("repeating-linear-gradient(45deg,#f4f4f4 0 2px,#b0b0b0 2px 3px)", "not checked")))
        out += ["<h2>Where the errors are</h2>",
                f'<p class="note">Largest relative error per cell (hover a cell for its entries).{legend}</p>',
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


def _heat_map(g, positions, rel, kink, bounds) -> str:
    """The relative error of a 2-D group over its matrix, max-pooled to at most HEAT_CELLS a side."""
    n_rows, n_cols = g.shape
    value = np.full(g.size, -np.inf)
    value[positions[~kink]] = rel[~kink]
    checked = np.zeros(g.size, dtype=bool)
    checked[positions] = True
    br, bc = -(-n_rows // HEAT_CELLS), -(-n_cols // HEAT_CELLS)
    nr, nc = -(-n_rows // br), -(-n_cols // bc)

    def pool(a, fill, reduce):
        padded = np.full((nr * br, nc * bc), fill, dtype=a.dtype)
        padded[:n_rows, :n_cols] = a.reshape(n_rows, n_cols)
        return reduce(padded.reshape(nr, br, nc, bc), axis=(1, 3))

    top_value, any_checked = pool(value, -np.inf, np.max), pool(checked, False, np.any)
    cell = max(4, min(16, 320 // max(nr, nc)))
    left, top = 34, 14
    parts = []
    for i in range(nr):
        for j in range(nc):
            r0, c0 = i * br, j * bc
            r1, c1 = min(r0 + br, n_rows), min(c0 + bc, n_cols)
            single = (r1 - r0, c1 - c0) == (1, 1)
            where = f"{g.name}[{r0}, {c0}]" if single else f"{g.name}[{r0}:{r1}, {c0}:{c1}]"
            v = top_value[i, j]
            if v > -np.inf:
                fill, cls, note = _colour(v, bounds), bounds.verdict(v), f"{'' if single else 'max '}{v:.2e}"
            elif any_checked[i, j]:
                fill, cls, note = _KINK, "kink", "kink (left out)"
            else:
                fill, cls, note = _UNCHECKED, "unchecked", "not checked"
            parts.append(_rect(left + j * cell, top + i * cell, cell, cell, fill, cls, f"{where}: {note}"))
    step_r, step_c = (max(-(-n // 6), -(-24 // cell)) for n in (nr, nc))
    parts += [_text(left - 3, top + i * cell + min(cell, 10) - 1, str(i * br), "end") for i in range(0, nr, step_r)]
    parts += [_text(left + j * cell, top - 4, str(j * bc)) for j in range(0, nc, step_c)]
    wrong = f"{g.wrong_entries} wrong entr{'y' if g.wrong_entries == 1 else 'ies'}"
    caption = (f"{g.name} ({n_rows}x{n_cols}): {g.verdict}, {wrong}; rows 0\u2013{n_rows - 1} \u2193, "
               f"columns 0\u2013{n_cols - 1} \u2192, {br}x{bc} entries per cell")
    return (f"<figure>{_svg(left + nc * cell + 8, top + nr * cell + 6, parts, caption, 'heatmap')}"
            f"<figcaption>{escape(caption)}</figcaption></figure>")
