"""What ``fastcheck bench`` shows and records: the text table, the plot, the environment."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from ...core.finite import Bounds
from ...errors import InputError
from ...report.text import text_table

__all__ = ["format_table", "plot", "require_matplotlib", "environment"]


def _mb(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _verdict(row: dict) -> str:
    """``FAIL`` when the method failed the correct gradient, else the band of its error measure
    under fastcheck's default bounds (``pass`` when it has none); a method that passed is below
    the fail bound, so that band is ``pass`` or ``warn``."""
    if not row["passed"]:
        return "FAIL"
    difference = row.get("difference")
    return "pass" if difference is None else Bounds().verdict(difference)


def format_table(result: dict) -> str:
    """The rows as a text table: time, ratio to batched, extra peak memory, verdict, error measure."""
    header = ("network", "params", "kind", "method", "seconds", "x batched", "extra MB", "verdict", "difference",
              "note")
    lines = [header]
    for r in result["rows"]:
        ratio = r["ratio_to_batched"]
        verdict = _verdict(r) + (" (sample)" if r["extrapolated"] else "")
        difference = "" if r.get("difference") is None else f"{r['difference']:.1e}"
        lines.append((r["network"], f"{r['n_params']:,}", r["kind"], r["method"],
                      f"{r['seconds']:.3g}" + ("*" if r["extrapolated"] else ""),
                      "" if ratio is None else f"{ratio:,.3g}", _mb(r["extra_memory_mb"]), verdict, difference,
                      r["note"]))
    out = text_table(lines, "lrllrrrlrl", indent="")
    out.insert(1, "-" * len(out[0]))
    if any(r["extrapolated"] for r in result["rows"]):
        out.append("* time extrapolated from seeded samples (see note); verdict and extra MB on the sample")
    out.append("difference: fastcheck's relative difference; scipy: err / ||grad||; torch, jax: their own verdict")
    if result.get("skipped_peers"):
        out.append(f"not installed, skipped: {', '.join(result['skipped_peers'])}")
    scaling = result.get("scaling")
    if scaling:
        out.append("")
        out.append(f"scaling of the batched engine ([w, w, w, 10], m = {scaling['examples']}):")
        for p in scaling["points"]:
            out.append(f"  {p['n_params']:>10,} parameters  {p['seconds']:.4g} s")
        out.append(f"  fitted growth: time ~ n^{scaling['exponent']:.2f}")
    return "\n".join(out)


def require_matplotlib():
    """The ``matplotlib`` module, or an :class:`InputError` saying how to install it."""
    try:
        import matplotlib  # lazy: an optional extra, needed only for --plot
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'fastcheck[plots]'") from None
    return matplotlib


def plot(result: dict, path: str) -> None:
    """Log-log plots of check time against parameters, one line per method; PNG at ``path``.

    Left: checks of every coordinate (and the scaling run); right: random directions and
    subsets. Hollow markers are extrapolated; a cross marks a failure on the correct gradient.
    """
    require_matplotlib().use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    panels = {"exhaustive": 0, "richardson": 0, "directions": 1, "subset": 1}
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    for i, name in enumerate(methods):
        rows = sorted((r for r in result["rows"] if r["method"] == name), key=lambda r: r["n_params"])
        ax, color = axes[panels.get(rows[0]["kind"], 1)], f"C{i % 10}"
        failed = any(not r["passed"] for r in rows)
        ax.plot([r["n_params"] for r in rows], [r["seconds"] for r in rows], "-", color=color,
                label=name + (" (FAILS on the correct gradient)" if failed else ""))
        for r in rows:
            ax.plot(r["n_params"], r["seconds"], "o", color=color, markersize=7,
                    markerfacecolor="none" if r["extrapolated"] else color)
            if not r["passed"]:
                ax.plot(r["n_params"], r["seconds"], "x", color="k", markersize=9)
    scaling = result.get("scaling")
    if scaling:
        axes[0].plot([p["n_params"] for p in scaling["points"]], [p["seconds"] for p in scaling["points"]], "k--s",
                     markersize=4, label=f"fastcheck batched, scaling run (time ~ n^{scaling['exponent']:.2f})")
    for ax, title in zip(axes, ("every coordinate", "random directions and subsets")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters n")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("check time (s)")
    fig.suptitle("Gradient check time, correct gradient (hollow: extrapolated from samples; x: failed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment() -> dict:
    """Machine and versions, for the record."""
    versions = {"python": platform.python_version()}
    for module in ("numpy", "numba", "scipy", "torch", "jax", "jaxlib", "numdifftools"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": model, "cores": os.cpu_count(), "load_average": load, "versions": versions}
