"""Running `kopt` from a test: as its own process (`kopt`), or by the `kopt` script's entry
point inside the test process (`kopt_here`).

`kopt_here` is for quick refusals (bad flags, bad files, a resume that would change a
setting): the same argument parsing, checks, one-line error and exit code as the script,
without starting Python and importing kopt again for each (~1.4 s of CPU a call). Only
sys.stdout/sys.stderr are captured, not the file descriptors: runs that do work (sandbox
workers write to the descriptors), and anything about a fresh process (what it imports,
signals, kill -9), use `kopt`.
"""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path
from unittest import mock


def kopt_argv() -> list[str]:
    """The installed `kopt` script, else `python -m` of its module."""
    exe = Path(sys.executable).with_name("kopt")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]


def kopt(*args, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*kopt_argv(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env)


def kopt_here(*args) -> subprocess.CompletedProcess:
    """`kopt ARGS` through kopt.agent.cli.app.main in this process; stdout, stderr and the
    exit code come back as from `kopt`. An exception main() lets out is raised here (where
    the script would print a traceback), so a test of a one-line error still fails on it."""
    from kopt.agent.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["kopt", *map(str, args)]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), mock.patch.object(sys, "argv", argv):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
