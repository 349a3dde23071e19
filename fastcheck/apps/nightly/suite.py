"""The suite file of ``fastcheck nightly``: its TOML schema, validated into a :class:`Suite`.

A suite lists problems, built-in MLPs (``layers`` or ``network``) or user factories
``module:function``, each with its check settings and the points it is checked at;
``[defaults]`` gives settings to every problem. The check settings are those of
:class:`~fastcheck.pipeline.options.CheckOptions`, whose rules apply as they are, named by
their key path in the file (``problems[0].eps``, or ``defaults.eps`` when the value came
from there). What is the suite's alone is checked here: how a problem runs (``n_jobs``,
``backend``, ``scheduler``, ``chunk_size``, ``timeout``), what it is, and its points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...mlp.functions import HIDDEN, OUTPUTS
from ...pipeline.options import COST_ENGINES, MLP_ENGINES, MODES, CheckOptions, expect
from ..bugs import BUGS
from ..networks import NETWORKS
from ..problems import import_function

__all__ = ["ConfigError", "Point", "Problem", "Suite", "load_suite", "parse_suite", "import_factory"]

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MISSING = object()

#: The modes that run in chunks of coordinates (random directions do not).
CHUNKED_MODES = tuple(mode for mode in MODES if mode != "directions")
#: The check settings of a suite by their TOML names, and the CheckOptions' names they set.
_CHECK_KEYS = {"mode": "mode", "fraction": "fraction", "n_samples": "n_samples", "subset_seed": "seed",
               "eps": "eps", "stencil": "stencil", "warn": "warn", "fail": "fail", "timeout": "timeout",
               "sweep": "sweep"}
_TOML_KEYS = {key: toml for toml, key in _CHECK_KEYS.items()}
#: Check settings that are numbers: an integer in the file (``fail = 1``) is that float (``eps = "auto"`` stays).
_FLOATS = ("fraction", "eps", "warn", "fail", "timeout")  # the same in the file and in CheckOptions
#: Settings that cannot change the numbers of a check: left out of its config hash.
_NOT_NUMBERS = ("chunk_size", "timeout", "sweep")  # the sweep adds to a report, changes none of it
_DEFAULT_OPTIONS = CheckOptions()
#: Every setting a problem (or ``[defaults]``) takes, and its default: the check's, then how it runs.
_CHECK_DEFAULTS = {**{toml: getattr(_DEFAULT_OPTIONS, key) for toml, key in _CHECK_KEYS.items()},
                   "n_jobs": None, "backend": "loky", "scheduler": None, "chunk_size": None}
_MLP_DEFAULTS = {"network": None, "layers": None, "hidden": "relu", "output": "softmax", "l2": 0.0,
                 "examples": 32, "data_seed": 1, "bug": None, "engine": MLP_ENGINES[0],
                 "kinks": _DEFAULT_OPTIONS.kinks}
_FACTORY_KEYS = {"factory", "engine"}
_POINT_KEYS = {"name", "seed", "train_steps", "learning_rate"}


class ConfigError(InputError):
    """A suite file that cannot be used: the message names the key path and what was expected."""


@dataclass(frozen=True)
class Point:
    """A parameter point: random initialization ``seed``, then ``train_steps`` of gradient
    descent with the problem's own gradient (the one under test) at ``learning_rate``."""

    name: str
    seed: int | None = None
    train_steps: int = 0
    learning_rate: float = 0.1

    def settings(self) -> dict:
        return {"seed": self.seed, "train_steps": self.train_steps, "learning_rate": self.learning_rate}


@dataclass(frozen=True)
class Problem:
    """One problem of the suite: ``spec`` is the MLP's (``layers``, ...) or the ``factory``;
    ``options`` the settings by their TOML names; ``check`` the CheckOptions they make;
    ``points`` where to check."""

    name: str
    kind: str  # "mlp" or "factory"
    spec: dict
    options: dict
    points: tuple[Point, ...]
    check: CheckOptions

    def settings(self) -> dict:
        """Everything that can change the numbers (the chunk size and the timeout cannot)."""
        return {"name": self.name, "kind": self.kind, **self.spec,
                **{k: v for k, v in self.options.items() if k not in _NOT_NUMBERS}}


@dataclass(frozen=True)
class Suite:
    problems: tuple[Problem, ...]
    path: str = "<string>"


def _int(path, value, low=None):
    expect(isinstance(value, int) and not isinstance(value, bool), path, "an integer", value)
    if low is not None:
        expect(value >= low, path, f"an integer >= {low}", value)
    return value


def _number(path, value, what="a number"):
    expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), path, what,
           value)
    return float(value)


def _choice(path, value, choices):
    expect(isinstance(value, str) and value in choices, path, "one of " + ", ".join(map(repr, choices)), value)
    return value


def _given_settings(table: dict, path: str) -> dict:
    """The settings ``table`` gives: how the problem runs validated here, the check's left to CheckOptions."""
    out = {}
    for key in _CHECK_DEFAULTS:
        if key not in table:
            continue
        value, where = table[key], f"{path}.{key}"
        if key == "mode":
            if value == "directions":
                raise ConfigError(f"{where}: 'directions' cannot run in resumable chunks; use 'full' or 'subset'")
            out[key] = _choice(where, value, CHUNKED_MODES)
        elif key == "chunk_size":
            out[key] = _int(where, value, 1)
        elif key == "n_jobs":
            out[key] = _int(where, value)
            expect(value >= 1 or value == -1, where, "a positive integer or -1 (all cores)", value)
        elif key == "backend":
            out[key] = _choice(where, value, ("loky", "dask"))
        elif key == "scheduler":
            expect(isinstance(value, str) and value, where, "a scheduler address like 'tcp://host:8786'", value)
            out[key] = value
        else:
            out[key] = value
    return out


def _build_check(options: dict, spec: dict, origin: dict, path: str, kind: str) -> CheckOptions:
    """The CheckOptions of a problem's merged settings; errors name the table each value came from."""

    def name(key: str) -> str:
        toml = _TOML_KEYS.get(key, key)
        return f"{origin.get(toml, path)}.{toml}"

    values = {key: options[toml] for toml, key in _CHECK_KEYS.items()}
    engine = {key: spec[key] for key in ("engine", "kinks") if key in spec}
    # its rules, on the values as written; a resumable run checks its chunks and escalates nothing
    check = CheckOptions(**values, **engine, escalate=False, name=name)
    if kind == "mlp":  # CheckOptions checks an engine's name against a kind
        check.engine_or(MLP_ENGINES, MLP_ENGINES[0])
    else:
        check.engine_or(COST_ENGINES, COST_ENGINES[0])
    return check.but(**{key: float(values[key]) for key in _FLOATS if isinstance(values[key], (int, float))})


def _run_rules(options: dict, path: str, kind: str) -> None:
    """How a problem runs: rules between its keys, once defaults and its own keys are merged."""
    if options["backend"] == "dask" and options["scheduler"] is None:
        raise ConfigError(f"{path}.scheduler: backend 'dask' needs a scheduler address, e.g. 'tcp://host:8786'")
    if options["backend"] != "dask" and options["scheduler"] is not None:
        raise ConfigError(f"{path}.scheduler: goes with backend = 'dask'")
    if kind == "mlp" and options["backend"] == "dask":
        raise ConfigError(f"{path}.backend: 'dask' is for user factories; a built-in MLP runs on this "
                          "machine's cores (set n_jobs for its threads)")
    if kind == "factory" and options["backend"] == "dask" and options["n_jobs"] in (None, 1):
        raise ConfigError(f"{path}.n_jobs: backend 'dask' runs workers: set n_jobs to the number of tasks "
                          "at once (or -1)")


# the MLP table's keys, one rule each, in the order the suite documents them
def _mlp_spec(table: dict, path: str) -> dict:  # noqa: C901
    spec = dict(_MLP_DEFAULTS)
    if "network" in table:
        name = _choice(f"{path}.network", table["network"], tuple(NETWORKS))
        if "layers" in table or "examples" in table:
            key = "layers" if "layers" in table else "examples"
            raise ConfigError(f"{path}.{key}: give `network` or `layers`/`examples`, not both")
        spec.update(network=name, layers=list(NETWORKS[name].layers), examples=NETWORKS[name].examples, l2=0.1)
    for key in _MLP_DEFAULTS:
        if key not in table or key == "network":
            continue
        value, where = table[key], f"{path}.{key}"
        if key == "layers":
            expect(isinstance(value, list) and len(value) >= 2
                   and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value),
                   where, "an array of at least 2 positive integers, e.g. [64, 32, 16, 4]", value)
            spec[key] = list(value)
        elif key == "hidden":
            spec[key] = _choice(where, value, tuple(HIDDEN))
        elif key == "output":
            spec[key] = _choice(where, value, tuple(OUTPUTS))
        elif key == "l2":
            spec[key] = _number(where, value, "a number >= 0")
            expect(spec[key] >= 0, where, "a number >= 0", value)
        elif key == "examples":
            spec[key] = _int(where, value, 1)
        elif key == "data_seed":
            spec[key] = _int(where, value, 0)
        elif key == "bug":
            spec[key] = _choice(where, value, tuple(BUGS))
        else:  # engine, kinks: CheckOptions' rules
            spec[key] = value
    if spec["layers"] is None:
        raise ConfigError(f"{path}.layers: missing; a built-in MLP needs `layers` (e.g. [64, 32, 16, 4]) or "
                          "`network` ('S', 'M' or 'L')")
    if spec["bug"] is not None and len(spec["layers"]) < 4:
        raise ConfigError(f"{path}.bug: bugs are planted in layer 2, which needs at least 2 hidden layers; "
                          f"layers = {spec['layers']} has {len(spec['layers']) - 2}")
    if spec["bug"] == "missing_l2" and spec["l2"] == 0:
        raise ConfigError(f"{path}.bug: 'missing_l2' needs l2 > 0")
    return spec


def _factory_spec(table: dict, path: str) -> dict:
    value, where = table["factory"], f"{path}.factory"
    expect(isinstance(value, str) and bool(_FACTORY.match(value)), where,
           "'module:function', e.g. 'mypkg.problems:small_net'", value)
    # imported once the whole suite is valid (parse_suite); an engine only when given, CheckOptions' rules
    return {"factory": value, **({"engine": table["engine"]} if "engine" in table else {})}


def import_factory(spec: str, where: str):
    """The factory ``spec`` (``module:function``) names; a :class:`ConfigError` naming ``where`` if none."""
    try:
        return import_function(spec)
    except InputError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _points(value, path: str, kind: str) -> tuple[Point, ...]:
    if value is _MISSING:
        value = [{"seed": 0}] if kind == "mlp" else [{}]
    expect(isinstance(value, list) and len(value) > 0, path, "a non-empty array of tables like [{seed = 0}]",
           value)
    out, seen = [], {}
    for i, table in enumerate(value):
        where = f"{path}[{i}]"
        expect(isinstance(table, dict), where, "a table like {seed = 0, train_steps = 20}", table)
        for key in table:
            if key not in _POINT_KEYS:
                raise ConfigError(f"{where}.{key}: unknown key; a point takes {', '.join(sorted(_POINT_KEYS))}")
        seed = _int(f"{where}.seed", table["seed"], 0) if "seed" in table else None
        if seed is None and kind == "mlp":
            raise ConfigError(f"{where}.seed: missing; a point of a built-in MLP needs the seed of its "
                              "initialization, e.g. {seed = 0}")
        steps = _int(f"{where}.train_steps", table.get("train_steps", 0), 0)
        rate = _number(f"{where}.learning_rate", table.get("learning_rate", 0.1), "a positive number")
        expect(rate > 0, f"{where}.learning_rate", "a positive number", table.get("learning_rate"))
        if "learning_rate" in table and steps == 0:
            raise ConfigError(f"{where}.learning_rate: goes with train_steps > 0")
        if "name" in table:
            name = table["name"]
            expect(isinstance(name, str) and bool(_NAME.match(name)), f"{where}.name",
                   "a name of letters, digits and _ . + -", name)
        else:
            name = ("seed" + str(seed) if seed is not None else "default") + (
                f"+train{steps}" + (f"-lr{rate:g}" if "learning_rate" in table else "") if steps else "")
        if name in seen:
            raise ConfigError(f"{where}: duplicate point {name!r} (same as {path}[{seen[name]}]); give it a `name`")
        seen[name] = i
        out.append(Point(name, seed, steps, rate))
    return tuple(out)


def _problem(table: dict, path: str, name: str, defaults: dict) -> Problem:
    kind = "factory" if "factory" in table else "mlp"
    allowed = {"name", "points", *_CHECK_DEFAULTS, *(_FACTORY_KEYS if kind == "factory" else _MLP_DEFAULTS)}
    for key in table:
        if key not in allowed:
            hint = " (MLP keys do not go with `factory`)" if key in _MLP_DEFAULTS and kind == "factory" else ""
            raise ConfigError(f"{path}.{key}: unknown key{hint}; allowed: {', '.join(sorted(allowed))}")
    spec = _factory_spec(table, path) if kind == "factory" else _mlp_spec(table, path)
    given = _given_settings(table, path)
    if kind == "mlp":
        if "timeout" in given:
            raise ConfigError(f"{path}.timeout: limits a user factory's cost; a built-in MLP runs no user code")
        defaults = {k: v for k, v in defaults.items() if k != "timeout"}  # [defaults] timeout is the factories'
    options = {**_CHECK_DEFAULTS, **defaults, **given}
    origin = {**dict.fromkeys(defaults, "defaults"), **dict.fromkeys(given, path)}
    check = _build_check(options, spec, origin, path, kind)
    options.update({key: getattr(check, key) for key in _FLOATS})
    _run_rules(options, path, kind)
    return Problem(name, kind, spec, options, _points(table.get("points", _MISSING), f"{path}.points", kind), check)


def parse_suite(data: dict, path: str = "<string>") -> Suite:
    """Validate a parsed suite (the TOML's dict) and return the :class:`Suite`.

    The factories' modules are imported after the whole suite is validated.

    Raises
    ------
    ConfigError
        Naming the key path (``problems[2].layers``) and what was expected, or the
        factory whose module cannot be imported.
    """
    try:
        suite = _parse(data, path)
    except ConfigError:
        raise
    except InputError as exc:  # the rules shared with the API (CheckOptions, expect) raise InputError
        raise ConfigError(str(exc)) from exc
    # the user's modules run only for a suite that is valid as a whole: a rejected suite runs no code of theirs
    for i, problem in enumerate(suite.problems):
        if problem.kind == "factory":
            import_factory(problem.spec["factory"], f"problems[{i}].factory")
    return suite


def _parse(data: dict, source: str) -> Suite:
    for key in data:
        if key not in ("problems", "defaults"):
            raise ConfigError(f"{key}: unknown key; a suite has `problems` (an array of tables "
                              "[[problems]]) and optionally `defaults`")
    defaults = {}
    if "defaults" in data:
        table = data["defaults"]
        expect(isinstance(table, dict), "defaults", "a table [defaults]", table)
        for key in table:
            if key not in _CHECK_DEFAULTS:
                raise ConfigError(f"defaults.{key}: unknown key; defaults take {', '.join(_CHECK_DEFAULTS)}")
        defaults = _given_settings(table, "defaults")
    if "problems" not in data:
        raise ConfigError("problems: missing; add at least one [[problems]] table")
    problems = data["problems"]
    expect(isinstance(problems, list) and len(problems) > 0, "problems",
           "a non-empty array of tables ([[problems]])", problems)
    out, names = [], {}
    for i, table in enumerate(problems):
        path = f"problems[{i}]"
        expect(isinstance(table, dict), path, "a table ([[problems]])", table)
        if "name" not in table:
            raise ConfigError(f"{path}.name: missing; every problem needs a unique name")
        name = table["name"]
        expect(isinstance(name, str) and bool(_NAME.match(name)), f"{path}.name",
               "a name of letters, digits and _ . + -", name)
        if name in names:
            raise ConfigError(f"{path}.name: duplicate problem name {name!r} (also problems[{names[name]}])")
        names[name] = i
        out.append(_problem(table, path, name, defaults))
    return Suite(tuple(out), source)


def load_suite(path) -> Suite:
    """Read and validate a suite file (TOML; Python 3.11+, or the ``tomli`` package)."""
    try:
        import tomllib  # in the standard library from Python 3.11: imported where a suite is read
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise InputError("reading a suite needs Python 3.11+ (tomllib) or the `tomli` package") from None
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read suite {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); a suite is a UTF-8 TOML "
                          "file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_suite(data, str(path))
