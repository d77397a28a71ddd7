"""`kopt doctor` lists every declared extra, whether it is installed here, and what it enables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path

import pytest

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


def test_doctor_says_whether_workers_fork_from_the_zygote():
    """On by default (where the jail and the zygote's probe allow); KOPT_ZYGOTE=0: off, and why."""
    exe = Path(sys.executable).with_name("kopt")
    env = {**os.environ, "KOPT_ZYGOTE": "0"}
    p = subprocess.run([str(exe), "doctor", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["zygote"] == "off (KOPT_ZYGOTE=0: every worker is exec'd)"
    p = subprocess.run([str(exe), "doctor"], capture_output=True, text=True, timeout=120, env=env)
    assert "KOPT_ZYGOTE=0" in next(line for line in p.stdout.splitlines() if line.startswith("zygote"))


def test_the_zygote_line_matches_what_a_worker_gets(monkeypatch):
    """With the zygote on, the line is what starting a KernelBench worker finds: forked where
    the jail's probe passes in a fork, else off with zygote_client's reason."""
    from kopt.sandboxes import zygote_client
    from kopt.sandboxes.doctor import _zygote
    from kopt.sandboxes.jail_probe import can_jail

    monkeypatch.delenv("KOPT_ZYGOTE", raising=False)
    assert _zygote(False).startswith("off (no jail here")
    if not can_jail():
        pytest.skip("no jail on this machine: the zygote is off")
    line = _zygote(True)
    if zygote_client.REFUSED:
        assert line.startswith("off (") and list(zygote_client.REFUSED.values())[0][:40] in line
    else:
        assert line.startswith("on (") and any(z.verified for z in zygote_client._ZYGOTES.values())


def test_doctor_says_whether_runs_can_read_the_page_cache():
    """The line matches what a run gets: on where this kernel has Landlock (a confined run then
    cannot open /proc/self/pagemap), off with the reason where it has not."""
    from kopt.sandboxes import landlock
    from kopt.sandboxes.run_confinement import Confinement

    exe = Path(sys.executable).with_name("kopt")
    p = subprocess.run([str(exe), "doctor", "--json"], capture_output=True, text=True, timeout=120)
    line = json.loads(p.stdout)["page cache unreadable"]
    assert line.startswith("on" if landlock.available() else "off (no Landlock"), line
    if landlock.available():
        probe = "import sys\ntry:\n    open('/proc/self/pagemap', 'rb')\nexcept PermissionError:\n    sys.exit(7)\n"
        r = subprocess.run([sys.executable, "-S", "-c", probe], preexec_fn=Confinement().apply, timeout=60)
        assert r.returncode == 7
