"""``fastcheck bench``: fastcheck's engines and modes against peer gradient checkers.

Every method checks the correct gradient of the same benchmark network (S, M, L of
:mod:`fastcheck.networks`), in a fresh process of its own (spawned), so that its peak
memory can be read from ``ru_maxrss``: the process first warms the method up on a tiny
network (JIT compilation, imports), then records its peak RSS, runs the method on the
benchmark network and reports the growth of the peak ("extra peak memory").

Fast methods are timed ``repeats`` times and the median is reported. Slow per-coordinate
methods (the reference engine, ``torch.autograd.gradcheck`` in its default slow mode,
``scipy.optimize.check_grad``) are run on the whole network only where that takes
seconds; elsewhere they are timed on two seeded samples of coordinates (``k0`` and ``k``
coordinates, each in its own process), and time and memory are extrapolated linearly to
all n coordinates through those two points. Such rows are labelled ``extrapolated``;
their verdict and their memory are the ones measured on the larger sample (memory
readings are too coarse to extrapolate: both samples' are recorded).

``--scaling`` times the batched engine on relu/softmax MLPs ``[w, w, w, 10]`` from about
10^3 to 10^6 parameters and fits the growth exponent of time against parameters by least
squares on log-log.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..networks import NETWORKS, network

__all__ = ["METHODS", "Method", "Row", "run_method", "run_bench", "scaling_run", "growth_exponent", "format_table",
           "plot", "register", "main"]

#: Methods that count as fast are timed this many times (median); at least 3.
DEFAULT_REPEATS = 5
#: BLAS threads (threadpoolctl) and PyTorch intra-op threads in every run: on these small
#: products the libraries' defaults (one thread per core) were several times slower than
#: one thread on the shared 2-core machine, so one thread is the fair comparison. The
#: batched engine limits BLAS to one thread itself and runs its numba kernels on all cores.
DEFAULT_THREADS = 1
#: Seed of the coordinate samples.
SAMPLE_SEED = 0
#: Parameter counts of the scaling run (8 sizes, about 10^3 to 10^6).
SCALING_TARGETS = tuple(int(round(10 ** e)) for e in np.linspace(3, 6, 8))
#: Examples of the scaling run's networks.
SCALING_EXAMPLES = 64


# ---------------------------------------------------------------------- the methods
def _batched(problem, indices):
    net, params, X, Y, grads = problem
    r = net.check(params, grads, X, Y, engine="batched")
    return r.passed, r.difference


def _reference(problem, indices):
    from ...api import prepare_mlp

    net, params, X, Y, grads = problem
    p = prepare_mlp(net, params, grads, X, Y, engine="reference")
    r = p.report(p.evaluate(p.indices() if indices is None else indices))
    return r.passed, r.difference


def _directions(problem, indices):
    net, params, X, Y, grads = problem
    r = net.check(params, grads, X, Y, mode="directions")
    return r.passed, r.difference


def _subset(problem, indices):
    net, params, X, Y, grads = problem
    r = net.check(params, grads, X, Y, mode="subset", fraction=0.01)
    return r.passed, r.difference


def _peer(name, **options):
    def run(problem, indices):
        from . import peers

        net, params, X, Y, _ = problem
        extra = {} if indices is None else {"indices": indices}
        result = getattr(peers, name)(net, params, X, Y, **options, **extra)
        return result.passed, result.difference

    return run


def _torch_wrapper_overhead(problem, indices) -> float:
    """Seconds the sampled torch wrapper spends per call scattering the sample into theta."""
    import torch

    from ...core.layout import Layout

    _, theta = Layout.from_params(problem[1])
    base, where = torch.from_numpy(theta), torch.from_numpy(np.asarray(indices))
    sub = torch.tensor(theta[indices], requires_grad=True)
    times = []
    for _ in range(21):
        tic = time.perf_counter()
        base.index_put((where,), sub)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


@dataclass(frozen=True)
class Method:
    """One way of checking a gradient.

    ``run(problem, indices) -> (passed, difference)``; ``samples`` maps a network name to
    the sample sizes ``(k0, k)`` used to extrapolate there (absent: run on all of it);
    ``calls_per_coordinate`` and ``overhead`` describe the cost a sampling wrapper adds
    per cost call, which is subtracted before extrapolating.
    """

    name: str
    kind: str
    run: Callable
    peer: str | None = None
    networks: tuple = ("S", "M", "L")
    samples: dict = field(default_factory=dict)
    repeats: int | None = None  # None: DEFAULT_REPEATS
    overhead: Callable | None = None
    calls_per_coordinate: int = 2
    note: str = ""


METHODS = {m.name: m for m in [
    Method("fastcheck batched", "exhaustive", _batched),
    Method("fastcheck reference", "exhaustive", _reference, samples={"M": (200, 2000), "L": (100, 1000)},
           repeats=1),
    Method("torch gradcheck", "exhaustive", _peer("torch_gradcheck"), peer="torch",
           samples={"M": (100, 1000), "L": (50, 500)}, repeats=1, overhead=_torch_wrapper_overhead,
           note="slow mode"),
    Method("scipy check_grad", "exhaustive", _peer("scipy_check_grad"), peer="scipy",
           samples={"M": (200, 2000), "L": (100, 1000)}, repeats=1, calls_per_coordinate=1,
           note="forward differences"),
    Method("fastcheck directions", "directions", _directions),
    Method("torch gradcheck fast_mode", "directions", _peer("torch_gradcheck", fast_mode=True), peer="torch"),
    Method("jax check_grads", "directions", _peer("jax_check_grads"), peer="jax"),
    Method("scipy check_grad random", "directions", _peer("scipy_check_grad", direction="random"), peer="scipy"),
    Method("fastcheck subset 1%", "subset", _subset),
    Method("numdifftools Gradient", "richardson", _peer("numdifftools_gradient"), peer="numdifftools",
           networks=("S",), repeats=1),
]}


@dataclass
class Row:
    """One method on one network: the table's row and the JSON's record."""

    network: str
    n_params: int
    kind: str
    method: str
    seconds: float
    passed: bool
    difference: float | None
    extra_memory_mb: float
    repeats: int
    extrapolated: bool = False
    sample: list | None = None  # [k0, k] when extrapolated
    sample_seconds: list | None = None
    sample_memory_mb: list | None = None  # extra peak memory on the two samples (not extrapolated)
    ratio_to_batched: float | None = None
    note: str = ""


# ---------------------------------------------------------------------- one measurement
def _problem(name: str):
    if name == "tiny":
        from ...mlp.model import MLP

        net = MLP([8, 6, 5, 3], hidden="relu", output="softmax", l2=0.1)
        params = net.init(seed=0)
        X, Y = net.random_data(8, seed=1)
    else:
        net, params, X, Y = network(name)
    return net, params, X, Y, net.gradient(params, X, Y)


def _sample(n_params: int, k: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(n_params, size=min(k, n_params), replace=False))


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_method(method_name: str, network_name: str, k: int | None = None, repeats: int = DEFAULT_REPEATS,
               threads: int | None = DEFAULT_THREADS) -> dict:
    """Measure one method on one network in this process (the worker of :func:`run_bench`).

    Warms the method up on a tiny network, then runs it once on ``network_name`` (on a
    seeded sample of ``k`` coordinates if given) to read the growth of the peak RSS, then
    ``repeats`` more times, and returns the median of those; with ``repeats=1`` the first
    run is the timed one. ``threads`` limits BLAS threads and, for the torch methods,
    PyTorch's intra-op threads (None: the libraries' defaults).
    """
    if threads is None:
        return _run_method(method_name, network_name, k, repeats)
    from threadpoolctl import threadpool_limits

    peer = METHODS[method_name].peer
    if peer == "torch":
        import torch

        torch.set_num_threads(threads)
    if peer == "jax" and "jax" not in sys.modules:  # XLA reads its thread settings at import
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   f" intra_op_parallelism_threads={threads}").strip()
    with threadpool_limits(limits=threads, user_api="blas"):
        return _run_method(method_name, network_name, k, repeats)


def _run_method(method_name, network_name, k, repeats) -> dict:
    method = METHODS[method_name]
    method.run(_problem("tiny"), None)
    problem = _problem(network_name)
    indices = None if k is None else _sample(problem[0].n_params, k)
    before = _peak_rss_bytes()
    tic = time.perf_counter()
    passed, difference = method.run(problem, indices)
    times = [time.perf_counter() - tic]
    extra = max(0, _peak_rss_bytes() - before)
    for _ in range(repeats if repeats > 1 else 0):
        tic = time.perf_counter()
        method.run(problem, indices)
        times.append(time.perf_counter() - tic)
    timed = times[1:] if len(times) > 1 else times
    seconds = statistics.median(timed)
    if indices is not None and method.overhead is not None:
        seconds -= method.overhead(problem, indices) * method.calls_per_coordinate * len(indices)
    return {"seconds": seconds, "passed": bool(passed), "difference": difference, "extra_bytes": extra,
            "repeats": len(timed)}


def _isolated(method_name, network_name, k, repeats, threads) -> dict:
    """:func:`run_method` in a fresh spawned process, so ``ru_maxrss`` is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_method, method_name, network_name, k, repeats, threads).result()


def _extrapolate(n: int, k0: int, y0: float, k: int, y: float) -> float:
    """The line through (k0, y0) and (k, y), at n; proportional to y/k if the slope is not positive."""
    slope = (y - y0) / (k - k0)
    if slope <= 0:
        return y * n / k
    return y + slope * (n - k)


def measure(method: Method, network_name: str, repeats: int = DEFAULT_REPEATS,
            threads: int | None = DEFAULT_THREADS) -> Row:
    """One :class:`Row`: the method run (or sampled and extrapolated) on the network."""
    n = NETWORKS[network_name]
    n_params = n.build().n_params
    reps = method.repeats or repeats
    if network_name in method.samples:
        k0, k = method.samples[network_name]
        first = _isolated(method.name, network_name, k0, reps, threads)
        second = _isolated(method.name, network_name, k, reps, threads)
        seconds = _extrapolate(n_params, k0, first["seconds"], k, second["seconds"])
        note = f"time extrapolated from seeded samples of {k0:,} and {k:,} coordinates; memory of the {k:,}"
        return Row(network_name, n_params, method.kind, method.name, seconds, second["passed"],
                   second["difference"], second["extra_bytes"] / 2**20, second["repeats"], True, [k0, k],
                   [first["seconds"], second["seconds"]],
                   sample_memory_mb=[first["extra_bytes"] / 2**20, second["extra_bytes"] / 2**20],
                   note=_join(method.note, note))
    out = _isolated(method.name, network_name, None, reps, threads)
    return Row(network_name, n_params, method.kind, method.name, out["seconds"], out["passed"], out["difference"],
               out["extra_bytes"] / 2**20, out["repeats"], note=method.note)


def _join(*parts) -> str:
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------------- the whole run
def _peer_available(peer: str) -> bool:
    from .peers import available

    return available(peer)


def run_bench(networks=("S", "M"), *, peers: bool = False, repeats: int = DEFAULT_REPEATS,
              threads: int | None = DEFAULT_THREADS, log=print) -> dict:
    """Measure every method on every network; returns the JSON-ready result.

    Peers run only with ``peers=True`` and when installed (a skipped peer is listed
    under ``"skipped"``).
    """
    rows, skipped = [], []
    for name in networks:
        batched = None
        for method in METHODS.values():
            if name not in method.networks:
                continue
            if method.peer is not None:
                if not peers:
                    continue
                if not _peer_available(method.peer):
                    if method.peer not in skipped:
                        skipped.append(method.peer)
                        log(f"  {method.peer} is not installed: its rows are skipped")
                    continue
            row = measure(method, name, repeats, threads)
            if method.name == "fastcheck batched":
                batched = row.seconds
            row.ratio_to_batched = row.seconds / batched if batched else None
            log(f"  {name} {method.name}: {row.seconds:.4g} s{' (extrapolated)' if row.extrapolated else ''}")
            rows.append(row)
    return {"rows": [asdict(r) for r in rows], "skipped_peers": skipped, "environment": environment(),
            "settings": {"networks": list(networks), "peers": peers, "repeats": repeats,
                         "threads": threads, "sample_seed": SAMPLE_SEED}}


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


# ---------------------------------------------------------------------- scaling
def _scaling_width(target: int) -> int:
    """Width w of ``[w, w, w, 10]`` whose parameter count ``2w^2 + 12w + 10`` is nearest ``target``."""
    return max(2, int(round((-12 + math.sqrt(144 + 8 * (target - 10))) / 4)))


def scaling_run(targets=SCALING_TARGETS, *, repeats: int = DEFAULT_REPEATS, log=print) -> dict:
    """Time the batched engine on relu/softmax MLPs of growing width; fit the growth exponent."""
    from ...mlp.model import MLP

    warm = MLP([8, 6, 5, 3], hidden="relu", output="softmax", l2=0.1)
    p = warm.init(0)
    X, Y = warm.random_data(8, 1)
    warm.check(p, warm.gradient(p, X, Y), X, Y)
    points = []
    for target in targets:
        w = _scaling_width(target)
        net = MLP([w, w, w, 10], hidden="relu", output="softmax", l2=0.1)
        params = net.init(seed=0)
        X, Y = net.random_data(SCALING_EXAMPLES, seed=1)
        grads = net.gradient(params, X, Y)
        times = []
        for _ in range(repeats):  # median of `repeats`, fewer for runs longer than 20 s
            tic = time.perf_counter()
            report = net.check(params, grads, X, Y)
            times.append(time.perf_counter() - tic)
            if times[-1] > 20:
                break
        point = {"layers": list(net.layers), "n_params": net.n_params, "seconds": statistics.median(times),
                 "repeats": len(times), "passed": report.passed}
        log(f"  scaling {net.layers}: {net.n_params:,} parameters, {point['seconds']:.4g} s")
        points.append(point)
    exponent, constant = growth_exponent([p["n_params"] for p in points], [p["seconds"] for p in points])
    return {"points": points, "exponent": exponent, "constant": constant, "examples": SCALING_EXAMPLES}


def growth_exponent(sizes, seconds) -> tuple[float, float]:
    """Least-squares fit of ``log t = a log n + log c`` : returns ``(a, c)``."""
    a, log_c = np.polyfit(np.log(np.asarray(sizes, dtype=float)), np.log(np.asarray(seconds, dtype=float)), 1)
    return float(a), float(np.exp(log_c))


# ---------------------------------------------------------------------- output
def _mb(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _verdict(row: dict) -> str:
    """``pass``/``warn``/``FAIL`` on the correct gradient; ``warn`` when the error measure is past 1e-6."""
    if not row["passed"]:
        return "FAIL"
    difference = row.get("difference")
    return "warn" if difference is not None and difference >= 1e-6 else "pass"


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
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    out = ["  ".join(cell.ljust(w) if c in (0, 2, 3, 7, 9) else cell.rjust(w)
                     for c, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines]
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


def plot(result: dict, path: str) -> None:
    """Log-log plots of check time against parameters, one line per method; PNG at ``path``.

    Left: checks of every coordinate (and the scaling run); right: random directions and
    subsets. Hollow markers are extrapolated; a cross marks a failure on the correct gradient.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'fastcheck[plots]'") from None
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


# ---------------------------------------------------------------------- command line
def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` (of ``fastcheck.cli.get_parser``)."""
    bench = subparsers.add_parser(
        "bench", help="time fastcheck's engines and modes (and peers with --peers) on S, M, L",
        description="Time fastcheck's engines and modes, and with --peers PyTorch's gradcheck, JAX's check_grads, "
                    "SciPy's check_grad and numdifftools, on the benchmark networks.")
    bench.add_argument("--networks", default="S,M", help="comma-separated benchmark networks (default S,M)")
    bench.add_argument("--peers", action="store_true", help="also time the installed peers")
    bench.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                       help=f"timed runs of each fast method, median reported (default {DEFAULT_REPEATS}, min 3)")
    bench.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                       help=f"BLAS and PyTorch threads in every row (default {DEFAULT_THREADS}; 0: the libraries' "
                       "defaults); the batched engine's numba kernels use all cores either way")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="FILE.png", help="draw time against parameters (needs matplotlib)")
    bench.add_argument("--scaling", action="store_true",
                       help="also time the batched engine from ~1e3 to ~1e6 parameters and fit the exponent")
    bench.set_defaults(func=run_bench_command)
    return bench


def _networks(text: str) -> list[str]:
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--networks is empty; give e.g. S,M")
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        raise InputError(f"--networks: unknown network {unknown[0]!r}; choose from {', '.join(NETWORKS)}")
    return list(dict.fromkeys(names))


def run_bench_command(args) -> int:
    names = _networks(args.networks)
    if args.repeats < 3:
        raise InputError(f"--repeats {args.repeats} must be at least 3 (medians of fewer are noise)")
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise InputError(f"--plot {args.plot!r} must be a .png file")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("--plot needs matplotlib: pip install 'fastcheck[plots]'") from None
    print(f"fastcheck bench: networks {', '.join(names)}{', with peers' if args.peers else ''}")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads} must be >= 0 (0: the libraries' defaults)")
    result = run_bench(names, peers=args.peers, repeats=args.repeats, threads=args.threads or None)
    if args.scaling:
        result["scaling"] = scaling_run(repeats=args.repeats)
    print()
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.plot:
        plot(result, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def main(argv=None) -> int:
    """``fastcheck bench`` on its own: ``main(["--networks", "S"])``; returns the exit code."""
    from ...errors import FastcheckError
    from ..cli import EXIT_USAGE, UsageError, _one_line, _Parser

    parser = _Parser(prog="fastcheck")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    register(sub)
    try:
        args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
        return args.func(args)
    except (UsageError, FastcheckError) as exc:
        print(f"fastcheck: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
