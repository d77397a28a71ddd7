"""kopt reads the cores a worker's threads may use from the kernel and pins them from outside
(the jail's seccomp filter keeps the worker from doing either itself): a candidate on cores
the reference does not get is `rejected` (red team 6)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kopt.sandboxes.eval_session import Verdict, _Session
from kopt.sandboxes.local import Worker, _Tail, cpu_list

CORES = sorted(os.sched_getaffinity(0))


def test_cpu_lists_read_as_the_kernel_writes_them():
    assert cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11} and cpu_list("5") == {5}


@pytest.fixture
def worker(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                             "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                             "time.sleep(30)"])
    w = Worker(proc, -1, -1, -1, Path(tmp_path), _Tail(100), isolated=False)
    yield w
    proc.kill()
    proc.wait()


@pytest.mark.skipif(len(CORES) < 2, reason="one core: nothing to widen to")
def test_a_worker_pinned_by_kopt_then_widened_is_rejected(worker):
    session = SimpleNamespace(new=SimpleNamespace(worker=worker), cpus={CORES[0]}, checks={})
    worker.pin({CORES[0]})
    assert worker.allowed_cpus() == {CORES[0]}
    _Session._check_affinity(session, "forward")  # within its cores: nothing to say
    tids = os.listdir(f"/proc/{worker.proc.pid}/task")
    os.sched_setaffinity(int(tids[-1]), CORES)  # one thread, as a candidate's would
    assert worker.allowed_cpus() == set(CORES)
    with pytest.raises(Verdict, match="widened its CPU affinity"):
        _Session._check_affinity(session, "forward")
