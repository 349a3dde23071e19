"""What a nightly run keeps on disk: atomic writes, checksums and the chunks of a unit (:class:`ChunkStore`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.results import Evaluations

__all__ = ["ChunkStore", "Chunk", "write_atomic", "sha256", "canonical"]

_MAGIC = b"FCCHUNK1\n"
_FIELDS = ("cost_plus", "cost_minus", "numeric")
_BYTES_PER_COORDINATE = 8 * len(_FIELDS) + 1


def sha256(*parts) -> str:
    """The hex sha256 of ``parts`` (bytes as they are, anything else as its ``str``), each ended by a NUL."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, (bytes, memoryview)) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def canonical(obj) -> str:
    """``obj`` as JSON with sorted keys and no spaces: the same text for the same settings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that it is either the old file or the whole new one.

    The data is fsynced before the rename; ``sync_dir`` also fsyncs the rename itself
    (chunks skip it: a rename lost to a power cut only means the chunk is recomputed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk (or a kill) leaves the old file and no half-written one
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        _fsync_dir(path.parent)


@dataclass
class Chunk:
    """Positions ``[start, stop)`` of a unit's coordinates, their evaluations and the seconds they took."""

    start: int
    stop: int
    evaluations: Evaluations
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
        return sha256(key, start, stop, n_evaluations, payload)

    def save(self, start: int, stop: int, evaluations: Evaluations, seconds: float) -> Path:
        """Write one chunk atomically (temporary file, fsync, rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = b"".join([*(np.ascontiguousarray(getattr(evaluations, f), dtype=np.float64).tobytes()
                              for f in _FIELDS), np.asarray(evaluations.kinks, dtype=np.uint8).tobytes()])
        n_evaluations = int(evaluations.n_evaluations)
        header = {"key": self.key, "start": start, "stop": stop, "n_evaluations": n_evaluations,
                  "seconds": float(seconds), "sha256": self._digest(self.key, start, stop, n_evaluations, payload)}
        path = self._path(start, stop)
        write_atomic(path, _MAGIC + canonical(header).encode() + b"\n" + payload, sync_dir=False)
        return path

    def _read(self, path: Path, indices: np.ndarray) -> Chunk | str:
        """The chunk in ``path``, or the reason it cannot be merged."""
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
        return Chunk(start, stop, Evaluations(indices[start:stop].copy(), *arrays, kinks, n_evaluations), seconds)

    def load(self, indices: np.ndarray, warn=None) -> list[Chunk]:
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
