"""Outside the system's folders the worker sees only what it needs: /tmp (other runs' work
dirs, copies of task files, logs), /var/tmp and the rest of the checkout kopt lives in (its run
dirs) are blank, while the python install, kopt's code, its own work dir and the files it was
given to read (Limits.read_paths) are there."""
from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path

from kopt.sandboxes.local import Limits, start_worker
from tests.redteam._kb import world_readable
from tests.redteam.jailrun import require

PEEK = """
import json, os, sys
def peek(path):
    try:
        return open(path).read()
    except OSError:
        return ""
secret = sys.argv[1]
paths = json.loads(sys.argv[2])
print("KOPT-REPORT " + json.dumps({"seen": [p for p in paths if secret in peek(p)],
                                   "given": peek(sys.argv[3]), "tmp": sorted(os.listdir("/tmp")),
                                   "cwd": os.getcwd()}), flush=True)
"""


def test_host_folders_are_blank_but_what_the_worker_needs(tmp_path):
    require("home allow-list")
    secret = "kopt-secret-" + secrets.token_hex(12)
    planted = [world_readable() / "task_copy.py", Path(__file__).resolve().parents[2] / "runs" / f".kopt-rt-{secret}"]
    given = world_readable() / "given_task.py"
    var_tmp = Path("/var/tmp")
    if var_tmp.is_dir():
        planted.append(var_tmp / f"kopt-rt-{secret}")
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(secret)
        p.chmod(0o644)
    given.write_text("needed " + secret)
    given.chmod(0o644)
    worker = start_worker([sys.executable, "-c", PEEK, secret, json.dumps([str(p) for p in planted]), str(given)],
                          Limits(wall_s=60, memory_mb=2048, read_paths=(str(given),)))
    try:
        worker.proc.wait(timeout=60)
    finally:
        worker.kill()
        for p in (*planted, given):
            p.unlink(missing_ok=True)
            if p.parent.name.startswith("kopt-redteam-"):
                shutil.rmtree(p.parent, ignore_errors=True)
    out = worker.output.text()
    line = next((x for x in out.splitlines() if x.startswith("KOPT-REPORT ")), None)
    assert line, out[-2000:]
    report = json.loads(line.split(" ", 1)[1])
    assert report["seen"] == [], report
    assert report["given"] == "needed " + secret, "a read_paths file is missing"
    # /tmp holds the work dir and the folder of the file given to read, nothing else
    assert sorted(report["tmp"]) == sorted([Path(report["cwd"]).name, given.parent.name]), report["tmp"]
