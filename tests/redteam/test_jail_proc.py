"""The worker's /proc is a fresh mount of its own PID namespace: no host process (the test
runs one whose command line carries a token) and no host pid 1. Its mountinfo still lists
mount points -- the allow-listed paths, hidden paths by name -- but nothing under a home
folder beyond what the allow-list shows (a credential file's name never appears)."""
from __future__ import annotations

import secrets
import subprocess

from kopt.sandboxes.jail_setup import home_roots, runtime_paths
from tests.redteam.jailrun import require, run_hostile


def test_proc_shows_only_the_sandbox(tmp_path, monkeypatch):
    require("fresh /proc")
    token = "krt" + secrets.token_hex(6)
    home = tmp_path / "home"
    (home / ".mytoken-dir").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    host = subprocess.Popen(["/bin/sh", "-c", "sleep 120", token])
    try:
        report, _, worker = run_hostile("jail_proc", token)  # no KOPT-ESCAPED: the token was never seen
    finally:
        host.kill()
        host.wait()
    assert worker.protections["fresh /proc"]
    assert len(report["pids"]) <= 3 and report["pids"][0] == 1, report["pids"]
    assert not any("pytest" in cmd for cmd in report["cmdlines"].values()), report["cmdlines"]
    homes = home_roots()
    allowed = runtime_paths()
    for line in report["mountinfo"].splitlines():
        point = line.split()[4].replace("\\040", " ")
        under = [h for h in homes if point.startswith(h.rstrip("/") + "/")]
        assert not under or any(point == a or point.startswith(a + "/") for a in allowed), \
            f"mountinfo shows {point} under a home folder"
    assert ".mytoken-dir" not in report["mountinfo"]
