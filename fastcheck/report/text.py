"""The report as text: the headline, the group and worst-entry tables, and the lines on
guarantees, kinks and diagnoses.

``str(report)`` is :func:`report_text`; the HTML page (:mod:`fastcheck.report.html`) takes
its headline and lines from here too, so the two never disagree. :func:`text_table` draws
every plain-text table of fastcheck (the report's, the nightly summary and history, the
benchmark table).
"""

from __future__ import annotations

from .policy import MEDIAN_FACTOR, NOISE_FACTOR

__all__ = ["text_table", "entries", "perturbed_costs", "report_text", "group_rows", "headline", "kink_line",
           "guarantee_lines", "note_lines", "verdict_cell", "all_kinks", "has_errors", "step_text", "sweep_lines",
           "unwrong_line"]

#: The verdict as the headline says it.
HEADLINES = {"pass": "PASSED", "warn": "PASSED with warnings", "fail": "FAILED"}
#: Rows of the worst-entries table of the text report.
WORST_ROWS = 5
#: Kink coordinates named in the kink line.
KINKS_SHOWN = 5



def entries(n: int, one: str = "entry", many: str = "entries") -> str:
    """``'1 entry'``, ``'3 entries'`` (``one``/``many``: another noun's two forms)."""
    return f"{n:,} {one if n == 1 else many}"

def perturbed_costs(engine: str, n: int) -> str:
    """How a report or a plan counts its J(theta +- eps e_i): the fast engines compute them from changes,
    the others evaluate the cost."""
    how = INCREMENTAL.get(engine)
    return f"{n:,} perturbed costs computed {how}" if how else f"{n:,} cost evaluations"


#: The engines that compute perturbed costs from the changes of one evaluation, and how they say it.
INCREMENTAL = {"traced": "from the trace", "batched": "from the base pass"}


def text_table(rows, align: str | None = None, indent: str = "  ") -> list[str]:
    """Rows of cells (strings; the first row is the header) as lines of a table.

    Parameters
    ----------
    rows : sequence of sequences of str
    align : str, optional
        One letter per column, ``"l"`` (left-aligned) or ``"r"`` (right-aligned);
        default: every column left-aligned.
    indent : str
        Put before every line.

    Returns
    -------
    list of str
        One line per row, columns two spaces apart, trailing spaces dropped.
    """
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    align = align or "l" * len(widths)
    return [indent + "  ".join(cell.rjust(w) if a == "r" else cell.ljust(w)
                               for cell, w, a in zip(r, widths, align)).rstrip() for r in rows]


def group_rows(report) -> list:
    """The report's group rows, then the row of the directions over all of theta, if any."""
    return report.groups + ([report.overall_directions] if report.overall_directions else [])


def report_text(report) -> str:
    """The readable report: headline, group table, guarantee, worst entries, kinks, diagnoses."""
    head, coverage = headline(report)
    lines = [head, "  " + coverage]
    rows = [("group", "shape", "checked", "kinks", "wrong", "difference", "verdict")]
    for g in group_rows(report):
        checked = entries(g.checked, "dir", "dirs") if g.method == "directions" else f"{g.checked}/{g.size}"
        unjudged = all_kinks(report, g)
        rows.append((g.name, "x".join(map(str, g.shape)) or "()", checked, str(g.kinks),
                     str(g.wrong_entries), "-" if unjudged else f"{g.difference:.2e}",
                     verdict_cell(g) + (f" (all {g.checked} entries are kinks)" if unjudged else "")))
    lines += [""] + text_table(rows, "l" + "r" * 6)
    guarantee = guarantee_lines(report)
    if guarantee:
        lines += [""] + guarantee
    worst = report.worst(WORST_ROWS)
    if has_errors(worst):
        lines += ["", "worst entries:"]
        rows = [("entry", "analytic", "numeric", "abs error", "rel error")]
        for e in worst:
            rows.append((e.label, f"{e.analytic:.6e}", f"{e.numeric:.6e}", f"{e.abs_error:.2e}",
                         f"{e.rel_error:.2e}"))
        lines += text_table(rows, "l" + "r" * 4)
    if report.n_kinks:
        lines += ["", kink_line(report)]
    if report.diagnoses:
        lines += ["", "diagnosis:"] + [f"  {name}: {text}" for name, text in report.diagnoses.items()]
    sweep = sweep_lines(report)
    if sweep:
        lines += [""] + sweep
    notes = note_lines(report)
    if notes:
        lines += ["", "notes:"] + [f"  {line}" for line in notes]
    if report.failing_groups:
        lines += ["", f"wrong: {', '.join(report.failing_groups)}"]
    if any(g.wrong_entries for g in report.groups):
        lines.append("  ('wrong' counts entries off by more than the fail bound and far beyond rounding)")
    unwrong = unwrong_line(report)
    if unwrong:
        lines.append(f"  {unwrong}")
    return "\n".join(lines)


def unwrong_line(report) -> str | None:
    """Why groups fail with no entry counted wrong (a verdict and a count that seem to disagree), or None."""
    names = [g.name for g in report.groups if g.verdict == "fail" and not g.wrong_entries and g.method == "coordinates"
             and g.checked and g.name not in report.diagnoses]
    if not names:
        return None
    return (f"({', '.join(names)}: failed by the difference, with no entry counted wrong: entries off by the fail "
            f"bound beyond rounding, none by the margin that fails a group alone ({NOISE_FACTOR:g} rounding scales "
            f"and {MEDIAN_FACTOR:g} x the group's median error): a bug spread over many small entries, or a cost "
            "noisier than float64's rounding (see the step sweep))")


def verdict_cell(row) -> str:
    """A group's verdict as the tables show it, with how it was reached when that is not its difference alone."""
    return row.verdict + (" (escalated)" if row.escalated else "") + (" (zero)" if row.zero_to_rounding else "")


def all_kinks(report, row) -> bool:
    """Whether every checked entry of a coordinate row is a kink left out of the verdict: nothing was judged."""
    return (row.method == "coordinates" and row.checked > 0 and row.kinks == row.checked
            and report.settings.get("kinks") != "include")


def has_errors(worst) -> bool:
    """Whether the worst entries are worth a table: some error, or a NaN (never hidden)."""
    return bool(worst) and not worst[0].rel_error <= 0


def note_lines(report) -> list[str]:
    """What the report notes that is not an error: what a budget held, why the batched or the traced
    engine was not used, why no worker ran, how a layer check was made, the gradient keys left aside,
    and per group a gradient zero to rounding or ties in a max."""
    settings = report.settings
    lines = []
    if settings.get("layer"):
        lines.append(f"layer check: {settings['layer']}")
    if settings.get("batched_not_used"):
        lines.append(f"batched engine not used: {settings['batched_not_used']}")
    if settings.get("budget_fit"):
        lines.append(settings["budget_fit"])
    if settings.get("traced_not_used"):
        lines.append(f"traced engine not used: {settings['traced_not_used']}")
    if settings.get("in_process"):
        lines.append(f"workers: none ran, {settings.get('n_jobs', 'several')} asked for: the job ran in this "
                     f"process ({settings['in_process']})")
    if settings.get("full_passes"):
        lines.append(f"full forward passes: {settings['full_passes']:,} coordinate(s), where the batched engine's "
                     "exact identities overflowed (saturated units), evaluated as the reference engine does")
    aside = settings.get("grads_not_parameters")
    if aside:
        lines.append(f"gradient keys left aside, not parameters: {', '.join(map(str, aside))}")
    return lines + [f"{name}: {text}" for name, text in report.notes.items()]


def headline(report) -> list[str]:
    """The verdict line and the settings-and-coverage line."""
    s = report.settings
    return [f"gradient check {HEADLINES[report.verdict]}{_where(report)}: difference {report.difference:.2e} "
            f"(pass < {s['warn']:.0e} <= warn < {s['fail']:.0e} <= fail)",
            f"{s['engine']} engine, mode {s['mode']}, {step_text(s)}: " + _coverage(report)
            + f", {perturbed_costs(s['engine'], report.n_evaluations)}, {report.elapsed:.3g} s"]


def _where(report) -> str:
    """`` in W2, b2``: the groups the verdict comes from, when the overall difference's band is not it
    (one wrong entry fails its group, whatever the norm of all of theta says)."""
    s = report.settings
    band = "fail" if report.difference >= s["fail"] else "warn" if report.difference >= s["warn"] else "pass"
    if band == report.verdict or report.verdict == "pass":
        return ""
    names = [g.name for g in group_rows(report) if g.verdict == report.verdict]
    return f" in {', '.join(names)}" if names else ""


def step_text(settings) -> str:
    """The step as the headline says it: ``eps 1e-07``, ``eps auto (6.1e-06 to 1.8e-03 per coordinate)``,
    and the stencil when it is not the central difference's."""
    eps = settings["eps"]
    if eps == "auto":
        lo, hi = settings.get("auto_steps", (float("nan"),) * 2)
        text = f"eps auto ({lo:.1e} per coordinate)" if lo == hi else f"eps auto ({lo:.1e} to {hi:.1e} per coordinate)"
    else:
        text = f"eps {eps:.0e}"
    stencil = settings.get("stencil", 2)
    return text + (f", {stencil}-point stencil" if stencil != 2 else "")


def sweep_lines(report) -> list[str]:
    """The step sweep: what it covered, then one sentence per swept entry."""
    info = report.settings.get("sweep")
    if not report.sweeps or not info:
        return []
    steps = info["steps"]
    head = (f"step sweep ({info['rule']}: {entries(info['entries'])} at eps = "
            f"{steps[0]:.0e} to {steps[-1]:.0e}, {info['evaluations']:,} cost evaluations; it explains the verdict, "
            "never changes it):")
    return [head] + [f"  {row.sentence}" for row in report.sweeps]


def kink_line(report) -> str:
    """How many coordinates crossed a kink, whether they count, and the first few of them."""
    policy = "included in" if report.settings.get("kinks") == "include" else "left out of"
    shown = ", ".join(e.label for e in report.kinks[:KINKS_SHOWN])
    more = f" and {report.n_kinks - KINKS_SHOWN} more" if report.n_kinks > KINKS_SHOWN else ""
    ties = f"; {report.n_ties} of them at a tie (see the notes)" if report.n_ties else ""
    return f"{report.n_kinks} coordinate(s) crossed a kink ({policy} the verdict): {shown}{more}{ties}"


#: How the coverage line names each distribution of directions (a report without one predates the choice: Gaussian).
DIRECTION_KINDS = {"signs": "random rank-one sign", "gaussian": "random Gaussian"}


def _coverage(report) -> str:
    s = report.settings
    if s["mode"] == "directions":
        n, kind = s["n_directions"], DIRECTION_KINDS.get(s.get("distribution", "gaussian"), "random")
        text = f"{n} {kind} directions per group and {n} over all of theta"
        return text + (f", then {report.n_checked:,} coordinates" if report.n_checked else "")
    return f"{report.n_checked:,} of {report.n_params:,} coordinates ({report.n_checked / report.n_params:.2%})"


def _probability(p: float) -> str:
    """The probability of catching a bug in a sampled group, as a percentage: never 100% (that is a full check)."""
    shown = f"{p:.1%}"
    return "> 99.9%" if shown == "100.0%" else shown


def guarantee_lines(report) -> list[str]:
    """What a check of less than every coordinate vouches for: the subset guarantee, the
    groups narrowed down by bisection, the groups checked by directions only (none in full mode)."""
    mode = report.settings["mode"]
    if mode == "full":
        return []
    f = report.guarantee_fraction
    lines = []
    sizes = {g.name: (g.checked, g.size) for g in report.groups}
    # a group is "in full" by its count: a probability can round to 1.0 on a group that was sampled
    partial = {name: p for name, p in report.guarantee(f).items() if sizes[name][0] < sizes[name][1]}
    if partial:
        shown = "; ".join(f"{name} {_probability(p)}" for name, p in partial.items())
        others = "other groups were checked in full" if mode == "subset" else "groups of a random sample of entries"
        lines.append(f"guarantee: a bug making >= {f:.0%} of a group's entries wrong would have been caught "
                     f"with probability at least: {shown} ({others})")
    for name, info in report.settings.get("localised", {}).items():
        which = "all" if info["rechecked"] == info["entries"] else f"{info['rechecked']:,} of them at random,"
        lines.append(f"narrowed down: {name} by bisection with random directions ({info['evaluations']:,} cost "
                     f"evaluations) to {entries(info['entries'])}, {which} re-checked one by one")
    if mode == "directions":
        unescalated = [g.name for g in report.groups if g.method == "directions"]
        if unescalated:
            lines.append(f"directions only: {', '.join(unescalated)} (a wrong group shows in its directional "
                         "difference; its entries are named once escalated)")
    return lines
