"""`kopt runs cache stats|clear` on a cache file with known measurements."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kopt.sandboxes.eval_cache import EvalCache


def kopt(*args: str | Path, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def test_stats_then_clear(tmp_path):
    path = tmp_path / "evals.sqlite"
    cache = EvalCache(path)
    cache.add("k1", b"task", b"code", {"verdict": "faster", "speedup": 2.0, "checks": {}})
    cache.add("k1", b"task", b"code", {"verdict": "same", "speedup": 1.0, "checks": {}})
    cache.add("k2", b"task", b"other", {"verdict": "incorrect", "checks": {}})
    cache.close()
    env = {**os.environ, "KOPT_EVAL_CACHE": str(path)}
    p = kopt("runs", "cache", "stats", "--json", env=env)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert (st["candidates"], st["measurements"]) == (2, 3)
    assert st["verdicts"] == {"faster": 1, "same": 1, "incorrect": 1}
    p = kopt("runs", "cache", "clear", env=env)
    assert p.returncode == 0 and "cleared 3" in p.stdout
    assert json.loads(kopt("runs", "cache", "stats", "--json", env=env).stdout)["measurements"] == 0


def test_a_missing_cache_file_is_one_line(tmp_path):
    p = kopt("runs", "cache", "stats", "--path", tmp_path / "nope.sqlite", env=dict(os.environ))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no cache at" in p.stderr
