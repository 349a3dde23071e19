"""The command line: ``fastcheck demo``, ``check``, ``bench``, ``nightly`` and ``history``.

Exit codes: 0 nothing failed, 1 a gradient check failed, 2 bad usage or input (one
line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace

from .. import __version__
from ..api import Plan, check_layer, plan, plan_mlp, prepare_check, prepare_mlp
from ..core.directions import KINDS
from ..core.finite import AUTO, DEFAULT_EPS, DEFAULT_FAIL, DEFAULT_WARN, STENCILS
from ..core.selection import DEFAULT_MIN_PER_GROUP
from ..errors import InputError
from ..mlp.functions import HIDDEN, OUTPUTS
from ..mlp.model import MLP
from ..pipeline.options import COST_ENGINES, DEFAULT_DIRECTIONS, MLP_ENGINES, MODES, CheckOptions
from ..report.html import default_title
from .bugs import BUGS, buggy_gradient
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    Parser,
    UsageError,
    check_output,
    refuse_unfitting,
    run_command,
    write_output,
)
from .networks import NETWORKS, network
from .problems import (
    call_factory,
    cost_problem,
    factory_tuple,
    import_function,
    parse_arguments,
    user_tracebacks,
)

__all__ = ["main", "get_parser"]


def get_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fastcheck", description="Is d-theta really the gradient of J(theta)?")
    parser.add_argument("--version", action="version", version=f"fastcheck {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="check a built-in network, correct and with a planted bug")
    demo.add_argument("--network", choices=sorted(NETWORKS), default="M", help="benchmark network (default M)")
    demo.add_argument("--bug", choices=sorted(BUGS), default="scaled", help="bug to plant (default scaled)")
    demo.add_argument("--engine", choices=MLP_ENGINES,
                      help=f"force an engine (default {MLP_ENGINES[0]}, or traced while its kernels compile)")
    demo.add_argument("--html", metavar="FILE", help="also write the planted bug's report as an HTML page with plots")
    demo.set_defaults(func=run_demo)

    chk = sub.add_parser("check", help="check a built-in MLP or a user problem MODULE:FUNCTION",
                         description="Check a built-in MLP (give --layers) or a user problem: MODULE:FUNCTION "
                         "names a function returning (cost, params, grads).")
    chk.add_argument("problem", nargs="?", help="MODULE:FUNCTION returning (cost, params, grads)")
    chk.add_argument("--arg", action="append", metavar="KEY=VALUE",
                     help="a keyword argument for the MODULE:FUNCTION factory (a Python literal or a string); repeat")
    chk.add_argument("--traceback", action="store_true",
                     help="show the traceback of your code (the factory, the cost, the backprop) when it raises")
    chk.add_argument("--layer", action="store_true",
                     help="MODULE:FUNCTION returns a layer check (forward, inputs, backward or grads[, dout]), as "
                          "fc.check_layer takes it")
    net = chk.add_argument_group("built-in MLP")
    net.add_argument("--layers", help="comma-separated widths, e.g. 64,32,16,4")
    net.add_argument("--network", choices=sorted(NETWORKS), help="a benchmark network instead of --layers")
    net.add_argument("--hidden", choices=list(HIDDEN), default="relu")
    net.add_argument("--output", choices=list(OUTPUTS), default="softmax")
    net.add_argument("--l2", type=float, help="L2 strength lambda (default 0.1 with --network, else 0)")
    net.add_argument("--examples", type=int, default=32, help="number of examples m (default 32)")
    net.add_argument("--params-seed", type=int, default=0, help="seed of net.init (default 0)")
    net.add_argument("--bug", choices=sorted(BUGS), help="plant a bug from the catalogue in the gradient")
    chk.add_argument("--engine", choices=sorted(set(MLP_ENGINES) | set(COST_ENGINES)),
                     help=f"force an engine: {', '.join(MLP_ENGINES)} for the built-in network (default "
                          f"{MLP_ENGINES[0]}, or traced while its kernels compile); {', '.join(COST_ENGINES)} for a "
                          "user problem (default: traced where the cost can be traced)")
    opts = chk.add_argument_group("checking")
    opts.add_argument("--eps", type=_eps, default=DEFAULT_EPS,
                      help=f"step (default {DEFAULT_EPS:g}), or 'auto': a step per coordinate, "
                           "2^-52^(1/3) * max(1, |theta_i|) (SciPy's rule)")
    opts.add_argument("--stencil", type=int, default=2, choices=STENCILS,
                      help="2: the central difference (default); 4: the 4-point stencil, O(eps^4), at twice the "
                           "evaluations")
    sweep = opts.add_mutually_exclusive_group()
    sweep.add_argument("--sweep", dest="sweep", action="store_const", const=True, default=None,
                       help="re-evaluate the worst entries of groups that warn or fail at steps 1e-3 to 1e-9, to "
                            "tell a bug from rounding or truncation (default: of groups that warn)")
    sweep.add_argument("--no-sweep", dest="sweep", action="store_const", const=False,
                       help="no step sweep, not even of groups that warn")
    opts.add_argument("--include-kinks", action="store_true",
                      help="keep in the verdict the coordinates that cross a kink (a ReLU, max, abs, where whose "
                           "branch flips within the step) or sit at a tie (default: counted, listed, left out)")
    opts.add_argument("--cast", action="store_true",
                      help="a user problem: up-cast real arrays that are not float64 (float32, int) with a warning "
                           "instead of refusing them")
    opts.add_argument("--warn", type=float, default=DEFAULT_WARN, help=f"warn bound (default {DEFAULT_WARN:g})")
    opts.add_argument("--fail", type=float, default=DEFAULT_FAIL, help=f"fail bound (default {DEFAULT_FAIL:g})")
    modes = chk.add_argument_group("what to check")
    modes.add_argument("--mode", choices=MODES, default=MODES[0],
                       help="every coordinate (default), a stratified random subset, or random directions")
    modes.add_argument("--fraction", type=float, help="subset: fraction of each group's entries, in (0, 1]")
    modes.add_argument("--samples", type=int, help="subset: number of coordinates instead of --fraction")
    modes.add_argument("--directions", type=int,
                       help=f"directions: directions per group (default {DEFAULT_DIRECTIONS})")
    modes.add_argument("--distribution", choices=KINDS,
                       help=f"directions: {KINDS[0]} (default: each group's direction a rank-one pattern of random "
                            f"signed magnitudes) or {KINDS[1]} (standard normals)")
    modes.add_argument("--min-per-group", type=int, default=DEFAULT_MIN_PER_GROUP,
                       help=f"subset: entries of every group at the least (default {DEFAULT_MIN_PER_GROUP})")
    modes.add_argument("--seed", type=int, default=0, help="seed of the random modes (default 0)")
    modes.add_argument("--no-escalate", dest="escalate", action="store_false",
                       help="do not re-check flagged groups coordinate by coordinate after a cheap mode")
    modes.add_argument("--budget", type=float, metavar="SECONDS",
                       help="check the widest stratified subset estimated to fit in SECONDS")
    modes.add_argument("--dry-run", action="store_true",
                       help="print the engine the check would use and why, what it evaluates and an estimated time, "
                            "then stop (the cost is evaluated at theta, and traced and verified when it can be)")
    opts.add_argument("--jobs", type=int, default=1, help="worker processes for a user problem (-1: all cores)")
    opts.add_argument("--backend", choices=["loky", "threading", "dask"],
                      help="joblib backend for a user problem (default loky with --jobs)")
    opts.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler to run a user problem on")
    opts.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="a user problem: end the check with an error when one evaluation of the cost takes "
                           "longer (default: no limit)")
    opts.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    opts.add_argument("--html", metavar="FILE", help="also write the report as an HTML page with plots")
    opts.add_argument("--quiet", action="store_true", help="print only the verdict line")
    chk.set_defaults(func=run_check)

    from .bench import command as bench
    from .nightly import command as nightly

    bench.register(sub)
    nightly.register(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    return run_command(get_parser(), argv)


def _exit_code(report) -> int:
    return EXIT_OK if report.passed else EXIT_FAILED


def _compile_kernels(engine: str | None, net: MLP) -> float:
    """Load the batched engine's kernels before a check, so its report times the check alone.

    Left to its default (``engine`` None) on a fresh install, where the kernels are not in
    numba's cache, nothing is compiled here: the check runs on the traced engine while they
    compile in the background (its report says so). Forced (``--engine batched``), the first
    run compiles them here for about ten seconds (numba caches the result on disk); on a
    terminal, a line on stderr says so if it takes more than a second.
    """
    if engine == "reference":
        return 0.0
    from ..engines.mlp.warmup import kernels_cached
    from .networks import compile_kernels

    if engine is None and not kernels_cached(net):
        return 0.0
    notice = threading.Timer(1.0, lambda: print(
        f"fastcheck: compiling the numba kernels for {net.hidden}/{net.output} (first run only; cached on disk "
        "afterwards; about 10 s on 2 cores)...", file=sys.stderr, flush=True))
    if sys.stderr.isatty():
        notice.start()
    try:
        return compile_kernels(net.hidden, net.output)
    finally:
        notice.cancel()


def run_demo(args) -> int:
    check_output(args.html, "--html")
    started = time.perf_counter()
    net, params, X, Y = network(args.network)
    print(f"fastcheck demo: network {args.network} {net!r}, {X.shape[1]} examples, {net.n_params:,} parameters\n")
    compiled = _compile_kernels(args.engine, net)
    if compiled > 1.0:
        print(f"(compiled the kernels first, once per install: {compiled:.1f} s; not counted below)\n")
    print("1. the correct backprop")
    good = net.check(params, net.gradient(params, X, Y), X, Y, engine=args.engine)
    print(_indent(str(good)))
    bug = BUGS[args.bug]
    print(f"\n2. a planted bug: {bug.description}")
    bad = net.check(params, buggy_gradient(net, args.bug, params, X, Y), X, Y, engine=args.engine)
    print(_indent(str(bad)))
    caught = not bad.passed and set(bug.origin(net)) <= set(bad.failing_groups)
    print(f"\n{'the bug was caught in ' + ', '.join(bad.failing_groups) if caught else 'THE BUG WAS MISSED'}; "
          f"correct gradient {'passed' if good.passed else 'FAILED'}; "
          f"{time.perf_counter() - started:.2f} s in all")
    if args.html:
        write_output(args.html, bad.to_html(f"fastcheck demo: network {args.network}, planted bug {args.bug!r}"),
                     "--html")
    return EXIT_OK if good.passed and caught else EXIT_FAILED


def run_check(args) -> int:
    check_output(args.json, "--json")
    check_output(args.html, "--html")
    if args.problem:
        if args.layers or args.network or args.bug:
            raise UsageError("give either MODULE:FUNCTION or a built-in network (--layers/--network), not both")
        with user_tracebacks(args.traceback):  # the factory's, the cost's, the backprop's
            report = _check_user_problem(args)
    else:
        if args.jobs != 1 or args.backend or args.scheduler or args.timeout is not None:
            raise UsageError("--jobs, --backend, --scheduler and --timeout are for a user problem MODULE:FUNCTION; "
                             "the built-in network uses the batched engine")
        report = _check_builtin(args)
    if isinstance(report, Plan):
        print(report)
        return EXIT_OK
    write_output(args.json, report.to_json(), "--json")  # the files first: stdout may be a pipe closed early
    write_output(args.html, report.to_html(default_title(report, _problem(args))), "--html")
    print(str(report).splitlines()[0] if args.quiet else report)
    return _exit_code(report)


def _problem(args) -> str:
    """The problem checked, as the HTML page's title names it: MODULE:FUNCTION, or the built-in network."""
    if args.problem:
        return args.problem
    what = f"network {args.network}" if args.network else f"MLP {args.layers}"
    return f"{what} ({args.hidden}, {args.output})" + (f" with planted bug {args.bug}" if args.bug else "")


def _eps(text: str):
    """``--eps``: a number, or 'auto' (CheckOptions checks the range)."""
    if text == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (e.g. 1e-7) or 'auto', got {text!r}") from None


def _check_builtin(args):
    if args.network and args.layers:
        raise UsageError("give --layers or --network, not both")
    if args.network:
        spec = NETWORKS[args.network]
        layers, examples = spec.layers, spec.examples
    elif args.layers:
        try:
            layers = [int(v) for v in args.layers.split(",")]
        except ValueError:
            raise UsageError(f"--layers {args.layers!r} must be comma-separated integers, e.g. 64,32,16,4") from None
        examples = args.examples
    else:
        raise UsageError("nothing to check: give MODULE:FUNCTION, --layers WIDTHS or --network S|M|L")
    if args.params_seed < 0:
        raise UsageError(f"--params-seed: expected a non-negative integer, got {args.params_seed}")
    l2 = args.l2 if args.l2 is not None else (0.1 if args.network else 0.0)
    net = MLP(layers, hidden=args.hidden, output=args.output, l2=l2)
    refuse_unfitting(net.n_params, "--layers" if args.layers else "--network")
    params = net.init(seed=args.params_seed)
    X, Y = net.random_data(examples, seed=args.params_seed + 1)
    options = _options(args, engine=args.engine)
    if args.dry_run:
        return plan_mlp(net, params, X, Y, options=options)
    grads = buggy_gradient(net, args.bug, params, X, Y) if args.bug else net.gradient(params, X, Y)
    prepared = prepare_mlp(net, params, grads, X, Y, options=options)  # bad settings fail here, before compiling
    _compile_kernels(args.engine, net)
    return replace(prepared, started=time.perf_counter()).run()  # its clock (and budget) after the compile


#: How the command line names the settings it takes under another name (else ``--key``).
_FLAGS = {"n_samples": "--samples", "n_directions": "--directions", "kinks": "--include-kinks",
          "escalate": "--no-escalate", "n_jobs": "--jobs"}


def cli_name(key: str) -> str:
    """How a setting is named in the command line's messages: ``--mode``."""
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def _options(args, **more) -> CheckOptions:
    """The CheckOptions of ``fastcheck check``'s flags (their rules are CheckOptions', named as flags)."""
    return CheckOptions(eps=args.eps, warn=args.warn, fail=args.fail, mode=args.mode, seed=args.seed,
                        fraction=args.fraction, n_samples=args.samples, n_directions=args.directions,
                        distribution=args.distribution, min_per_group=args.min_per_group, escalate=args.escalate,
                        budget=args.budget,
                        timeout=args.timeout, stencil=args.stencil, sweep=args.sweep, name=cli_name,
                        kinks="include" if args.include_kinks else "exclude", **more)


def load_problem(spec: str, kwargs: dict | None = None, show_traceback: bool = False):
    """Import ``MODULE:FUNCTION`` and call it with ``kwargs``: ``(cost, params, grads, batch_cost)``.

    The factory may return any of :data:`~fastcheck.apps.problems.COST_PROBLEM_FORMS`.
    """
    return cost_problem(spec, call_factory(spec, import_function(spec), kwargs, show_traceback=show_traceback))


def _factory_result(spec: str, kwargs, show_traceback: bool, sizes: tuple[int, ...], expected: str) -> tuple:
    """What the factory ``spec`` returns: a tuple of one of ``sizes`` items, a callable first, else an error."""
    return factory_tuple(spec, call_factory(spec, import_function(spec), kwargs, show_traceback=show_traceback),
                         sizes, expected)


def _check_user_layer(args):
    """``--layer``: the factory returns ``(forward, inputs, backward or grads[, dout])`` for fc.check_layer."""
    forward, inputs, third, *dout = _factory_result(args.problem, parse_arguments(args.arg), args.traceback, (3, 4),
                                                    "(forward, inputs, backward or grads[, dout]) with --layer")
    if args.dry_run:
        raise UsageError("--dry-run is for cost problems; a layer check costs two forward passes per entry")
    gradient = {"backward": third} if callable(third) else {"grads": third}
    return check_layer(forward, inputs, dout=dout[0] if dout else None, seed=args.seed,
                       options=_options(args, engine=args.engine), n_jobs=args.jobs, backend=args.backend,
                       cast=args.cast, **gradient)


def _check_user_problem(args):
    if args.layer:
        return _check_user_layer(args)
    cost, params, grads, batch_cost = load_problem(args.problem, parse_arguments(args.arg), args.traceback)
    options = _options(args, engine=args.engine)
    if args.dry_run:  # the engine the check would run: the same workers, backend and cluster
        on_cluster = args.scheduler is not None
        return plan(cost, params, options=options, cast=args.cast, backend="dask" if on_cluster else args.backend,
                    n_jobs=-1 if on_cluster and args.jobs == 1 else args.jobs, batch_cost=batch_cost)
    run = {"n_jobs": args.jobs, "backend": args.backend, "cast": args.cast, "batch_cost": batch_cost}
    if args.scheduler is None:
        if args.backend == "dask":
            raise UsageError("--backend dask needs --scheduler ADDRESS (a running Dask scheduler)")
        return prepare_check(cost, params, grads, options=options, **run).run()
    if args.backend not in (None, "dask"):
        raise UsageError(f"--scheduler runs on Dask: drop --backend {args.backend}")
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'fastcheck[distributed]'") from None
    from concurrent.futures import CancelledError  # what distributed raises when a cluster's workers died

    try:
        client = Client(args.scheduler, timeout="10s")
    except (OSError, ValueError, TypeError) as exc:  # a malformed address, or nothing answering there
        raise UsageError(f"--scheduler {args.scheduler!r}: cannot reach a Dask scheduler there: {exc}") from None
    with client:
        run.update(backend="dask", n_jobs=-1 if args.jobs == 1 else args.jobs)
        prepared = prepare_check(cost, params, grads, options=options, **run)
        try:  # joblib's dask backend finds the client through distributed's default
            return prepared.run()
        except (CancelledError, OSError) as exc:
            raise InputError(f"the Dask cluster at {args.scheduler} failed during the check "
                             f"({type(exc).__name__}: {exc}); are its workers alive?") from None


def _indent(text: str) -> str:
    return "\n".join("   " + line if line else line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
