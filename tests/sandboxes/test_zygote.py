"""A KernelBench worker forked from the zygote (KOPT_ZYGOTE=1) is jailed exactly as an exec'd
one: what the kernel shows of both (capabilities, seccomp, ids, mounts, namespaces, rlimits,
cgroups, open fds) is compared side by side, both die with their parent, a fork holds nothing
of an earlier fork's request, and a copy of a task is judged through it."""
from __future__ import annotations

import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kopt.sandboxes import protocol, zygote_client  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from kopt.sandboxes.jail_probe import can_jail  # noqa: E402
from kopt.sandboxes.kernelbench_tasks import reference_solution  # noqa: E402
from kopt.sandboxes.local import Limits, start_worker  # noqa: E402

RELU = Path(__file__).parents[1] / "fixtures" / "tasks" / "relu.py"
HARNESS = [sys.executable, "-m", "kopt.sandboxes.harness", "--role", "new"]
STATUS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "Groups")

pytestmark = pytest.mark.skipif(not can_jail(), reason="no jail on this machine (`kopt doctor`: jail no)")


def _started(tmp_path: Path, zygote: str, monkeypatch, hide: tuple[str, ...] = ()):
    monkeypatch.setenv("KOPT_ZYGOTE", zygote)
    cache = Path(tempfile.mkdtemp(prefix="cache", dir=tmp_path))
    w = start_worker(HARNESS, Limits(cache_dir=str(cache), wall_s=120, memory_mb=4096, hide_paths=hide),
                     {"OMP_NUM_THREADS": "1"}, shm=True)
    if zygote == "1" and not isinstance(w.proc, zygote_client.ForkedProc) and zygote_client.REFUSED:
        w.kill()  # the host's forks did not get an exec'd worker's protections: workers are exec'd
        pytest.skip(f"the zygote is off here: {list(zygote_client.REFUSED.values())[0]}")
    protocol.send(w.to_fd, {"cmd": "ping"}, deadline=time.monotonic() + 120)
    assert protocol.recv(w.from_fd, shm=w.shm_fd)[0] == {"ok": True}, w.output.text()
    return w


def _seen(w) -> dict:
    """What the kernel shows of the worker, its own paths and uid written as names."""
    pid = w.root_pid()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    uid = status["Uid"].split()[0]
    names = {str(w.workdir): "WORK", str(w.cache_dir): "CACHE", f"={uid}": "=UID"}

    def named(text: str) -> str:
        for old, new in names.items():
            text = text.replace(old, new)
        return text

    mounts = sorted(named(" ".join([f[4], f[5], *line.split(" - ")[1].split()[::2]]))
                    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if (f := line.split()))
    return {"status": {k: status[k].split() for k in STATUS}, "uid": uid, "ids": {*status["Uid"].split(),
                                                                                 *status["Gid"].split()},
            "mounts": mounts, "limits": Path(f"/proc/{pid}/limits").read_text(),
            "ns": {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("net", "pid", "ipc", "mnt", "user")},
            "cwd": named(os.readlink(f"/proc/{pid}/cwd")), "fds": sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd")),
            "cgroups": {line.split(":")[2].rsplit("/", 1)[0]
                        for line in Path(f"/proc/{pid}/cgroup").read_text().split()}}


def test_a_forked_worker_is_jailed_as_an_exec_one(tmp_path, monkeypatch):
    execd = _started(tmp_path, "0", monkeypatch)
    forked = _started(tmp_path, "1", monkeypatch)
    try:
        assert isinstance(forked.proc, zygote_client.ForkedProc), f"not forked: {zygote_client.REFUSED}"
        assert not isinstance(execd.proc, zygote_client.ForkedProc)
        a, b = _seen(execd), _seen(forked)
        for key in ("status", "mounts", "limits", "cwd", "cgroups"):
            assert a[key] == b[key], key
        assert all(v == ["0" * 16] for k, v in b["status"].items() if k.startswith("Cap")), b["status"]
        assert b["status"]["NoNewPrivs"] == ["1"] and b["status"]["Groups"] == a["status"]["Groups"]
        assert b["ids"] == {b["uid"]} and (b["uid"] != "0") == (a["uid"] != "0")
        if a["uid"] != "0":
            assert a["uid"] != b["uid"]  # a uid of its own per worker
        host = {n: os.readlink(f"/proc/self/ns/{n}") for n in a["ns"]}
        for n in ("net", "pid", "ipc", "mnt"):
            assert len({host[n], a["ns"][n], b["ns"][n]}) == 3, n  # fresh, and not the other worker's
        assert b["fds"] == list(range(8))  # stdio and the channel, nothing of the zygote's
        assert forked.protections == execd.protections
    finally:
        execd.kill()
        forked.kill()
    assert forked.proc.returncode is not None and not forked.alive()


@pytest.mark.parametrize("zygote", ["0", "1"])
def test_a_worker_dies_with_its_parent(tmp_path, monkeypatch, zygote):
    """The worker (PID 1 of its namespace, under a uid of its own on a root host) dies when the
    process outside its namespace that waits for it is killed: a new uid clears the
    parent-death signal, so the jail sets it again after the drop (it survived before)."""
    w = _started(tmp_path, zygote, monkeypatch)
    try:
        root = w.root_pid()
        os.kill(w.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _running(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(root)
    finally:
        w.kill()


def test_a_worker_dies_with_its_zygote(tmp_path, monkeypatch):
    w = _started(tmp_path, "1", monkeypatch)
    try:
        assert isinstance(w.proc, zygote_client.ForkedProc), f"not forked: {zygote_client.REFUSED}"
        root = w.root_pid()
        zygote = int(Path(f"/proc/{w.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        assert zygote in [z.proc.pid for z in zygote_client._ZYGOTES.values()]
        os.kill(zygote, signal.SIGKILL)
        assert w.proc.wait(20) is not None  # the waiter is gone: its status pipe closed
        deadline = time.monotonic() + 20
        while _running(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(root)
    finally:
        w.kill()


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether the process's private writable memory (heap, anonymous maps) holds `needle`."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if parts[1][:2] != "rw" or (len(parts) > 5 and parts[5] not in ("[heap]", "[stack]")):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(lo)
                if needle in mem.read(hi - lo):
                    return True
            except OSError:
                pass
    return False


def test_a_fork_holds_nothing_of_another_workers_request(tmp_path, monkeypatch):
    """Each fork is made blank, before any request reaches it: a later worker's memory holds
    no trace of an earlier worker's request (here: a hidden path named after a token)."""
    token = "kopt-zygote-" + secrets.token_hex(6)
    marker = tmp_path / token
    marker.write_text("x")
    first = _started(tmp_path, "1", monkeypatch, hide=(str(marker),))
    second = _started(tmp_path, "1", monkeypatch)
    try:
        assert isinstance(second.proc, zygote_client.ForkedProc)
        assert _memory_holds(first.root_pid(), token.encode())  # the scan finds a request's text
        assert not _memory_holds(second.root_pid(), token.encode())
    finally:
        first.kill()
        second.kill()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_copy_is_judged_through_the_zygote(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_ZYGOTE", "1")
    sol = tmp_path / "copy.py"
    sol.write_text(reference_solution(RELU.read_text()))
    res = evaluate(RELU, sol, EvalConfig(trials=2, rounds=6, max_timing_s=4, quality_seeds=2, memory_mb=4096))
    assert res["verdict"] in ("same", "faster", "slower"), res.get("reason")
    assert "off" not in res["checks"]["sandbox"] or res["checks"]["sandbox"] == _exec_sandbox(tmp_path, sol,
                                                                                             monkeypatch)


def _exec_sandbox(tmp_path, sol, monkeypatch) -> str:
    monkeypatch.setenv("KOPT_ZYGOTE", "0")
    return evaluate(RELU, sol, EvalConfig(trials=2, rounds=6, max_timing_s=4, quality_seeds=2))["checks"]["sandbox"]
