"""How ``fastcheck bench`` measures a method: timing, peak memory, extrapolation from
samples, isolation in a subprocess, the whole run, and the scaling run.

Every method checks the correct gradient of the same benchmark network (S, M, L of
:mod:`fastcheck.apps.networks`), in a fresh process of its own (spawned), so that its peak
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

:func:`scaling_run` times the batched engine on relu/softmax MLPs ``[w, w, w, 10]`` from
about 10^3 to 10^6 parameters and fits the growth exponent of time against parameters by
least squares on log-log.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ...mlp.model import MLP
from ..networks import NETWORKS
from .methods import METHODS, Method, build_problem
from .output import environment

__all__ = ["Row", "run_method", "measure", "run_bench", "scaling_run", "growth_exponent", "DEFAULT_REPEATS",
           "DEFAULT_THREADS", "SAMPLE_SEED", "SCALING_TARGETS", "SCALING_EXAMPLES"]

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
    method.run(build_problem("tiny"), None)
    problem = build_problem(network_name)
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


def _scaling_width(target: int) -> int:
    """Width w of ``[w, w, w, 10]`` whose parameter count ``2w^2 + 12w + 10`` is nearest ``target``."""
    return max(2, int(round((-12 + math.sqrt(144 + 8 * (target - 10))) / 4)))


def scaling_run(targets=SCALING_TARGETS, *, repeats: int = DEFAULT_REPEATS, log=print) -> dict:
    """Time the batched engine on relu/softmax MLPs of growing width; fit the growth exponent."""
    warm, p, X, Y, grads = build_problem("tiny")
    warm.check(p, grads, X, Y)  # JIT compilation out of the first timing
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
