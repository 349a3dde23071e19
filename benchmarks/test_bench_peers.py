"""fastcheck against peer gradient checkers, like with like, on S, M and L.

Opt-in and never in CI: set ``FASTCHECK_PEERS=1`` (an environment variable, because a
``--peers`` option would need a hook in ``benchmarks/conftest.py``), e.g.::

    FASTCHECK_PEERS=1 pytest benchmarks/test_bench_peers.py --benchmark-json peers.json

Peers that are not installed are skipped. Groups are ``<network>-<kind>``: ``exhaustive``
(every coordinate: fastcheck batched and reference, ``torch.autograd.gradcheck`` slow
mode, ``scipy.optimize.check_grad``), ``directions`` (fastcheck directions mode,
``gradcheck(fast_mode=True)``, ``jax.test_util.check_grads``, ``check_grad(direction=
"random")``), ``subset`` and ``richardson`` (numdifftools, S only). The methods and their
sample sizes are :data:`fastcheck.apps.bench.methods.METHODS`: where a method is sampled, the timed
call checks the seeded sample and ``extra_info`` holds the extrapolation to every
coordinate (``full_s``, ``extrapolated``, ``sample``) from :func:`fastcheck.apps.bench.measure.measure`,
which also records the extra peak memory (``extra_memory_mb``, from ``ru_maxrss`` in a
fresh process) and the verdict on the correct gradient (``passed``). Quick mode
(``--fast-bench`` / ``--benchmark-disable``) skips L and the ``measure`` runs.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import FAST_SAMPLE
from threadpoolctl import threadpool_limits

from fastcheck.apps.bench import measure, methods
from fastcheck.apps.bench.peers import PEERS

pytestmark = pytest.mark.skipif(os.environ.get("FASTCHECK_PEERS") != "1",
                                reason="peer benchmarks run only with FASTCHECK_PEERS=1 (never in CI)")

ROUNDS = {"S": 5, "M": 3, "L": 3}
CASES = [pytest.param(name, method.name,
                      marks=[pytest.mark.benchmark(group=f"{name}-{method.kind}"),
                             *([pytest.mark.slow, pytest.mark.network_L] if name == "L" else [])],
                      id=f"{name}-{method.name.replace(' ', '_')}")
         for name in ("S", "M", "L") for method in methods.METHODS.values() if name in method.networks]


@pytest.mark.parametrize(("name", "method_name"), CASES)
def test_peer(benchmark, problem, sample_size, request, name, method_name):
    method = methods.METHODS[method_name]
    if method.peer is not None:
        pytest.importorskip(PEERS[method.peer])
    if method.peer == "torch":
        import torch

        torch.set_num_threads(measure.DEFAULT_THREADS)
    blas = threadpool_limits(limits=measure.DEFAULT_THREADS, user_api="blas")  # as `fastcheck bench` does
    request.addfinalizer(blas.restore_original_limits)
    data = problem(name)
    net = data[0]
    indices = None
    if name in method.samples:
        indices = measure._sample(net.n_params, method.samples[name][1])
    warm = time.perf_counter()
    method.run(methods.build_problem("tiny"), None)  # JIT, imports, op dispatch
    method.run(data, indices)
    info = benchmark.extra_info
    info.update(network=name, n_params=net.n_params, kind=method.kind, method=method.name,
                warmup_s=time.perf_counter() - warm, sampled=indices is not None,
                timed_coordinates=net.n_params if indices is None else len(indices))
    rounds = 1 if indices is not None or method.repeats == 1 else ROUNDS[name]
    passed, difference = benchmark.pedantic(method.run, args=(data, indices), rounds=rounds, iterations=1)
    info.update(passed=bool(passed), difference=difference)
    if sample_size != FAST_SAMPLE:  # not in quick mode
        row = measure.measure(method, name, repeats=3)
        info.update(full_s=row.seconds, extrapolated=row.extrapolated, sample=row.sample,
                    extra_memory_mb=row.extra_memory_mb, measured_passed=row.passed, note=row.note)

