"""`kopt doctor` lists every declared extra, whether it is installed here, and what it enables."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path

from kopt.agent.cli.extras import ENABLES, extras_status


def test_every_declared_extra_says_what_it_enables():
    declared = metadata("kopt").get_all("Provides-Extra")
    assert sorted(declared) == sorted(ENABLES), "describe the new extra in agent/cli/extras.py"


def installed(name: str) -> bool:
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def test_installed_matches_what_import_metadata_finds():
    status = extras_status()
    assert status["report"]["installed"] == installed("matplotlib")
    assert status["gpu"]["installed"] == (installed("triton") and installed("cupy-cuda12x"))
    assert status["all"]["installed"] == all(s["installed"] for e, s in status.items() if e not in ("all", "dev"))
    for s in status.values():
        assert s["installed"] == (not s["missing"]) and all(not installed(m) for m in s["missing"])


def test_doctor_prints_the_extras():
    exe = Path(sys.executable).with_name("kopt")
    p = subprocess.run([str(exe), "doctor", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    extras = json.loads(p.stdout)["extras"]
    assert set(extras) == set(ENABLES) and all(e["enables"] for e in extras.values())
    p = subprocess.run([str(exe), "doctor"], capture_output=True, text=True, timeout=120)
    assert "kopt[train]" in p.stdout and "kopt train (GRPO)" in p.stdout
