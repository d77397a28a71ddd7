"""$HOME is an allow-list: the worker's HOME and TMPDIR are its own empty work dir, and the
real home folders show only what the worker needs (the python install, the venv, kopt):
credential files nobody listed -- ~/.npmrc, ~/.cargo/credentials, ~/.pgpass, a random
~/.mytoken -- stay out of reach, whatever their mode."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from kopt.sandboxes.jail_setup import home_roots
from tests.redteam.jailrun import require, run_hostile

CREDENTIALS = (".npmrc", ".cargo/credentials", ".cargo/credentials.toml", ".pgpass", ".mytoken", ".ssh/id_rsa",
               ".config/gh/hosts.yml", ".local/share/kopt-token")


def plant(home: Path, secret: str) -> list[str]:
    out = []
    for name in CREDENTIALS:
        path = home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"token={secret}\n")
        path.chmod(0o644)  # readable by anyone: only the allow-list stands in the way
        out.append(str(path))
    return out


def test_credentials_in_home_are_out_of_reach(tmp_path, monkeypatch):
    require("home allow-list")
    token, secret = "krt" + secrets.token_hex(6), "kopt-secret-" + secrets.token_hex(12)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # kopt's own home, wherever it is, is emptied
    paths = plant(home, secret)
    assert os.path.realpath(home) in home_roots()
    real = Path("/root") / f".kopt-rt-{token}"  # and the real homes, here /root
    if os.geteuid() == 0 and Path("/root").is_dir():
        real.write_text(f"token={secret}\n")
        real.chmod(0o644)
        paths.append(str(real))
    try:
        report, _, worker = run_hostile("jail_files", json.dumps(paths), secret, token)
        again, _, _ = run_hostile("jail_files", json.dumps(paths), secret, token)
    finally:
        real.unlink(missing_ok=True)
    assert worker.protections["home allow-list"]
    assert report["readable"] == [], report
    assert report["home"] == report["tmpdir"] == report["cwd"] != str(home), report
    assert report["home_entries"] == [] and again["home_entries"] == [], "a worker's home is not fresh and empty"
