"""Resource limits shared by the engines."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_MAX_MEMORY", "available_memory"]

#: Bytes of stacked work (perturbed thetas, stacked changes) an engine holds at once, by default.
DEFAULT_MAX_MEMORY = 256 * 2**20


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def available_memory() -> int | None:
    """Bytes this process could still allocate, about: the least of what the machine has available and
    what its cgroup allows (a container's limit); None where neither can be read."""
    limits = []
    with_meminfo = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    with_meminfo = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if with_meminfo is not None:
        limits.append(with_meminfo)
    elif hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for maximum, current in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(maximum), _read_int(current)
        if cap is not None and cap < 2**60:  # "max" or a huge number: no limit
            limits.append(max(0, cap - (used or 0)))
    return min(limits) if limits else None
