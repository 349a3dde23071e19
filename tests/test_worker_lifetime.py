"""Worker processes end with the run that started them: after SIGTERM or kill -9 of a process
running a check on loky workers, its workers are gone within seconds (they used to live on for
minutes, finishing and then waiting for work that would never come)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastcheck as fc

psutil = pytest.importorskip("psutil")

SLOW = '''
import time
import numpy as np
import fastcheck as fc

def cost(t):
    time.sleep(0.05)
    return 0.5 * float(t @ t)

if __name__ == "__main__":
    fc.check(cost, np.ones(400), np.ones(400), n_jobs=2, chunk_size=5)  # ~20 s of work
'''


def _workers(process, n=2, wait=60.0):
    """The pids of ``process``'s loky workers, once ``n`` of them run."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = [c.pid for c in psutil.Process(process.pid).children()
                 if "LokyProcess" in " ".join(c.cmdline())]
        if len(found) >= n:
            return found
        assert process.poll() is None, "the check ended before its workers started"
        time.sleep(0.2)
    raise AssertionError("the workers did not start")


def _alive(pid) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_are_gone_soon_after_their_run_is_killed(tmp_path, sig):
    (tmp_path / "slow.py").write_text(SLOW)
    workers = []
    with subprocess.Popen([sys.executable, str(tmp_path / "slow.py")], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as process:
        try:
            workers = _workers(process)
            time.sleep(0.5)  # tasks running
            process.send_signal(sig)
            assert process.wait(timeout=30) == -sig  # SIGTERM still ends the process as SIGTERM does
            deadline = time.monotonic() + 5.0
            while any(map(_alive, workers)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(map(_alive, workers)), [p for p in workers if _alive(p)]
        finally:
            process.kill()
            for pid in filter(_alive, workers):  # never leave them behind, even when the test fails
                os.kill(pid, signal.SIGKILL)


def slow_cost(t):
    time.sleep(0.05)
    return 0.5 * float(t @ t)


def test_a_handler_of_the_programs_own_is_called_and_restored():
    heard = []

    def own(signum, frame):
        heard.append(signum)

    previous = signal.signal(signal.SIGTERM, own)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(fc.WorkerError, match="SIGTERM stopped the check"):
            fc.check(slow_cost, np.ones(400), np.ones(400), n_jobs=2, chunk_size=5)
        assert heard == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is own
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert fc.check(slow_cost, np.ones(8), np.ones(8), n_jobs=2, chunk_size=2).passed  # fresh workers
