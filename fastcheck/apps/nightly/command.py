"""``fastcheck nightly``: exhaustive checks of a suite of problems, resumable, with history.

A suite (TOML) lists problems: built-in MLPs or user factories ``module:function``,
each checked at one or more parameter points. Each (problem, point) is a **unit**: its
coordinates are evaluated chunk by chunk, every chunk written atomically to the run
directory with a checksum and the unit's key (a hash of its settings, its theta and
gradient, and fastcheck's version). A run killed at any moment and started again with
the same command merges the chunks already written and computes only the rest; a
corrupted chunk, or one computed for another key, is recomputed, never merged. The
report of a unit is the same, number for number, as an uninterrupted run's; its
``elapsed`` is the unit's compute time: the seconds spent evaluating its chunks, summed
over every session that contributed one, plus the last session's preparation (time
lost to an interruption is not counted). The last chunk of a unit is not written as a
chunk: the report it completes is written instead, so a unit that fits in one chunk
costs no checkpoint at all.

Run directory layout::

    DIR/.lock                     held (flock) while a run is active
    DIR/run.json                  the run's id and start time
    DIR/PROBLEM@POINT.json        the report of each finished unit (``Report.from_json``)
    DIR/chunks/PROBLEM@POINT/     the unit's chunks until its report is written

Each finished unit is recorded in the history (:mod:`fastcheck.history`), by default
``history.sqlite`` in the run directory's parent, so ``--run-dir runs/$(date +%F)``
keeps one history for every night.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ...errors import FastcheckError, InputError
from ..problems import import_function

__all__ = ["ConfigError", "RunLockedError", "Point", "Problem", "Suite", "load_suite", "parse_suite",
           "ChunkStore", "UnitResult", "run_suite", "register", "main", "TARGET_CHUNK_SECONDS"]

#: The default chunk size aims at chunks of about this many seconds (a kill loses at most that).
TARGET_CHUNK_SECONDS = 2.0
#: A chunk at most this many times larger (or smaller) than the previous one.
CHUNK_GROWTH = 8
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
EXIT_OK, EXIT_FAILED = 0, 1


class ConfigError(InputError):
    """A suite file that cannot be used: the message names the key path and what was expected."""


class RunLockedError(FastcheckError):
    """Another ``fastcheck nightly`` holds the run directory."""


# ====================================================================== the suite
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
    ``options`` the check settings; ``points`` where to check."""

    name: str
    kind: str  # "mlp" or "factory"
    spec: dict
    options: dict
    points: tuple[Point, ...]

    def settings(self) -> dict:
        """Everything that can change the numbers (the chunk size cannot)."""
        return {"name": self.name, "kind": self.kind, **self.spec,
                **{k: v for k, v in self.options.items() if k != "chunk_size"}}


@dataclass(frozen=True)
class Suite:
    problems: tuple[Problem, ...]
    path: str = "<string>"


_MISSING = object()
_CHECK_DEFAULTS = {"mode": "full", "fraction": None, "n_samples": None, "subset_seed": 0, "eps": 1e-7,
                   "warn": 1e-6, "fail": 1e-3, "n_jobs": None, "backend": "loky", "scheduler": None,
                   "chunk_size": None}
_MLP_DEFAULTS = {"network": None, "layers": None, "hidden": "relu", "output": "softmax", "l2": 0.0,
                 "examples": 32, "data_seed": 1, "bug": None, "engine": "batched", "kinks": "exclude"}
_FACTORY_KEYS = {"factory"}
_POINT_KEYS = {"name", "seed", "train_steps", "learning_rate"}


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _expect(ok: bool, path: str, expected: str, value) -> None:
    if not ok:
        raise ConfigError(f"{path}: expected {expected}, got {value!r} ({_type_name(value)})")


def _int(path, value, low=None):
    _expect(isinstance(value, int) and not isinstance(value, bool), path, "an integer", value)
    if low is not None:
        _expect(value >= low, path, f"an integer >= {low}", value)
    return value


def _number(path, value, what="a number"):
    _expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), path, what,
            value)
    return float(value)


def _choice(path, value, choices):
    _expect(isinstance(value, str) and value in choices, path, "one of " + ", ".join(map(repr, choices)), value)
    return value


def _check_options(table: dict, path: str, base: dict) -> dict:
    """The check settings of a problem (or of ``[defaults]``), validated, over ``base``."""
    out = dict(base)
    for key in _CHECK_DEFAULTS:
        if key not in table:
            continue
        value, where = table[key], f"{path}.{key}"
        if key == "mode":
            if value == "directions":
                raise ConfigError(f"{where}: 'directions' cannot run in resumable chunks; use 'full' or 'subset'")
            out[key] = _choice(where, value, ("full", "subset"))
        elif key == "fraction":
            out[key] = _number(where, value, "a number in (0, 1]")
            _expect(0 < out[key] <= 1, where, "a number in (0, 1]", value)
        elif key in ("n_samples", "chunk_size"):
            out[key] = _int(where, value, 1)
        elif key == "subset_seed":
            out[key] = _int(where, value, 0)
        elif key == "eps":
            out[key] = _number(where, value)
            _expect(1e-12 <= out[key] <= 1e-1, where, "a step in [1e-12, 1e-1]", value)
        elif key in ("warn", "fail"):
            out[key] = _number(where, value, "a positive number")
            _expect(out[key] > 0, where, "a positive number", value)
        elif key == "n_jobs":
            out[key] = _int(where, value)
            _expect(value >= 1 or value == -1, where, "a positive integer or -1 (all cores)", value)
        elif key == "backend":
            out[key] = _choice(where, value, ("loky", "dask"))
        elif key == "scheduler":
            _expect(isinstance(value, str) and value, where, "a scheduler address like 'tcp://host:8786'", value)
            out[key] = value
    return out


def _finish_options(options: dict, path: str) -> None:
    """Checks between keys, once defaults and the problem's own keys are merged."""
    if not options["warn"] <= options["fail"]:
        raise ConfigError(f"{path}.warn: expected warn <= fail, got warn={options['warn']:g}, "
                          f"fail={options['fail']:g}")
    if options["mode"] == "subset":
        if (options["fraction"] is None) == (options["n_samples"] is None):
            raise ConfigError(f"{path}.mode: 'subset' needs exactly one of `fraction` or `n_samples`")
    elif options["fraction"] is not None or options["n_samples"] is not None:
        key = "fraction" if options["fraction"] is not None else "n_samples"
        raise ConfigError(f"{path}.{key}: goes with mode = 'subset', not mode = {options['mode']!r}")
    if options["backend"] == "dask" and options["scheduler"] is None:
        raise ConfigError(f"{path}.scheduler: backend 'dask' needs a scheduler address, e.g. 'tcp://host:8786'")
    if options["backend"] != "dask" and options["scheduler"] is not None:
        raise ConfigError(f"{path}.scheduler: goes with backend = 'dask'")


def _mlp_spec(table: dict, path: str) -> dict:
    from ...mlp.functions import HIDDEN, OUTPUTS
    from ..bugs import BUGS
    from ..networks import NETWORKS

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
            _expect(isinstance(value, list) and len(value) >= 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value),
                    where, "an array of at least 2 positive integers, e.g. [64, 32, 16, 4]", value)
            spec[key] = list(value)
        elif key == "hidden":
            spec[key] = _choice(where, value, tuple(HIDDEN))
        elif key == "output":
            spec[key] = _choice(where, value, tuple(OUTPUTS))
        elif key == "l2":
            spec[key] = _number(where, value, "a number >= 0")
            _expect(spec[key] >= 0, where, "a number >= 0", value)
        elif key == "examples":
            spec[key] = _int(where, value, 1)
        elif key == "data_seed":
            spec[key] = _int(where, value, 0)
        elif key == "bug":
            spec[key] = _choice(where, value, tuple(BUGS))
        elif key == "engine":
            spec[key] = _choice(where, value, ("batched", "reference"))
        elif key == "kinks":
            spec[key] = _choice(where, value, ("exclude", "include"))
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
    _expect(isinstance(value, str) and bool(_FACTORY.match(value)), where,
            "'module:function', e.g. 'mypkg.problems:small_net'", value)
    _import_factory(value, where)
    return {"factory": value}


def _import_factory(spec: str, where: str):
    try:
        return import_function(spec)
    except InputError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _points(value, path: str, kind: str) -> tuple[Point, ...]:
    if value is _MISSING:
        value = [{"seed": 0}] if kind == "mlp" else [{}]
    _expect(isinstance(value, list) and len(value) > 0, path, "a non-empty array of tables like [{seed = 0}]",
            value)
    out, seen = [], {}
    for i, table in enumerate(value):
        where = f"{path}[{i}]"
        _expect(isinstance(table, dict), where, "a table like {seed = 0, train_steps = 20}", table)
        for key in table:
            if key not in _POINT_KEYS:
                raise ConfigError(f"{where}.{key}: unknown key; a point takes {', '.join(sorted(_POINT_KEYS))}")
        seed = _int(f"{where}.seed", table["seed"], 0) if "seed" in table else None
        if seed is None and kind == "mlp":
            raise ConfigError(f"{where}.seed: missing; a point of a built-in MLP needs the seed of its "
                              "initialization, e.g. {seed = 0}")
        steps = _int(f"{where}.train_steps", table.get("train_steps", 0), 0)
        rate = _number(f"{where}.learning_rate", table.get("learning_rate", 0.1), "a positive number")
        _expect(rate > 0, f"{where}.learning_rate", "a positive number", table.get("learning_rate"))
        if "learning_rate" in table and steps == 0:
            raise ConfigError(f"{where}.learning_rate: goes with train_steps > 0")
        if "name" in table:
            name = table["name"]
            _expect(isinstance(name, str) and bool(_NAME.match(name)), f"{where}.name",
                    "a name of letters, digits and _ . + -", name)
        else:
            name = ("seed" + str(seed) if seed is not None else "default") + (
                f"+train{steps}" + (f"-lr{rate:g}" if "learning_rate" in table else "") if steps else "")
        if name in seen:
            raise ConfigError(f"{where}: duplicate point {name!r} (same as {path}[{seen[name]}]); give it a `name`")
        seen[name] = i
        out.append(Point(name, seed, steps, rate))
    return tuple(out)


def parse_suite(data: dict, path: str = "<string>") -> Suite:
    """Validate a parsed suite (the TOML's dict) and return the :class:`Suite`.

    Raises
    ------
    ConfigError
        Naming the key path (``problems[2].layers``) and what was expected.
    """
    for key in data:
        if key not in ("problems", "defaults"):
            raise ConfigError(f"{key}: unknown key; a suite has `problems` (an array of tables "
                              "[[problems]]) and optionally `defaults`")
    defaults = dict(_CHECK_DEFAULTS)
    if "defaults" in data:
        table = data["defaults"]
        _expect(isinstance(table, dict), "defaults", "a table [defaults]", table)
        for key in table:
            if key not in _CHECK_DEFAULTS:
                raise ConfigError(f"defaults.{key}: unknown key; defaults take {', '.join(_CHECK_DEFAULTS)}")
        defaults = _check_options(table, "defaults", defaults)
    if "problems" not in data:
        raise ConfigError("problems: missing; add at least one [[problems]] table")
    problems = data["problems"]
    _expect(isinstance(problems, list) and len(problems) > 0, "problems",
            "a non-empty array of tables ([[problems]])", problems)
    out, names = [], {}
    for i, table in enumerate(problems):
        path = f"problems[{i}]"
        _expect(isinstance(table, dict), path, "a table ([[problems]])", table)
        if "name" not in table:
            raise ConfigError(f"{path}.name: missing; every problem needs a unique name")
        name = table["name"]
        _expect(isinstance(name, str) and bool(_NAME.match(name)), f"{path}.name",
                "a name of letters, digits and _ . + -", name)
        if name in names:
            raise ConfigError(f"{path}.name: duplicate problem name {name!r} (also problems[{names[name]}])")
        names[name] = i
        kind = "factory" if "factory" in table else "mlp"
        allowed = {"name", "points", *_CHECK_DEFAULTS, *(_FACTORY_KEYS if kind == "factory" else _MLP_DEFAULTS)}
        for key in table:
            if key not in allowed:
                hint = (" (MLP keys do not go with `factory`)" if key in _MLP_DEFAULTS and kind == "factory"
                        else "")
                raise ConfigError(f"{path}.{key}: unknown key{hint}; allowed: {', '.join(sorted(allowed))}")
        spec = _factory_spec(table, path) if kind == "factory" else _mlp_spec(table, path)
        options = _check_options(table, path, defaults)
        _finish_options(options, path)
        if kind == "mlp" and options["backend"] == "dask":
            raise ConfigError(f"{path}.backend: 'dask' is for user factories; a built-in MLP runs on this "
                              "machine's cores (set n_jobs for its threads)")
        if kind == "factory" and options["backend"] == "dask" and options["n_jobs"] in (None, 1):
            raise ConfigError(f"{path}.n_jobs: backend 'dask' runs workers: set n_jobs to the number of tasks "
                              "at once (or -1)")
        out.append(Problem(name, kind, spec, options, _points(table.get("points", _MISSING), f"{path}.points",
                                                              kind)))
    return Suite(tuple(out), path)


def load_suite(path) -> Suite:
    """Read and validate a suite file (TOML; Python 3.11+, or the ``tomli`` package)."""
    try:
        import tomllib
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
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_suite(data, str(path))


# ====================================================================== units: build and prepare
def _sha256(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, (bytes, memoryview)) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass
class _Unit:
    """One (problem, point), prepared: the check in pieces and the hashes that identify it."""

    problem: Problem
    point: Point
    prepared: object
    config_hash: str  # settings only: the same from night to night
    key: str  # settings, theta, gradient (and data or the factory's source) and fastcheck's version
    prepare_seconds: float

    @property
    def label(self) -> str:
        return f"{self.problem.name}@{self.point.name}"


def _train(layout, theta, grad_of, steps: int, rate: float):
    """``steps`` of gradient descent on flat ``theta`` with ``grad_of(params) -> grads``."""
    for _ in range(steps):
        params = layout.unflatten(theta)
        theta = theta - rate * layout.resolve_grads(grad_of, params)
        if not np.all(np.isfinite(theta)):
            raise InputError("training diverged (non-finite parameters): lower the point's learning_rate")
    return layout.unflatten(theta)


def _build_mlp(problem: Problem, point: Point):
    from ...core.layout import Layout
    from ...mlp.model import MLP
    from ..bugs import buggy_gradient

    s = problem.spec
    net = MLP(s["layers"], hidden=s["hidden"], output=s["output"], l2=s["l2"])
    X, Y = net.random_data(s["examples"], seed=s["data_seed"])
    params = net.init(seed=point.seed)

    def grad_of(p):  # the gradient under test, buggy or not: training uses it too
        return buggy_gradient(net, s["bug"], p, X, Y) if s["bug"] else net.gradient(p, X, Y)

    if point.train_steps:
        layout, theta = Layout.from_params(params)
        params = {k: np.ascontiguousarray(v) for k, v in _train(layout, theta, grad_of, point.train_steps,
                                                                point.learning_rate).items()}
    return net, params, grad_of(params), X, Y


def _build_factory(problem: Problem, point: Point):
    from ...core.layout import Layout

    spec = problem.spec["factory"]
    func = _import_factory(spec, f"problem {problem.name!r} factory")
    try:
        result = func(seed=point.seed) if point.seed is not None else func()
    except TypeError as exc:
        if point.seed is not None and "seed" in str(exc):
            raise InputError(f"{spec} does not take a `seed` keyword, but problem {problem.name!r} point "
                             f"{point.name!r} gives one") from exc
        raise InputError(f"{spec} raised TypeError: {exc}") from exc
    except Exception as exc:
        raise InputError(f"{spec} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, dict):
        missing = {"cost", "params", "grads"} - set(result)
        if missing:
            raise InputError(f"{spec} returned a dict without {', '.join(sorted(missing))}")
        cost, params, grads, batch_cost = result["cost"], result["params"], result["grads"], result.get("batch_cost")
    elif isinstance(result, tuple) and len(result) in (3, 4):
        cost, params, grads, batch_cost = (*result, None)[:4]
    else:
        raise InputError(f"{spec} must return (cost, params, grads[, batch_cost]) or a dict with those keys, "
                         f"got {type(result).__name__}")
    if point.train_steps:
        if not callable(grads) or isinstance(grads, (dict, np.ndarray)):
            raise InputError(f"problem {problem.name!r} point {point.name!r} trains {point.train_steps} steps: "
                             f"{spec} must return grads as a callable grads(params)")
        layout, theta = Layout.from_params(params)
        params = _train(layout, theta, grads, point.train_steps, point.learning_rate)
    try:
        source = Path(inspect.getsourcefile(func) or "").read_bytes()
    except (OSError, TypeError):
        source = b""
    return cost, params, grads, batch_cost, source


def _prepare(problem: Problem, point: Point) -> _Unit:
    from ... import __version__
    from ...api import prepare_check, prepare_mlp

    started = time.perf_counter()
    o = problem.options
    common = dict(eps=o["eps"], mode=o["mode"], fraction=o["fraction"], n_samples=o["n_samples"],
                  seed=o["subset_seed"], warn=o["warn"], fail=o["fail"])
    if problem.kind == "mlp":
        net, params, grads, X, Y = _build_mlp(problem, point)
        threads = None if o["n_jobs"] in (None, -1) else o["n_jobs"]  # default: numba's, every core
        prepared = prepare_mlp(net, params, grads, X, Y, engine=problem.spec["engine"], kinks=problem.spec["kinks"],
                               n_threads=threads, **common)
        extra = (X, Y)
    else:
        cost, params, grads, batch_cost, source = _build_factory(problem, point)
        backend = "dask" if o["backend"] == "dask" else None
        in_process = (o["n_jobs"] or 1) == 1 and batch_cost is None and backend is None
        # the suite's user problems keep the per-coordinate engines (resumable chunks of real evaluations)
        prepared = prepare_check(cost, params, grads, n_jobs=o["n_jobs"] or 1, batch_cost=batch_cost, backend=backend,
                                 progress=False, engine="reference" if in_process else "blackbox", **common)
        extra = (source,)
    from ...core.layout import Layout

    _, theta = Layout.from_params(params)
    config_hash = _sha256(_canonical({"problem": problem.settings(), "point": point.settings()}))
    arrays = [np.ascontiguousarray(a) for a in (theta, prepared.analytic, *extra) if isinstance(a, np.ndarray)]
    key = _sha256(config_hash, __version__, *(memoryview(a).cast("B") for a in arrays),
                  *(a for a in extra if isinstance(a, bytes)))
    prepared = prepared.with_settings(nightly={
        "problem": problem.name, "point": point.name, "config_hash": config_hash, "key": key})
    return _Unit(problem, point, prepared, config_hash, key, time.perf_counter() - started)


# ====================================================================== the chunk store
_MAGIC = b"FCCHUNK1\n"
_FIELDS = ("cost_plus", "cost_minus", "numeric")
_BYTES_PER_COORDINATE = 8 * len(_FIELDS) + 1


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that it is either the old file or the whole new one.

    The data is fsynced before the rename; ``sync_dir`` also fsyncs the rename itself
    (chunks skip it: a rename lost to a power cut only means the chunk is recomputed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


@dataclass
class _Chunk:
    start: int
    stop: int
    evaluations: object  # Evaluations
    seconds: float


class ChunkStore:
    """The chunks of one unit: positions ``[start, stop)`` of its ``indices()``, each a file.

    A file is ``FCCHUNK1\\n``, one line of JSON header (unit key, start, stop, cost
    evaluations, seconds, sha256) and the payload: ``cost_plus``, ``cost_minus``,
    ``numeric`` (float64) and ``kinks`` (uint8) of the chunk's coordinates. The sha256
    covers the key, the range, the evaluation count and the payload; the coordinates
    themselves are ``indices[start:stop]``, fixed by the key.
    """

    def __init__(self, directory, key: str):
        self.directory = Path(directory)
        self.key = key

    def _path(self, start: int, stop: int) -> Path:
        return self.directory / f"chunk-{start:012d}-{stop:012d}.bin"

    @staticmethod
    def _digest(key, start, stop, n_evaluations, payload) -> str:
        return _sha256(key, start, stop, n_evaluations, payload)

    def save(self, start: int, stop: int, evaluations, seconds: float) -> Path:
        """Write one chunk atomically (temporary file, fsync, rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = b"".join([*(np.ascontiguousarray(getattr(evaluations, f), dtype=np.float64).tobytes()
                              for f in _FIELDS), np.asarray(evaluations.kinks, dtype=np.uint8).tobytes()])
        n_evaluations = int(evaluations.n_evaluations)
        header = {"key": self.key, "start": start, "stop": stop, "n_evaluations": n_evaluations,
                  "seconds": float(seconds), "sha256": self._digest(self.key, start, stop, n_evaluations, payload)}
        path = self._path(start, stop)
        _write_atomic(path, _MAGIC + _canonical(header).encode() + b"\n" + payload, sync_dir=False)
        return path

    def _read(self, path: Path, indices: np.ndarray):
        """The chunk in ``path``, or the reason it cannot be merged."""
        from ...core.results import Evaluations

        data = path.read_bytes()
        if not data.startswith(_MAGIC) or b"\n" not in data[len(_MAGIC):]:
            return "not a chunk file (truncated?)"
        line, _, payload = data[len(_MAGIC):].partition(b"\n")
        try:
            header = json.loads(line)
            start, stop, n_evaluations = int(header["start"]), int(header["stop"]), int(header["n_evaluations"])
            key, digest, seconds = header["key"], header["sha256"], float(header["seconds"])
        except (ValueError, KeyError, TypeError):
            return "unreadable header"
        if key != self.key:
            return "computed for another configuration (key mismatch)"
        if path.name != self._path(start, stop).name or not 0 <= start < stop <= len(indices):
            return "range does not match its name or the unit"
        k = stop - start
        if len(payload) != k * _BYTES_PER_COORDINATE:
            return f"truncated ({len(payload)} of {k * _BYTES_PER_COORDINATE} payload bytes)"
        if self._digest(key, start, stop, n_evaluations, payload) != digest:
            return "checksum mismatch (corrupted)"
        arrays = [np.frombuffer(payload, dtype=np.float64, count=k, offset=8 * k * p).copy()
                  for p in range(len(_FIELDS))]
        kinks = np.frombuffer(payload, dtype=np.uint8, count=k, offset=8 * k * len(_FIELDS)).astype(bool)
        return _Chunk(start, stop, Evaluations(indices[start:stop].copy(), *arrays, kinks, n_evaluations), seconds)

    def load(self, indices: np.ndarray, warn=None) -> list[_Chunk]:
        """Every valid, non-overlapping chunk, by start; others are deleted (``warn(message)`` says why)."""
        if not self.directory.is_dir():
            return []
        chunks = []
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith("."):  # a temporary file of a killed run
                path.unlink(missing_ok=True)
                continue
            result = self._read(path, indices)
            if isinstance(result, str):
                if warn is not None:
                    warn(f"chunk {path} is not merged: {result}; recomputing it")
                path.unlink(missing_ok=True)
            else:
                chunks.append(result)
        chunks.sort(key=lambda c: (c.start, -c.stop))
        kept, end = [], 0
        for c in chunks:  # overlaps cannot arise from one key, but never merge a coordinate twice
            if c.start < end:
                self._path(c.start, c.stop).unlink(missing_ok=True)
                continue
            kept.append(c)
            end = c.stop
        return kept

    def clear(self) -> None:
        """Remove the unit's chunks (once its report is written), and ``chunks/`` when empty."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()
                self.directory.parent.rmdir()


def _gaps(chunks: list[_Chunk], n: int) -> list[tuple[int, int]]:
    out, pos = [], 0
    for c in chunks:
        if c.start > pos:
            out.append((pos, c.start))
        pos = max(pos, c.stop)
    if pos < n:
        out.append((pos, n))
    return out


class _Sizer:
    """Chunk sizes: fixed, or about :data:`TARGET_CHUNK_SECONDS` from the engine's speed."""

    def __init__(self, unit: _Unit, fixed: int | None):
        self.fixed = fixed
        self.rate = unit.prepared.seconds_per_coordinate()
        self.size = None

    def next(self) -> int:
        if self.fixed:
            return self.fixed
        size = max(1, int(TARGET_CHUNK_SECONDS / self.rate))
        if self.size is not None:
            size = min(max(size, self.size // CHUNK_GROWTH), self.size * CHUNK_GROWTH)
        self.size = max(1, size)
        return self.size

    def observe(self, k: int, seconds: float) -> None:
        if k:
            self.rate = max(seconds / k, 1e-12)


# ====================================================================== running
class _Progress:
    """One progress line per unit on stderr, with an ETA; only on a terminal."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, label: str, done: int, total: int, rate: float) -> None:
        if self.enabled:
            eta = (total - done) * rate
            sys.stderr.write(f"\r{label}: {done:,}/{total:,} coordinates ({done / max(total, 1):.0%}), "
                             f"ETA {eta:.0f} s   ")
            sys.stderr.flush()

    def done(self, label: str, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{label}: {text}" + " " * 30 + "\n")
            sys.stderr.flush()


@dataclass
class UnitResult:
    """What the summary shows for one (problem, point)."""

    problem: str
    point: str
    status: str  # "run", "resumed" (some chunks from an earlier session), "done" (finished earlier), "error"
    report: object = None  # Report
    regressions: list = field(default_factory=list)
    error: str | None = None
    report_path: Path | None = None
    chunks_reused: int = 0
    chunks_computed: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.passed and not self.regressions


def _note(message: str) -> None:
    print(f"fastcheck nightly: {message}", file=sys.stderr)


def _dask_client(problem: Problem):
    if problem.options["backend"] != "dask":
        return contextlib.nullcontext()
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise InputError(f"problem {problem.name!r} uses backend 'dask': install fastcheck[distributed]") from exc
    return Client(problem.options["scheduler"])


def _finished_report(path: Path, key: str):
    from ...report.model import Report

    try:
        data = json.loads(path.read_text())
        if data["settings"]["nightly"]["key"] != key:
            return None
        return Report.from_json(json.dumps(data))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _run_unit(unit: _Unit, run_dir: Path, chunk_size: int | None, progress: _Progress) -> UnitResult:
    from ...core.results import merge_evaluations

    result = UnitResult(unit.problem.name, unit.point.name, "run")
    result.report_path = run_dir / f"{unit.label}.json"
    report = _finished_report(result.report_path, unit.key)
    if report is not None:  # a run killed between writing the report and clearing the chunks leaves some
        ChunkStore(run_dir / "chunks" / unit.label, unit.key).clear()
        result.status, result.report = "done", report
        return result
    prepared = unit.prepared
    indices = prepared.indices()
    n = len(indices)
    store = ChunkStore(run_dir / "chunks" / unit.label, unit.key)
    chunks = store.load(indices, warn=_note)
    result.chunks_reused = len(chunks)
    if chunks:
        result.status = "resumed"
    sizer = _Sizer(unit, chunk_size or unit.problem.options["chunk_size"])
    gaps = _gaps(chunks, n)
    done = sum(c.stop - c.start for c in chunks)
    for g, (lo, hi) in enumerate(gaps):
        pos = lo
        while pos < hi:
            stop = min(pos + sizer.next(), hi)
            tic = time.perf_counter()
            evaluations = prepared.evaluate(indices[pos:stop])
            seconds = time.perf_counter() - tic
            sizer.observe(stop - pos, seconds)
            last = stop == hi and g == len(gaps) - 1
            if not last:  # the last chunk is not written: the report it completes is, next
                store.save(pos, stop, evaluations, seconds)
            chunks.append(_Chunk(pos, stop, evaluations, seconds))
            result.chunks_computed += 1
            done += stop - pos
            pos = stop
            progress.update(unit.label, done, n, sizer.rate)
    chunks.sort(key=lambda c: c.start)
    elapsed = unit.prepare_seconds + sum(c.seconds for c in chunks)
    report = prepared.report(merge_evaluations(c.evaluations for c in chunks), elapsed=elapsed)
    # the page first: a unit whose JSON report exists is finished, and so has its page
    _write_atomic(run_dir / f"{unit.label}.html", report.to_html(f"fastcheck nightly: {unit.label}").encode())
    _write_atomic(result.report_path, report.to_json().encode())
    store.clear()
    result.report = report
    progress.done(unit.label, f"{report.verdict}, difference {report.difference:.2e}")
    return result


def _lock(run_dir: Path):
    """Hold ``DIR/.lock`` for the run's lifetime (released by the OS if the process dies)."""
    import fcntl

    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunLockedError(f"run directory {str(run_dir)!r} is in use by another `fastcheck nightly` "
                             f"({holder}); wait for it to finish, or give another --run-dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, started {datetime.now(timezone.utc).isoformat(timespec='seconds')}".encode())
    return fd


def _release(fd) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _run_id(run_dir: Path) -> str:
    path = run_dir / "run.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(path.read_text())["run_id"])
    run_id = uuid.uuid4().hex
    _write_atomic(path, _canonical({"run_id": run_id, "started": datetime.now(timezone.utc).isoformat(
        timespec="seconds")}).encode())
    return run_id


def run_suite(suite: Suite, run_dir, *, history=None, chunk_size: int | None = None,
              progress: bool | None = None) -> list[UnitResult]:
    """Check every (problem, point) of ``suite``, resuming what ``run_dir`` already holds.

    Parameters
    ----------
    suite : Suite
    run_dir : str or Path
        Created if missing; locked while the run is active.
    history : str or Path, optional
        The SQLite history (default ``history.sqlite`` in ``run_dir``'s parent).
    chunk_size : int, optional
        Coordinates per chunk for every problem (default: the problem's ``chunk_size``,
        else chunks of about :data:`TARGET_CHUNK_SECONDS`).
    progress : bool, optional
        A progress line per unit on stderr (default: when stderr is a terminal).

    Returns
    -------
    list of UnitResult
        In suite order. A unit whose problem cannot be built or checked (its factory
        raised, its cost is not deterministic, ...) has ``status == "error"``.

    Raises
    ------
    RunLockedError
        Another run holds ``run_dir``.
    """
    from ... import __version__
    from .history import History

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = Path(history) if history is not None else run_dir.resolve().parent / "history.sqlite"
    fd = _lock(run_dir)
    try:
        for leftover in run_dir.glob(".*.tmp"):  # a report being written when a run was killed
            leftover.unlink(missing_ok=True)
        run_id = _run_id(run_dir)
        shown = _Progress(progress)
        results = []
        with History(history_path) as db:
            for problem in suite.problems:
                for point in problem.points:
                    try:
                        with _dask_client(problem):
                            unit = _prepare(problem, point)
                            result = _run_unit(unit, run_dir, chunk_size, shown)
                    except (FastcheckError, ImportError, OSError) as exc:
                        if isinstance(exc, RunLockedError):
                            raise
                        message = " ".join(str(exc).split())
                        shown.done(f"{problem.name}@{point.name}", f"error: {message}")
                        results.append(UnitResult(problem.name, point.name, "error", error=message))
                        continue
                    result.regressions = db.record(run_id=run_id, problem=problem.name, point=point.name,
                                                   config_hash=unit.config_hash, data_hash=unit.key,
                                                   version=__version__, report=result.report)
                    results.append(result)
        _write_atomic(run_dir / "index.html", format_index(results, run_dir).encode())
        return results
    finally:
        _release(fd)


# ====================================================================== summary
def _worst_group(report):
    rows = [g for g in report.groups if math.isfinite(g.difference)]
    return max(rows, key=lambda g: g.difference) if rows else None


def _summary_rows(results: list[UnitResult]) -> list[tuple[str, ...]]:
    rows = [("problem", "point", "verdict", "difference", "worst group", "time", "status", "notes")]
    for r in results:
        if r.error is not None:
            rows.append((r.problem, r.point, "error", "-", "-", "-", r.status, r.error))
            continue
        rep = r.report
        worst = _worst_group(rep)
        notes = "; ".join([f"REGRESSION {x}" for x in r.regressions]
                          + ([f"wrong: {', '.join(rep.failing_groups)}"] if rep.failing_groups else []))
        rows.append((r.problem, r.point, rep.verdict, f"{rep.difference:.2e}",
                     f"{worst.name} {worst.difference:.2e}" if worst else "-", f"{rep.elapsed:.3g} s", r.status,
                     notes or "-"))
    return rows


def _headline(results: list[UnitResult]) -> str:
    failed = sum(r.report is not None and not r.report.passed for r in results)
    errors = sum(r.error is not None for r in results)
    regressed = sum(bool(r.regressions) for r in results)
    ok = all(r.ok for r in results)
    return (f"fastcheck nightly {'PASSED' if ok else 'FAILED'}: {len(results)} check(s), "
            f"{len(results) - failed - errors} passed, {failed} failed, {errors} error(s), {regressed} regressed")


def format_summary(results: list[UnitResult]) -> str:
    """The end-of-run table, as text."""
    from .history import text_table

    return "\n".join([_headline(results), ""] + text_table(_summary_rows(results)))


def format_markdown(results: list[UnitResult]) -> str:
    """The end-of-run table, as Markdown (for CI job summaries)."""
    rows = _summary_rows(results)
    out = [f"### {_headline(results)}", "", "| " + " | ".join(rows[0]) + " |",
           "|" + "|".join(["---"] * len(rows[0])) + "|"]
    for row in rows[1:]:
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(out) + "\n"


def format_index(results: list[UnitResult], run_dir) -> str:
    """The end-of-run table as an HTML page, each check linked to its own page."""
    from ...report.html import index_html

    rows = _summary_rows(results)
    links = [f"{r.problem}@{r.point}.html" if (Path(run_dir) / f"{r.problem}@{r.point}.html").exists() else None
             for r in results]
    verdicts = [r.report.verdict if r.report is not None else "fail" for r in results]
    return index_html(f"fastcheck nightly: {Path(run_dir).resolve().name}", _headline(results),
                      ("check", *rows[0][2:]), [(f"{row[0]}@{row[1]}", *row[2:]) for row in rows[1:]], links,
                      verdicts)


# ====================================================================== command line
def run_nightly(args) -> int:
    """``fastcheck nightly SUITE.toml --run-dir DIR``: 0 when everything passed and nothing regressed."""
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(f"--chunk-size: expected a positive integer, got {args.chunk_size}")
    suite = load_suite(args.suite)
    results = run_suite(suite, args.run_dir, history=args.history, chunk_size=args.chunk_size)
    print(format_summary(results))
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def run_history(args) -> int:
    """``fastcheck history [PROBLEM]``: the trend of each (problem, point), one line per run."""
    from .history import History, format_history

    if args.last < 1:
        raise InputError(f"--last: expected a positive integer, got {args.last}")
    with History(args.history, create=False) as db:
        print(format_history(db, args.problem, args.last), end="")
    return EXIT_OK


def register(subparsers) -> None:
    """Add the ``nightly`` and ``history`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser(
        "nightly", help="check a suite of problems exhaustively, resumably, with history",
        description="Check every problem and point of SUITE.toml, chunk by chunk into --run-dir: run the same "
        "command again after an interruption to resume. Exit code 0 when every check passed and nothing "
        "regressed, 1 otherwise, 2 for a bad suite.")
    p.add_argument("suite", metavar="SUITE.toml", help="the suite file")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="where chunks and reports go (one per run)")
    p.add_argument("--history", metavar="FILE", help="SQLite history (default: history.sqlite beside DIR)")
    p.add_argument("--markdown", metavar="FILE", help="also write the summary table as Markdown")
    p.add_argument("--chunk-size", type=int, metavar="N",
                   help=f"coordinates per chunk (default: about {TARGET_CHUNK_SECONDS:g} s of work per chunk)")
    p.set_defaults(func=run_nightly)
    h = subparsers.add_parser("history", help="show the trend of nightly checks",
                              description="Show each (problem, point) of the history, one line per run; "
                              "regressions (a group's difference > 10x its last passing run) are flagged.")
    h.add_argument("problem", nargs="?", metavar="PROBLEM", help="only this problem")
    h.add_argument("--history", default="history.sqlite", metavar="FILE", help="default: ./history.sqlite")
    h.add_argument("--last", type=int, default=10, metavar="N", help="runs shown per point (default 10)")
    h.set_defaults(func=run_history)


def main(argv=None) -> int:
    """``fastcheck nightly|history ...``: :func:`fastcheck.cli.main`, which registers them
    (one-line errors, exit code 2 for bad usage or a bad suite)."""
    from ..cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
