"""The worker's /dev holds null, zero, full, random, urandom, the fd links and a private
/dev/shm -- no disk, no kernel log, no kvm, no terminal, no vsock -- and the GPU's nodes
only when a GPU is asked for. Its /dev/shm starts empty and dies with it."""
from __future__ import annotations

import glob
import secrets
from pathlib import Path

import pytest

from kopt.sandboxes.jail_setup import MINIMAL_DEV
from kopt.sandboxes.local import Limits
from tests.redteam.jailrun import require, run_hostile


def test_minimal_dev_and_private_shm():
    require("minimal /dev")
    first, second = ("krt" + secrets.token_hex(6) for _ in range(2))
    host_file = Path("/dev/shm") / ("krt-host-" + secrets.token_hex(6))
    host_file.write_text("host")
    try:
        report, _, worker = run_hostile("jail_dev", first, host_file.name)
        again, _, _ = run_hostile("jail_dev", second, first, host_file.name)  # no KOPT-ESCAPED: nothing found
    finally:
        host_file.unlink()
    assert worker.protections["minimal /dev"]
    assert set(report["dev"]) <= set(MINIMAL_DEV), report["dev"]
    assert report["opened"] == [] and report["urandom"] == 16, report
    assert not (Path("/dev/shm") / first).exists(), "the worker's /dev/shm is the host's"


def test_gpu_nodes_only_when_asked():
    require("minimal /dev")
    nodes = sorted(Path(p).name for p in glob.glob("/dev/nvidia*"))
    if not nodes:
        pytest.skip("no /dev/nvidia* on this machine")
    token = "krt" + secrets.token_hex(6)
    plain, _, _ = run_hostile("jail_dev", token)
    with_gpu, _, _ = run_hostile("jail_dev", token, limits=Limits(wall_s=120, memory_mb=4096, gpu=True))
    assert not set(nodes) & set(plain["dev"]), plain["dev"]
    assert set(nodes) <= set(with_gpu["dev"]), with_gpu["dev"]
