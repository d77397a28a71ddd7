"""The worker runs as an unprivileged uid even when kopt runs as root -- a root-owned 0600
file the jail leaves in view stays closed to it -- yet it still runs the python install and
torch, and writes its own build cache (an id-mapped mount: no host file changes owner).
Each worker has a uid of its own: one worker holding its whole process allowance does not
take a second worker's threads (a shared uid shares RLIMIT_NPROC)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kopt.sandboxes.jail_setup import WORKER_UIDS
from kopt.sandboxes.local import Limits, start_worker
from tests.redteam.jailrun import HOSTILE, require, run_hostile


def test_worker_is_unprivileged_and_still_runs_torch(tmp_path):
    require("unprivileged uid")
    token, secret = "krt" + secrets.token_hex(6), "kopt-secret-" + secrets.token_hex(12)
    # /var/tmp stays in view (read-only); only the file's mode keeps it closed
    shown = Path(tempfile.mkdtemp(prefix="kopt-rt-", dir="/var/tmp"))
    cache = tmp_path / "cache"  # under pytest's 0700 base folder, like a user's own cache
    cache.mkdir()
    try:
        shown.chmod(0o755)
        (shown / "secret").write_text(secret)
        (shown / "secret").chmod(0o600)
        limits = Limits(wall_s=120, memory_mb=8192, cache_dir=str(cache))
        report, _, worker = run_hostile("jail_files", json.dumps([str(shown / "secret")]), secret, token, "--torch",
                                        limits=limits)
    finally:
        shutil.rmtree(shown, ignore_errors=True)
    assert worker.protections["unprivileged uid"]
    assert report["host_uid"] != 0 and report["groups"] == [], report
    if os.geteuid() == 0:
        assert report["uid"] in WORKER_UIDS and report["gid"] == report["uid"], report
    assert report["readable"] == [], report
    assert report["torch"] == 3.0, report  # python and torch were readable (here under /root, 0700)
    built = cache / token
    assert built.read_text() == "built", "the worker could not write its build cache"
    assert built.stat().st_uid == os.geteuid() and cache.stat().st_uid == os.geteuid(), \
        "the build cache changed owner on the host"
    print(f"python install: {os.path.realpath(sys.base_prefix)}")


def test_workers_do_not_share_a_process_allowance():
    require("unprivileged uid")
    limits = Limits(wall_s=120, memory_mb=4096, nproc=24)
    holder = start_worker([sys.executable, str(HOSTILE / "jail_nproc.py"), "hold", "24", "30"], limits)
    try:
        deadline = time.monotonic() + 60
        while "KOPT-REPORT" not in holder.output.text() and time.monotonic() < deadline and holder.alive():
            time.sleep(0.1)
        held = json.loads(holder.output.text().split("KOPT-REPORT ", 1)[1].splitlines()[0])
        assert held["held"] >= 12, held  # the attack ran: most of its allowance is taken
        report, _, _ = run_hostile("jail_nproc", "spawn", "16", limits=limits)
    finally:
        holder.kill()
    assert report["threads"] == 16, f"a second worker got {report['threads']} of 16 threads"
    assert report["uid"] != held["uid"], "two workers ran as the same uid"
