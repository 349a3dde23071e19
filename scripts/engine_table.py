"""Measure the README's engine and mode tables on this machine.

    python scripts/engine_table.py [--networks S,M,L] [--repeats 5] [--sample 2000]

For each network: the batched engine's exhaustive check (median of ``--repeats`` runs
after a warm-up), the reference engine timed on a seeded stratified sample of
``--sample`` coordinates and extrapolated to all of theta (said so in the output), their
ratio, and the noise floor of each engine (the difference reached by the correct
gradient; the reference's on its sample). Then the cheap modes on the largest network.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import fastcheck as fc
from fastcheck.apps.networks import network
from fastcheck.core.finite import Bounds
from fastcheck.core.layout import Layout
from fastcheck.core.selection import stratified_subset
from fastcheck.engines.mlp.objective import MLPObjective
from fastcheck.engines.reference import reference_engine
from fastcheck.report import build_report


def median_time(net, params, grads, X, Y, repeats, **options):
    """Median seconds of ``net.check`` after a warm-up call (JIT cache, allocations)."""
    net.check(params, grads, X, Y, **options)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        net.check(params, grads, X, Y, **options)
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def reference_sample(net, params, X, Y, grads, sample):
    layout, theta = Layout.from_params(params)
    idx = stratified_subset(layout, n_samples=min(sample, layout.n_params), seed=0)
    objective = MLPObjective(net, layout, X, Y)
    objective.base(theta)
    tic = time.perf_counter()
    evaluations = reference_engine(objective, theta, idx, 1e-7)
    seconds = time.perf_counter() - tic
    report = build_report(layout, layout.flatten_grads(grads), evaluations, bounds=Bounds(),
                          settings={"eps": 1e-7, "mode": "subset", "engine": "reference", "seed": 0,
                                    "kinks": "exclude"}, elapsed=seconds)
    return seconds * layout.n_params / len(idx), report.difference, len(idx)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="S,M,L")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    names = args.networks.split(",")
    print(f"fastcheck {fc.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n")
    print("| network | parameters | batched, exhaustive | reference, extrapolated | ratio | "
          "noise floor batched | noise floor reference |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        net, params, X, Y = network(name)
        grads = net.gradient(params, X, Y)
        batched = median_time(net, params, grads, X, Y, args.repeats)
        floor = net.check(params, grads, X, Y).difference
        ref_full, ref_floor, k = reference_sample(net, params, X, Y, grads, args.sample)
        print(f"| {name} | {net.n_params:,} | {batched * 1e3:.1f} ms | {ref_full:.3g} s (from {k:,} coordinates) "
              f"| {ref_full / batched:,.0f}x | {floor:.1e} | {ref_floor:.1e} |")

    name = names[-1]
    net, params, X, Y = network(name)
    grads = net.gradient(params, X, Y)
    print(f"\nCheap modes on network {name} ({net.n_params:,} parameters):\n")
    print("| mode | what is checked | median |")
    print("|---|---|---|")
    rows = [
        ({"mode": "subset", "fraction": 0.01}, "1% stratified subset"),
        ({"mode": "directions", "n_directions": 4}, "4 directions per group + 4 over all of theta"),
        ({"mode": "directions", "n_directions": 32}, "32 directions per group + 32 over all of theta"),
    ]
    for kwargs, label in rows:
        seconds = median_time(net, params, grads, X, Y, args.repeats, **kwargs)
        report = net.check(params, grads, X, Y, **kwargs)
        count = report.n_checked if kwargs["mode"] == "subset" else len(report.directions)
        print(f"| {kwargs['mode']} | {label} ({count:,}) | {seconds * 1e3:.0f} ms |")
    net, params, X, Y = network(name, hidden="tanh")  # no linear shortcut: directions pay off here
    grads = net.gradient(params, X, Y)
    kwargs = rows[-1][0]
    seconds = median_time(net, params, grads, X, Y, args.repeats, **kwargs)
    print(f"| {kwargs['mode']} | tanh hidden layers: {rows[-1][1]} | {seconds * 1e3:.0f} ms |")

    print("\nOther hidden/loss pairs, exhaustive, batched engine:\n")
    print("| network | hidden / output | median |")
    print("|---|---|---|")
    for name in [n for n in names if n != "S"]:
        for hidden, output in [("leaky_relu", "softmax"), ("tanh", "softmax"), ("sigmoid", "sigmoid"),
                               ("identity", "identity")]:
            net, params, X, Y = network(name, hidden=hidden, output=output)
            grads = net.gradient(params, X, Y)
            repeats = args.repeats if name != "L" or hidden in ("leaky_relu", "identity") else 1
            seconds = median_time(net, params, grads, X, Y, repeats)
            print(f"| {name} | {hidden} / {output} | {seconds:.3g} s |")


if __name__ == "__main__":
    main()
