"""Every setting of a check, its default and its rules, in one place: :class:`CheckOptions`.

The Python API, the command line and the nightly suite all build one ``CheckOptions``;
each names the settings its own way in error messages (``mode`` in Python, ``--mode`` on
the command line, ``problems[0].mode`` in a suite file), which is all that differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

from ..core.directions import KINDS
from ..core.finite import (
    AUTO,
    AUTO_RELATIVE,
    DEFAULT_EPS,
    DEFAULT_FAIL,
    DEFAULT_WARN,
    STENCILS,
    Bounds,
    auto_steps,
    validate_eps,
)
from ..core.limits import DEFAULT_MAX_MEMORY
from ..core.selection import DEFAULT_MIN_PER_GROUP
from ..core.settings import expect, is_int, is_number, require_max_memory, require_timeout, type_name
from ..errors import InputError
from ..report import GUARANTEE_FRACTION

__all__ = ["CheckOptions", "MODES", "KINK_POLICIES", "MLP_ENGINES", "COST_ENGINES", "DEFAULT_DIRECTIONS", "SWEPT",
           "ESCALATE_SECONDS", "ESCALATE_MIN", "DEFAULT_MAX_MEMORY", "python_name", "expect", "type_name"]

MODES = ("full", "subset", "directions")
#: What the report does with coordinates whose +-eps perturbation crosses a kink.
KINK_POLICIES = ("exclude", "include")
#: Engines of the built-in MLP (the first is the default).
MLP_ENGINES = ("batched", "reference")
#: Engines of a user's cost (the default: traced where the cost can be traced, else chosen from n_jobs and
#: batch_cost).
COST_ENGINES = ("traced", "reference", "blackbox")
#: Directions per group (and over all of theta) when ``n_directions`` is not given.
DEFAULT_DIRECTIONS = 16
#: Escalation re-checks every entry of the flagged groups when the engine's estimate says
#: it takes at most this many seconds, else as many (at random) as fit ...
ESCALATE_SECONDS = 30.0
#: ... but never fewer than this many entries of a group (or all of a smaller one).
ESCALATE_MIN = 1_000
#: The verdicts of the groups whose worst entries a step sweep re-evaluates, per value of
#: ``sweep``: by default (None) the groups that warn, whose error may be a bug or noise;
#: True adds the failing ones (their sweep says how sure the failure is); False: none.
SWEPT = {None: ("warn",), True: ("warn", "fail"), False: ()}


def python_name(key: str) -> str:
    """How the Python API names a setting in messages: ```mode```."""
    return f"`{key}`"


@dataclass(frozen=True)
class CheckOptions:
    """The settings of one check, validated when built (then frozen).

    Attributes are the keywords of :func:`fastcheck.check` and :meth:`fastcheck.MLP.check`
    (see there); ``name`` tells how errors name a setting (``python_name`` by default)
    and takes no part in comparisons.
    """

    eps: float = DEFAULT_EPS
    mode: str = "full"
    fraction: float | None = None
    n_samples: int | None = None
    n_directions: int | None = None
    distribution: str | None = None
    min_per_group: int = DEFAULT_MIN_PER_GROUP
    seed: int = 0
    kinks: str = "exclude"
    escalate: bool = True
    escalate_budget: int | None = None
    budget: float | None = None
    warn: float = DEFAULT_WARN
    fail: float = DEFAULT_FAIL
    engine: str | None = None
    max_memory: int | None = None
    timeout: float | None = None
    stencil: int = 2
    sweep: bool | None = None
    name: Callable[[str], str] = field(default=python_name, compare=False, repr=False)

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "eps", validate_eps(self.eps, n("eps")))
        expect(self.mode in MODES, n("mode"), "one of " + ", ".join(map(repr, MODES)), self.mode)
        expect(self.kinks in KINK_POLICIES, n("kinks"), "'exclude' (the default) or 'include'", self.kinks)
        expect(is_int(self.seed) and self.seed >= 0, n("seed"), "a non-negative integer", self.seed)
        for key in ("warn", "fail"):
            expect(is_number(getattr(self, key)) and getattr(self, key) > 0, n(key), "a positive number",
                   getattr(self, key))
        expect(self.warn <= self.fail, n("warn"), f"warn <= fail (fail is {self.fail:g})", self.warn)
        expect(is_int(self.min_per_group) and self.min_per_group >= 1, n("min_per_group"), "a positive integer",
               self.min_per_group)
        self._mode_rules()
        if self.escalate_budget is not None:
            expect(is_int(self.escalate_budget) and self.escalate_budget >= 1, n("escalate_budget"),
                   f"a positive integer (entries per group), or None for every entry that fits in "
                   f"{ESCALATE_SECONDS:g} s", self.escalate_budget)
        if self.max_memory is not None:
            require_max_memory(self.max_memory, n("max_memory"))
        object.__setattr__(self, "timeout", require_timeout(self.timeout, n("timeout")))
        object.__setattr__(self, "escalate", bool(self.escalate))
        self._step_rules()

    def _step_rules(self) -> None:
        n = self.name
        expect(is_int(self.stencil) and self.stencil in STENCILS, n("stencil"),
               "2 (the central difference) or 4 (the 4-point stencil, O(eps^4))", self.stencil)
        object.__setattr__(self, "stencil", int(self.stencil))
        expect(self.sweep in SWEPT, n("sweep"), "None (sweep the groups that warn), True (also those that fail) "
               "or False (never)", self.sweep)
        if self.mode == "directions":
            if self.eps == AUTO:
                raise InputError(f"{n('eps')}: 'auto' gives each coordinate its own step, and a random direction "
                                 f"moves many at once: with mode='directions' give a number (e.g. {DEFAULT_EPS:g})")
            if self.stencil != 2:
                raise InputError(f"{n('stencil')}: the 4-point stencil is for the coordinate modes ('full', "
                                 "'subset'); mode='directions' takes the central difference (stencil 2)")

    def _mode_rules(self) -> None:
        n, mode = self.name, self.mode
        for key in ("fraction", "n_samples"):
            if mode != "subset" and getattr(self, key) is not None:
                raise InputError(f"{n(key)}: goes with {self._mode_is('subset')}, not {self._mode_is(mode)}")
        if mode == "subset":
            if (self.fraction is None) == (self.n_samples is None):
                raise InputError(f"{n('mode')}: 'subset' needs exactly one of {n('fraction')} (in (0, 1]) or "
                                 f"{n('n_samples')}")
            if self.fraction is not None:
                expect(is_number(self.fraction) and 0 < self.fraction <= 1, n("fraction"),
                       "a number in (0, 1], e.g. 0.01 for 1% of the coordinates", self.fraction)
            else:
                expect(is_int(self.n_samples) and self.n_samples >= 1, n("n_samples"), "a positive integer",
                       self.n_samples)
        self._directions_rules()
        if self.budget is not None:
            if mode != "full":
                raise InputError(f"{n('budget')}: picks the widest subset that fits: use it with mode='full' "
                                 "(the default)")
            expect(is_number(self.budget) and self.budget > 0, n("budget"), "a positive number of seconds",
                   self.budget)

    def _mode_is(self, mode: str) -> str:
        """``mode='subset'`` as this front door writes it: ``--mode subset`` on the command line."""
        flag = self.name("mode")
        return f"{flag} {mode}" if flag.startswith("--") else f"mode={mode!r}"

    def _directions_rules(self) -> None:
        n, mode = self.name, self.mode
        for key in ("n_directions", "distribution"):
            if mode != "directions" and getattr(self, key) is not None:
                raise InputError(f"{n(key)}: goes with {self._mode_is('directions')}, not {self._mode_is(mode)}")
        if mode != "directions":
            return
        if self.n_directions is None:
            object.__setattr__(self, "n_directions", DEFAULT_DIRECTIONS)
        expect(is_int(self.n_directions) and self.n_directions >= 1, n("n_directions"),
               "a positive integer (e.g. 16)", self.n_directions)
        if self.distribution is None:
            object.__setattr__(self, "distribution", KINDS[0])
        expect(self.distribution in KINDS, n("distribution"),
               f"{KINDS[0]!r} (rank-one random signs, the default) or {KINDS[1]!r} (standard normals)",
               self.distribution)

    @classmethod
    def from_mapping(cls, values: Mapping, name: Callable[[str], str] = python_name) -> CheckOptions:
        """Options from a mapping of setting names (unknown names are an error, named by ``name``)."""
        known = {f.name for f in fields(cls)} - {"name"}
        for key in values:
            if key not in known:
                raise InputError(f"{name(key)}: unknown setting; known: {', '.join(sorted(known))}")
        return cls(**values, name=name)

    @property
    def bounds(self) -> Bounds:
        return Bounds(warn=self.warn, fail=self.fail)

    def steps(self, theta: np.ndarray) -> float | np.ndarray:
        """The coordinates' nominal steps: ``eps``, or with ``eps="auto"`` one per coordinate of
        ``theta`` (:func:`fastcheck.core.finite.auto_steps`, shape (n,))."""
        return auto_steps(theta, self.stencil) if self.eps == AUTO else self.eps

    @property
    def direction_eps(self) -> float:
        """The step of random directions (escalation's bisection too): ``eps``, or with
        ``eps="auto"`` the auto rule's step for parameters of magnitude at most 1."""
        return AUTO_RELATIVE[2] if self.eps == AUTO else self.eps

    @property
    def memory(self) -> int:
        """Bytes per chunk of stacked work (``max_memory``, or the default)."""
        return self.max_memory or DEFAULT_MAX_MEMORY

    def engine_or(self, choices: tuple[str, ...], default: str) -> str:
        """The engine asked for, checked against ``choices`` of this kind of problem, or ``default``."""
        if self.engine is None:
            return default
        expect(self.engine in choices, self.name("engine"), "one of " + ", ".join(map(repr, choices)), self.engine)
        return self.engine

    def but(self, **changes) -> CheckOptions:
        """A copy with ``changes``, validated again."""
        return replace(self, **changes)

    def settings(self) -> dict:
        """The settings a report records (the JSON format's ``settings``)."""
        out = {"eps": self.eps, "mode": self.mode, "seed": self.seed, "kinks": self.kinks}
        if self.stencil != 2:
            out["stencil"] = self.stencil
        if self.mode == "subset":
            out.update(fraction=self.fraction, n_samples=self.n_samples, min_per_group=self.min_per_group,
                       guarantee_fraction=GUARANTEE_FRACTION)
        if self.mode == "directions":
            out.update(n_directions=self.n_directions, distribution=self.distribution)
        if self.mode != "full":
            out["escalate"] = self.escalate
        if self.budget is not None:
            out["budget"] = self.budget
        return out
