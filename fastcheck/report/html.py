"""The report as one self-contained HTML page: its header, tables and notes, and the plots
of :mod:`fastcheck.report.plots` inline.

No script, font or fetch: the page opens offline and can be mailed or archived beside a
nightly run. Every user-provided string (group names, settings) is escaped.

The page opens with a header naming what was checked, the fastcheck version, the date and
the machine the report was built on (:attr:`Report.produced`); then the verdict, the group,
diagnosis, notes and worst-entry tables, the step sweep (its sentences and a plot of each
entry's error against eps), and the plots. A report read by
:meth:`Report.from_json` keeps only its worst entries, so its page has the tables, the
difference plot and the direction histograms, not the per-entry plots.
"""

from __future__ import annotations

import json
from html import escape

import numpy as np

from ..core.finite import Bounds
from .plots import BAND, HEAT_CELLS, difference_plot, error_plots, sweep_plot
from .policy import entry_bands
from .text import (
    all_kinks,
    entries,
    group_rows,
    guarantee_lines,
    has_errors,
    headline,
    kink_line,
    note_lines,
    sweep_lines,
    unwrong_line,
)

__all__ = ["report_html", "index_html", "default_title", "HEAT_CELLS"]

#: Rows of the worst-entries table.
WORST_ROWS = 10

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


def default_title(report, problem: str | None = None) -> str:
    """What was checked, as far as the report knows: a layer check of its inputs, or a
    gradient check of its groups; of ``problem`` (``"mypkg.problems:small_net"``), when given,
    with its groups after it."""
    names = [g.name for g in report.groups]
    shown = ", ".join(names[:8]) + (", \u2026" if len(names) > 8 else "")
    what = "layer check of" if report.settings.get("layer") else "gradient check of"
    if problem:
        return f"fastcheck: {what} {problem}: {shown} ({report.n_params:,} parameters)"
    return f"fastcheck: {what} {shown} ({report.n_params:,} parameters)"


def _produced(report) -> str:
    made = report.produced
    if not made:
        return "built by an older fastcheck (no version, date or machine recorded)"
    return f"fastcheck {made.get('fastcheck', '?')} \u00b7 {made.get('date', '?')} \u00b7 {made.get('machine', '?')}"


def report_html(report, title: str | None = None) -> str:
    """The page for ``report`` (a :class:`fastcheck.Report`), headed ``title`` (default: what
    was checked, see :func:`default_title`)."""
    bounds = Bounds(warn=report.settings["warn"], fail=report.settings["fail"])
    head, coverage = headline(report)
    title = title or default_title(report)
    body = [f"<header><h1>{escape(title)}</h1>", f'<p class="note">{escape(_produced(report))}</p></header>',
            f'<p class="verdict {report.verdict}">{escape(head)}</p>', f"<p>{escape(coverage)}</p>"]
    body += [f"<p>{escape(line)}</p>" for line in guarantee_lines(report)]
    if report.n_kinks:
        body.append(f"<p>{escape(kink_line(report))}</p>")
    if report.failing_groups:
        body.append(f"<p><strong>wrong: {escape(', '.join(report.failing_groups))}</strong></p>")
    if unwrong_line(report):
        body.append(f'<p class="note">{escape(unwrong_line(report))}</p>')
    body += ["<h2>Groups</h2>", _groups_table(report)]
    for heading, lines in (("Diagnosis", [f"<code>{escape(name)}</code>: {escape(text)}"
                                          for name, text in report.diagnoses.items()]),
                           ("Notes", [escape(line) for line in note_lines(report)])):
        if lines:
            body += [f"<h2>{heading}</h2>", "<ul>"] + [f"<li>{line}</li>" for line in lines] + ["</ul>"]
    body += _worst_tables(report, bounds)
    body += _sweep_section(report)
    body += ["<h2>Difference per group</h2>", difference_plot(report, bounds)]
    body += error_plots(report, bounds)
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
        cls = f' class="{verdict}"' if verdict in BAND else ""
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
        checked = entries(g.checked, "dir", "dirs") if g.method == "directions" else f"{g.checked:,}/{g.size:,}"
        method = g.method + (", escalated" if g.escalated else "")
        unjudged = all_kinks(report, g)
        verdict = g.verdict + (" (zero to rounding)" if g.zero_to_rounding else "") + (
            f" (all {g.checked} entries are kinks)" if unjudged else "")
        rows.append([(g.name, False), ("x".join(map(str, g.shape)) or "()", True), (checked, True),
                     ("-" if unjudged else f"{g.difference:.2e}", True), (verdict, False), (str(g.wrong_entries), True),
                     (str(g.kinks), True), (method, False)])
        classes.append(g.verdict)
    return _table(["group", "shape", "checked", "difference", "verdict", "wrong", "kinks", "method"], rows, classes)


def _sweep_section(report) -> list[str]:
    """The step sweep: what it covered, each entry's sentence and its error against eps."""
    lines = sweep_lines(report)
    if not lines:
        return []
    head, sentences = lines[0], lines[1:]
    return (["<h2>Step sweep</h2>", f'<p class="note">{escape(head.rstrip(":"))}.</p>', "<ul>"]
            + [f"<li>{escape(s.strip())}</li>" for s in sentences] + ["</ul>"]
            + ['<div class="plots">' + "".join(sweep_plot(row) for row in report.sweeps) + "</div>"])


def _worst_tables(report, bounds) -> list[str]:
    out = []
    worst = report.worst(WORST_ROWS)
    if has_errors(worst):
        rows = [[(e.label, False), (f"{e.analytic:.6e}", True), (f"{e.numeric:.6e}", True),
                 (f"{e.abs_error:.2e}", True), (f"{e.rel_error:.2e}", True),
                 ("tie" if e.tie else "yes" if e.kink else "", False)] for e in worst]
        bands = entry_bands(np.array([e.rel_error for e in worst]), np.array([e.abs_error for e in worst]),
                            np.array([np.nan if e.rounding is None else e.rounding for e in worst]), bounds)
        out += ["<h2>Worst entries</h2>",
                _table(["entry", "analytic", "numeric", "abs error", "rel error", "kink"], rows, list(bands))]
    directions = report.worst_directions(5)
    if directions:
        rows = [[(d.group, False), (str(d.number), True), (f"{d.analytic:.6e}", True), (f"{d.numeric:.6e}", True),
                 (f"{d.rel_error:.2e}", True)] for d in directions]
        out += ["<h2>Worst directions</h2>",
                _table(["group", "direction", "u . grad", "central difference", "rel error"], rows,
                       [bounds.verdict(d.rel_error) for d in directions])]
    return out


