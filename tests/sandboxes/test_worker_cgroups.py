"""Per-worker cgroups (sandboxes/worker_limits.Cgroups): the CPU quota slows the whole tree,
and the empty cgroups a killed kopt left behind are swept."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kopt.sandboxes import worker_limits
from kopt.sandboxes.worker_limits import Cgroups

BUSY = ("import time\nt, c = time.perf_counter(), time.process_time()\nx = 0\nfor i in range(3_000_000): x += i\n"
        "print(time.perf_counter() - t, time.process_time() - c)\n")


def _busy_loop(cgroup: Cgroups) -> tuple[float, float]:
    """(wall, CPU) seconds of a busy loop run in CGROUP."""
    proc = subprocess.run([sys.executable, "-c", BUSY], capture_output=True, text=True, timeout=120,
                          preexec_fn=cgroup.enter)
    wall, cpu = proc.stdout.split()
    return float(wall), float(cpu)


def test_a_cpu_quota_slows_the_run():
    """Held to a tenth of a CPU, a loop's wall time is about ten times its CPU time (a loaded
    2-core machine stretches an unheld one's two or three times at most)."""
    cg = Cgroups(64, None, cpu_quota=0.1)
    try:
        if not cg.cpu_capped:
            pytest.skip("no writable cpu cgroup here (kopt doctor: cpu cgroup no)")
        wall, cpu = _busy_loop(cg)
    finally:
        cg.remove()
    assert wall > 5 * cpu, f"held to a tenth of a CPU the loop took {wall:.2f}s for {cpu:.2f}s of CPU"


def test_empty_stale_kopt_cgroups_are_swept_and_live_ones_kept(monkeypatch):
    base = worker_limits._cgroup_base("pids")
    if base is None:
        pytest.skip("no pids cgroup here")
    stale = Path(tempfile.mkdtemp(prefix="kopt-", dir=base))
    live = Cgroups(64, None)
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=live.enter)
    try:
        time.sleep(0.1)
        monkeypatch.setattr(worker_limits, "STALE_S", 0.0)
        monkeypatch.setattr(worker_limits, "_swept", set())
        fresh = Cgroups(64, None)
        fresh.remove()
        assert not stale.exists(), "an empty kopt cgroup left behind was not removed"
        assert live.path.exists(), "a cgroup with a process in it was removed"
    finally:
        sleeper.kill()
        sleeper.wait()
        live.remove()
        if stale.exists():
            stale.rmdir()
