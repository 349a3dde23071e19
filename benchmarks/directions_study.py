"""Random directions, rank-one signs against Gaussian: what each finds and misses, and how far from the full check.

Run ``python benchmarks/directions_study.py [--seeds N] [--quick]``; it prints markdown tables
(docs/directions.md holds one run's and what they say). Every verdict is a directions
check's own (``escalate=False``), per group and over all of theta (``(all)``).

How the networks' figures are made. For each network (S, M; relu, tanh), distribution and
seed, one ``net.check(mode="directions", n_directions=32, escalate=False)`` of the correct
gradient G runs through the public API. A direction's central difference does not depend on
the gradient under test, and its ``u . (G + E)`` is the report's ``u . G`` plus ``u . E``
(``u`` the direction's exact step over eps, from :func:`fastcheck.core.directions.direction_steps`),
so the verdicts for many planted errors E are replayed from that one check, for its first 4,
8, 16 and 32 directions (direction j does not depend on how many are drawn). The replay is
held to the API: every bug and a sample of planted errors are checked again through
``net.check`` at two seeds, and the script stops if a verdict differs (it prints how many
agreed). Each planted error's exhaustive verdict is a full ``net.check`` of G + E. The user
models (course MLP, CNN, RNN of tests/traced_models.py) run through ``fc.check`` and the
traced engine, every check through the API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import fastcheck as fc
from fastcheck.apps.bugs import BUGS, buggy_gradient
from fastcheck.apps.networks import network
from fastcheck.core.directions import GLOBAL, KINDS, direction_steps, draw_directions
from fastcheck.core.finite import DEFAULT_EPS, Bounds
from fastcheck.core.layout import Layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from directions_cases import COUNTS, K_MAX, SIZES, TARGETS, cancel_errors, entry_errors, spread_errors, traced_study  # noqa: E402

BOUNDS = Bounds()
BAND = {"pass": 0, "warn": 1, "fail": 2}
#: Planted errors projected at once (a block of n_params x CHUNK floats).
CHUNK = 24
#: Relative differences below this are rounding (a correct group's are 1e-16 to 2e-15).
ROUNDING = 1e-12


class Network:
    """One benchmark network with its correct gradient G (flat), and the exhaustive verdicts of G + E."""

    def __init__(self, name: str, hidden: str):
        self.name, self.hidden = name, hidden
        self.net, self.params, self.X, self.Y = network(name, hidden=hidden)
        self.layout, self.theta = Layout.from_params(self.params)
        self.G = self.layout.flatten_grads(self.net.gradient(self.params, self.X, self.Y))
        self.names = [g.name for g in self.layout.groups]

    def grads(self, E: np.ndarray) -> dict:
        return {f"d{k}": v for k, v in self.layout.unflatten(self.G + E).items()}

    def check(self, E: np.ndarray, **options):
        return self.net.check(self.params, self.grads(E), self.X, self.Y, escalate=False, **options)

    def exhaustive(self, E: np.ndarray) -> dict:
        """Per group: (full mode's verdict, its relative difference)."""
        report = self.check(E)
        return {g.name: (g.verdict, g.difference) for g in report.groups}


class Replay:
    """One seeded directions check of G (32 per group and 32 over theta) and its verdicts for G + E."""

    def __init__(self, case: Network, kind: str, seed: int):
        self.case, self.kind, self.seed = case, kind, seed
        report = case.net.check(case.params, case.grads(0.0), case.X, case.Y, mode="directions",
                                n_directions=K_MAX, distribution=kind, seed=seed, escalate=False)
        self.correct = {g.name: g.verdict for g in report.groups} | {GLOBAL: report.overall_directions.verdict}
        self.correct_max = max(g.difference for g in [*report.groups, report.overall_directions])
        directions = draw_directions(case.layout, K_MAX, seed, kind=kind)
        assert [(d.group, d.number) for d in directions] == [(r.group, r.number) for r in report.directions]
        self.spans = {}
        for name in [*case.names, GLOBAL]:
            rows = [i for i, d in enumerate(directions) if d.group == name]
            mine = [directions[i] for i in rows]
            steps = direction_steps(case.theta, case.G, mine, DEFAULT_EPS)
            u = (steps.plus + steps.minus) / (2 * DEFAULT_EPS)
            numeric = np.array([report.directions[i].numeric for i in rows])
            analytic = np.array([report.directions[i].analytic for i in rows])
            kinks = np.array([report.directions[i].kink for i in rows])
            span = slice(mine[0].start, mine[0].stop)
            assert np.allclose(u @ case.G[span], analytic, rtol=1e-9, atol=1e-15 * np.abs(analytic).max())
            self.spans[name] = (span, u, numeric, analytic, ~kinks)

    def differences(self, E: np.ndarray, counts=(16,)) -> dict:
        """``{k: {group or GLOBAL: array}}``: the first k directions' relative differences for G + E.

        ``E`` is n_params x m, m planted errors side by side.
        """
        out = {k: {} for k in counts}
        for name, (span, u, numeric, analytic, counted) in self.spans.items():
            projected = analytic[:, None] + u @ E[span]
            for k in counts:
                use = counted[:k]
                n, a = numeric[:k][use][:, None], projected[:k][use]
                top = np.linalg.norm(n - a, axis=0)
                bottom = np.linalg.norm(n, axis=0) + np.linalg.norm(a, axis=0)
                out[k][name] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)
        return out


def verdicts(d: np.ndarray) -> np.ndarray:
    return np.array([BAND[BOUNDS.verdict(float(x))] for x in np.atleast_1d(d)])


def _replays(case, seeds, kinds=KINDS):
    for kind in kinds:
        for seed in seeds:
            yield Replay(case, kind, seed)


def validate(case: Network, errors: list, kinds=KINDS) -> tuple[int, float]:
    """The replay against ``net.check`` for ``errors`` at seeds 0 and 1, k = 16: verdicts equal, differences close."""
    agreed, gap = 0, 0.0
    E = np.stack([e for _, e in errors], axis=1)
    for replay in _replays(case, (0, 1), kinds):
        mine = replay.differences(E)[16]
        for j, (label, e) in enumerate(errors):
            report = case.check(e, mode="directions", n_directions=16, distribution=replay.kind, seed=replay.seed)
            rows = {g.name: g for g in report.groups} | {GLOBAL: report.overall_directions}
            for name, row in rows.items():
                d = mine[name][j]
                if BOUNDS.verdict(float(d)) != row.verdict:
                    raise SystemExit(f"replay differs from the API: {case.name} {case.hidden} {replay.kind} "
                                     f"seed {replay.seed} {label} {name}: {d!r} against {row.difference!r}")
                if row.difference > ROUNDING:  # below, the engine's own rounding: stacks of 16 and of 32 differ there
                    gap = max(gap, abs(d - row.difference) / row.difference)
                agreed += 1
    return agreed, gap


def study_network(case: Network, seeds: range, quick: bool, out: dict) -> None:
    """Bugs, single wrong entries, spread errors and correct gradients on ``case``, for both distributions."""
    bugs = [(f"bug:{b}", case.layout.flatten_grads(buggy_gradient(case.net, b, case.params, case.X, case.Y)) - case.G)
            for b in BUGS]
    if case.name == "M":  # the README's claim: only db2 wrong, by 2%
        e = np.zeros_like(case.G)
        e[case.layout.group("b2").slice] = 0.02 * case.G[case.layout.group("b2").slice]
        bugs.append(("bug:db2 x1.02", e))
    entries = entry_errors(case, quick)
    spread = spread_errors(case, quick)
    cancel = cancel_errors(case)
    every = bugs + entries + spread + [(label, e) for label, e, _ in cancel]
    exhaustive = [case.exhaustive(e) for _, e in every]
    agreed, gap = validate(case, bugs + entries[::7] + spread[::11] + [(label, e) for label, e, _ in cancel[::2]])
    out["validation"].append((f"{case.name} {case.hidden}", agreed, gap))
    for replay in _replays(case, seeds):
        key = (case.name, case.hidden, replay.kind)
        out["correct"].setdefault(key, []).append((replay.correct, replay.correct_max))
        for label, e, p0 in cancel:  # how many of the group's directions see the error as exactly 0
            span, u, *_ = replay.spans[label.split(":")[1]]
            seen = np.abs(u @ e[span]) <= 1e-10 * np.linalg.norm(u, axis=1) * np.linalg.norm(e[span])  # 0 to rounding
            # keyed without the activation: relu and tanh draw the same directions, counted once
            out["zeros"][(case.name, replay.kind, label, replay.seed)] = (p0, int(seen.sum()), len(u))
        for at in range(0, len(every), CHUNK):
            E = np.stack([e for _, e in every[at:at + CHUNK]], axis=1)
            for k, d in replay.differences(E, COUNTS).items():
                for j, (label, _) in enumerate(every[at:at + CHUNK]):
                    out["cases"].setdefault((*key, label, k), []).append({name: d[name][j] for name in d})
    for (label, _), exh in zip(every, exhaustive):
        out["exhaustive"][(case.name, case.hidden, label)] = exh


def _pct(x) -> str:
    return f"{100 * np.mean(x):.0f}%" if len(x) else "-"


def table_bugs(out, nets) -> list[str]:
    lines = ["| network | bug | exhaustive: origin | " + " | ".join(
        f"{kind}: origin fail (k=16) | {kind}: origin fail (k=4) | {kind}: others warn/fail | {kind}: (all) fails"
        for kind in KINDS) + " |", "|---|---|---|" + "---|---|---|---|" * len(KINDS)]
    for case in nets:
        bug_labels = sorted({key[3] for key in out["cases"] if key[:2] == (case.name, case.hidden)
                             and key[3].startswith("bug:")})
        for label in bug_labels:
            name = label[4:]
            if name in BUGS:
                origin, touches = BUGS[name].origin(case.net), BUGS[name].touches(case.net)
            else:
                origin = touches = ["b2"]
            exh = out["exhaustive"][(case.name, case.hidden, label)]
            cells = [f"{case.name} {case.hidden}", name, ", ".join(f"{g} {exh[g][0]}" for g in origin)]
            for kind in KINDS:
                rows16 = out["cases"][(case.name, case.hidden, kind, label, 16)]
                rows4 = out["cases"][(case.name, case.hidden, kind, label, 4)]
                others = [g for g in case.names if g not in touches]
                def all_fail(rows, origin=origin):
                    return [all(verdicts(r[g])[0] == 2 for g in origin) for r in rows]

                alarms = [any(verdicts(r[g])[0] > 0 for g in others) for r in rows16]
                cells += [_pct(all_fail(rows16)), _pct(all_fail(rows4)), _pct(alarms) if others else "(none)",
                          _pct([verdicts(r[GLOBAL])[0] == 2 for r in rows16])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_entries(out, nets) -> list[str]:
    head = " | ".join(f"{kind} k={k}" for kind in KINDS for k in (4, 16, 32))
    lines = [f"| network | group | off by (x ||G||) | exhaustive: difference, verdict | {head} |",
             "|---|---|---|---|" + "---|" * 2 * 3]
    for name in sorted({c.name for c in nets}):
        for group in ("W1", "b2"):
            for size in SIZES:
                labels = [key for key in out["exhaustive"] if key[0] == name and key[2].startswith(f"entry:{group}[")
                          and key[2].split(":")[2] == f"{size:g}"]
                exh = [out["exhaustive"][key][group] for key in labels]
                cells = [name, group, f"{size:g}", f"{np.median([e[1] for e in exh]):.1e}, "
                         + "/".join(sorted({e[0] for e in exh}))]
                for kind in KINDS:
                    for k in (4, 16, 32):
                        v = np.concatenate([verdicts([r[group] for r in out["cases"][(*key[:2], kind, key[2], k)]])
                                            for key in labels])
                        cells.append(f"{_pct(v == 2)} / {_pct(v == 1)}")
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def _spread(out, kind, pattern, k=16):
    """(ratio of the directions' difference to the exhaustive one, directions' band, exhaustive band, target) rows."""
    rows = []
    for key, exh in out["exhaustive"].items():
        label = key[2]
        if not label.startswith("spread:"):
            continue
        _, group, what, target = label.split(":")
        if what != pattern:
            continue
        verdict, d_exh = exh[group]
        for r in out["cases"][(key[0], key[1], kind, label, k)]:
            rows.append((r[group] / d_exh, BAND[BOUNDS.verdict(float(r[group]))], BAND[verdict], target,
                         group.startswith("b"), BAND[BOUNDS.verdict(d_exh)]))
    return rows


def table_spread(out, patterns) -> list[str]:
    heads = [f"{kind} k={k}: median [5%, 95%] [1%, 99%] min" for k in (4, 16) for kind in KINDS]
    lines = ["| error | groups | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for pattern in patterns:
        for vector in (False, True):
            cells = [pattern, "b2" if vector else "W1, W2"]
            for k in (4, 16):
                for kind in KINDS:
                    ratio = np.array([r[0] for r in _spread(out, kind, pattern, k) if r[4] == vector])
                    if ratio.size:
                        p1, p5, p50, p95, p99 = np.percentile(ratio, [1, 5, 50, 95, 99])
                        cells.append(f"{p50:.2f} [{p5:.2f}, {p95:.2f}] [{p1:.2f}, {p99:.2f}] {ratio.min():.2f}")
            if len(cells) > 2:
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_disagree(out, patterns) -> list[str]:
    targets = [f"{t:g}" for t in TARGETS] + ["natural"]
    lines = ["| error | distribution | " + " | ".join(f"exh. ~{t}" for t in targets) + " |",
             "|---|---|" + "---|" * len(targets)]
    for pattern in patterns:
        for kind in KINDS:
            rows = _spread(out, kind, pattern)
            cells = [pattern, kind]
            for t in targets:
                mine = [r for r in rows if r[3] == t]
                if not mine:
                    cells.append("")
                    continue
                band = [r[1] != r[5] for r in mine]
                differ = [r[1] != r[2] for r in mine]
                milder = [r[1] < r[2] for r in mine]
                cells.append(f"{_pct(band)}; {_pct(differ)} ({_pct(milder)} milder)")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_cancel(out) -> list[str]:
    heads = [f"{kind}: zero directions; missed (pass) k=4 / 8 / 16; warn k=4 / 8 / 16" for kind in KINDS]
    lines = ["| network | group | error | exhaustive | p0 (one sign direction sees 0, exact); p0^4 / p0^8 / p0^16 | "
             + " | ".join(heads) + " |", "|---|---|---|---|---|" + "---|" * len(KINDS)]
    for key in sorted({(n, label) for (n, _, label, _) in out["zeros"]}):
        name, label = key
        _, group, pattern = label.split(":")
        exh = {out["exhaustive"][(n, h, lab)][group][0] for (n, h, lab) in out["exhaustive"] if (n, lab) == key}
        p0 = next(v[0] for k, v in out["zeros"].items() if (k[0], k[2]) == key)
        cells = [name, group, pattern, "/".join(sorted(exh)), f"{p0:.4f}; {p0**4:.0e} / {p0**8:.0e} / {p0**16:.0e}"]
        for kind in KINDS:
            zeros = sum(v[1] for k, v in out["zeros"].items() if (k[0], k[2]) == key and k[1] == kind)
            total = sum(v[2] for k, v in out["zeros"].items() if (k[0], k[2]) == key and k[1] == kind)
            bands = [verdicts([r[group] for (n, h, kd, lab, kk), rs in out["cases"].items()
                               if (n, lab) == key and kd == kind and kk == k for r in rs]) for k in (4, 8, 16)]
            cells.append(f"{zeros / total:.4f} ({zeros} of {total}); " + " / ".join(_pct(b == 0) for b in bands)
                         + "; " + " / ".join(_pct(b == 1) for b in bands))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_correct(out) -> list[str]:
    lines = ["| network | distribution | checks | groups warn | groups fail | (all) warn/fail | largest difference |",
             "|---|---|---|---|---|---|---|"]
    for (name, hidden, kind), rows in out["correct"].items():
        groups = [v for r, _ in rows for g, v in r.items() if g != GLOBAL]
        overall = [r[GLOBAL] for r, _ in rows]
        lines.append(f"| {name} {hidden} | {kind} | {len(rows)} | {groups.count('warn')} of {len(groups)} | "
                     f"{groups.count('fail')} | {sum(v != 'pass' for v in overall)} | "
                     f"{max(m for _, m in rows):.1e} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="seeds per case on network M (S takes 4x, the user "
                        "models half; default 40)")
    parser.add_argument("--quick", action="store_true", help="a few seeds and fewer errors: a smoke run")
    args = parser.parse_args(argv)
    seeds = 3 if args.quick else args.seeds
    tic = time.perf_counter()
    load = os.getloadavg()
    out = {"cases": {}, "exhaustive": {}, "correct": {}, "validation": [], "zeros": {}}
    nets = [Network(n, h) for n in ("S", "M") for h in ("relu", "tanh")]
    for case in nets:
        study_network(case, range(4 * seeds if case.name == "S" else seeds), args.quick, out)
        print(f"<!-- {case.name} {case.hidden} done at {time.perf_counter() - tic:.0f} s -->", flush=True)
    user_seeds = 2 if args.quick else max(4, seeds // 2)
    traced = traced_study(range(user_seeds))
    command = "python benchmarks/directions_study.py" + (" --quick" if args.quick else f" --seeds {args.seeds}")
    print(f"`{command}`: fastcheck {fc.__version__}, {time.perf_counter() - tic:.0f} s, load average "
          f"{load[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end; S {4 * seeds} seeds and M "
          f"{seeds} per network, activation and distribution, the user models {user_seeds}.\n")
    patterns = sorted({key[2].split(":")[2] for key in out["exhaustive"] if key[2].startswith("spread:")})
    for title, lines in [
        ("Correct gradients: verdicts of 32 directions per group, 6 groups and (all) (S, M)", table_correct(out)),
        ("Bugs of fastcheck.apps.bugs: rate of seeds where every origin group fails; where a group the bug does "
         "not touch warns or fails", table_bugs(out, nets)),
        ("One wrong entry (W1 and b2, 3 positions each, relu and tanh pooled): fail / warn rates",
         table_entries(out, nets)),
        ("Errors spread over a group: the directions' relative difference over the exhaustive one, k=4 and k=16",
         table_spread(out, patterns)),
        ("Errors spread over a group: verdicts that differ from the band of the exhaustive difference; from the "
         "full check's verdict (milder: the directions pass or warn where it warns or fails), k=16",
         table_disagree(out, patterns)),
        ("Errors a sign direction can see as exactly zero, on small groups (exhaustive difference about 1e-2): "
         "the share of directions that see nothing, and the rates of checks that pass (missed) and that only warn",
         table_cancel(out)),
        ("User models through fc.check (traced engine), 16 directions", traced),
    ]:
        print(f"### {title}\n\n" + "\n".join(lines) + "\n")
    print("Replay held to the API (k=16, seeds 0 and 1): " + "; ".join(
        f"{name}: {n} verdicts equal, differences within {gap:.0e}" for name, n, gap in out["validation"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
