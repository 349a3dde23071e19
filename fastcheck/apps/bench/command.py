"""``fastcheck bench``: fastcheck's engines and modes against peer gradient checkers.

The subcommand's options and its run; the methods are in :mod:`~fastcheck.apps.bench.methods`,
how they are measured in :mod:`~fastcheck.apps.bench.measure`, the table and plot in
:mod:`~fastcheck.apps.bench.output`.
"""

from __future__ import annotations

import argparse
import json
import sys

from ...errors import InputError
from ..common import EXIT_OK, Parser, check_output, run_command, write_output
from ..networks import NETWORKS
from .measure import DEFAULT_REPEATS, DEFAULT_THREADS, run_bench, scaling_run
from .output import format_table, plot, require_matplotlib

__all__ = ["register", "run_bench_command", "main"]


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` (of :func:`fastcheck.apps.cli.get_parser`)."""
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
    check_output(args.json, "--json")
    check_output(args.plot, "--plot")
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise InputError(f"--plot {args.plot!r} must be a .png file")
        require_matplotlib()  # before any work, not after the timings
    print(f"fastcheck bench: networks {', '.join(names)}{', with peers' if args.peers else ''}")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads} must be >= 0 (0: the libraries' defaults)")
    result = run_bench(names, peers=args.peers, repeats=args.repeats, threads=args.threads or None)
    if args.scaling:
        result["scaling"] = scaling_run(repeats=args.repeats)
    write_output(args.json, json.dumps(result, indent=2), "--json")  # the file first: stdout may be a closed pipe
    print()
    print(format_table(result))
    if args.plot:
        plot(result, args.plot)
        print(f"plot written to {args.plot}")
    return EXIT_OK


def main(argv=None) -> int:
    """``fastcheck bench`` on its own: ``main(["--networks", "S"])``; returns the exit code."""
    parser = Parser(prog="fastcheck")
    register(parser.add_subparsers(dest="command", parser_class=Parser))
    return run_command(parser, ["bench", *(sys.argv[1:] if argv is None else argv)])
