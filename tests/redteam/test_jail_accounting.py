"""What the evaluator learns about a worker from the kernel cannot be dodged by the worker:
a forked process whose main thread exits (a zombie leader) while another thread burns CPU is
still listed as alive and its CPU is the worker's; and a worker dies with the kopt process
that started it, even when kopt is killed outright."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kopt.sandboxes.jail_setup import namespace_prefix
from kopt.sandboxes.local import Limits, start_worker

HIDE_AND_BURN = """
import ctypes, os, threading, time
def burn():
    while time.thread_time() < 2.0:
        pass
    time.sleep(3600)
if os.fork() == 0:
    threading.Thread(target=burn).start()
    ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: only the main thread ends
print("forked", flush=True)
time.sleep(3600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_zombie_leader_process_is_alive_and_its_cpu_counts():
    if not namespace_prefix():
        pytest.skip("no PID namespace here: a worker's processes are not listed")
    worker = start_worker([sys.executable, "-c", HIDE_AND_BURN], Limits(wall_s=60, memory_mb=2048))
    try:
        deadline = time.monotonic() + 60
        while "forked" not in worker.output.text() and time.monotonic() < deadline:
            time.sleep(0.1)
        # the interpreter's own start-up in the jail is counted too (~0.6 s of CPU here): only
        # the hidden thread's 2 s of burning can take the worker past 1.5 s
        while worker.cpu_seconds() < 1.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.cpu_seconds() >= 1.5, worker.output.text()
        assert len(worker.namespace_pids()) == 1, worker.namespace_pids()
    finally:
        worker.kill()


def test_worker_dies_with_a_killed_kopt():
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom kopt.sandboxes.local import Limits, start_worker\n"
         "w = start_worker([sys.executable, '-c', 'import time; time.sleep(120)'], Limits(wall_s=120))\n"
         "print(w.proc.pid, flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    pid = int(starter.stdout.readline())
    try:
        assert not _gone(pid)
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(pid), "the worker outlived the kopt that started it"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
