"""Helpers for the red-team tests of the local jail: run a hostile program from
tests/fixtures/hostile as a sandboxed worker (`start_worker`, as the evaluator, the program
runner and the repository runner do) and read back what it reports.

A hostile program prints `KOPT-REPORT {json}` with what it saw, and `KOPT-ESCAPED ...` for
anything it got that it must not have; a test fails on any KOPT-ESCAPED line.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kopt.sandboxes.jail_probe import jail_features
from kopt.sandboxes.local import Limits, Worker, start_worker

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
ESCAPED = "KOPT-ESCAPED"


def require(protection: str) -> None:
    """Skip, saying why, where this host cannot give `protection` (`kopt doctor` says so too)."""
    jail = jail_features()
    if jail is None:
        pytest.skip("no jail on this machine (`kopt doctor`: jail no)")
    if not jail[1].get(protection):
        pytest.skip(f"this host cannot give the jail's {protection!r} (`kopt doctor` reports it off)")


def run_hostile(name: str, *args: str, limits: Limits | None = None, env: dict[str, str] | None = None,
                timeout: float = 120) -> tuple[dict, str, Worker]:
    """Run hostile/<name>.py ARGS in a fresh worker until it exits; (its report, its whole
    output, the worker) -- the output must not hold KOPT-ESCAPED."""
    worker = start_worker([sys.executable, str(HOSTILE / f"{name}.py"), *args],
                          limits or Limits(wall_s=timeout, memory_mb=4096), env)
    try:
        worker.proc.wait(timeout=timeout)
    finally:
        worker.kill()
    out = worker.output.text()
    assert ESCAPED not in out, f"the jail was breached:\n{out[-3000:]}"
    line = next((x for x in reversed(out.splitlines()) if x.startswith("KOPT-REPORT ")), None)
    assert line is not None, f"{name} did not report (rc {worker.proc.returncode}):\n{out[-3000:]}"
    return json.loads(line.split(" ", 1)[1]), out, worker
