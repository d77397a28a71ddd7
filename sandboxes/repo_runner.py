"""The process inside the sandbox that runs a repository's shell commands for kopt.

It is started once per tree per evaluation (by `kopt.agent.targets.repo.shell_commands`) and answers
one request per command: run `sh -c CMD` in the tree, with a fresh private HOME/TMPDIR
that is deleted afterwards (so nothing survives from one run to the next but the tree),
the process group killed on timeout. It makes itself non-dumpable first, so the commands
it starts (untrusted code, same uid) cannot open its channel through /proc and forge an
answer. kopt times the run from outside; the time reported here is only a cross-check.
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import functools
import hashlib
import mmap
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from kopt.sandboxes import no_exec, protocol
from kopt.sandboxes.run_confinement import Confinement, children_disk_reads

PR_SET_DUMPABLE = 4
OUTPUT_LIMIT = 256 << 10
EDGE_LINES = 2000  # whole lines kept at each end of a long output
# a test runner's report lines (pytest -rA's short summary and its summary line, unittest's),
# kept from a long output's middle too, up to REPORT_LIMIT bytes: test_tally reads which tests
# passed there, and 2,200 tests' ids fell in the cut (red team 34)
REPORT_LINE = re.compile(rb"^\s*(?:(?:PASSED|XPASS|FAILED|ERROR|SKIPPED|XFAIL) |=+ .* =+\s*$|Ran \d+ tests? in "
                         rb"|(?:OK|FAILED)(?: \(.*\))?\s*$)")
REPORT_LIMIT = 2 << 20


def _not_dumpable() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _collect(stream, keep: list, limit: int) -> None:
    """Keep the first and last whole lines of a stream (EDGE_LINES each, `limit/2` bytes at
    most) without buffering it whole, and a digest of the lines between in their place: the
    output check compares that line like any other. Without the digest a bench printing 1.7 MB
    had its middle never compared, and a patch printing zeros for most of its answers was
    `faster` 2.16x and correct (red team 30); cut at byte offsets, a faster patch's shorter
    printed timing moved the cut and its digest, and it was `incorrect` (red team 31). The
    test report lines among those cut stay, after the digest (REPORT_LINE), and the marker says
    whether they all fit."""
    half, head, tail, partial = limit // 2, [], collections.deque(), b""
    sizes = {"head": 0, "tail": 0, "cut": 0, "report": 0}
    report: list[bytes] = []
    middle = hashlib.sha256()

    def line(text: bytes) -> None:
        if not sizes["tail"] and len(head) < EDGE_LINES and sizes["head"] + len(text) <= half:
            head.append(text)
            sizes["head"] += len(text)
            return
        tail.append(text)
        sizes["tail"] += len(text)
        while len(tail) > EDGE_LINES or sizes["tail"] > half:
            gone = tail.popleft()
            sizes["tail"] -= len(gone)
            middle.update(gone)
            sizes["cut"] += 1
            if REPORT_LINE.match(gone):
                sizes["report"] += len(gone)
                if sizes["report"] <= REPORT_LIMIT:
                    report.append(gone)
    for chunk in iter(lambda: stream.read1(1 << 16), b""):
        *whole, partial = (partial + chunk).split(b"\n")
        for text in whole:
            line(text + b"\n")
        while len(partial) > half:  # a line longer than the limit: in pieces
            line(partial[:half])
            partial = partial[half:]
    if partial:
        line(partial)
    cut = ""
    if sizes["cut"]:
        kept = (f"; {len(report)} test report lines kept from them"
                f"{', more cut' if sizes['report'] > REPORT_LIMIT else ''}" if sizes["report"] else "")
        cut = f"... [{sizes['cut']} lines cut, sha256 {middle.hexdigest()}{kept}] ...\n"
    keep.append(b"".join(head) + cut.encode() + b"".join(report) + b"".join(tail))


@functools.cache
def _confinement() -> Confinement:
    return Confinement()


def _preexec(no_exec_under: str | None, confine_reads: bool = True):
    """A preexec step: the command reads nothing that shows which host file pages are cached
    (run_confinement.py; red team 10 kept a bench's result there between fresh runs, faster
    6.3x) and, with `no_exec_under`, executes nothing under that folder (see no_exec)."""
    confine = _confinement() if confine_reads else None

    def start() -> None:
        # no_exec lists folders to build its ruleset: before the confinement hides the root's
        if no_exec_under and not no_exec.deny_exec_under(no_exec_under):
            raise OSError("Landlock refused the ruleset")
        if confine is not None:
            confine.apply()
    return start


def run_one(shell: str, cwd: str, timeout: float, no_exec_under: str | None = None, confine: bool = True) -> dict:
    """Run one command; with `no_exec_under`, nothing under that folder may be executed
    (the reply's `no_exec` says whether that held, or False where the kernel cannot)."""
    home = tempfile.mkdtemp(prefix="run-")
    env = {**os.environ, "HOME": home, "TMPDIR": home}
    reads = children_disk_reads()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", shell], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_preexec(no_exec_under, confine))
    except (OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(home, ignore_errors=True)
        return {"rc": 127, "timed_out": False, "wall_s": 0.0, "output": f"cannot start the command: {e}",
                "no_exec": False}
    out: list[bytes] = []
    reader = threading.Thread(target=_collect, args=(proc.stdout, out, OUTPUT_LIMIT), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    wall = time.perf_counter() - start
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also whatever it left running in the background
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    _end_the_rest()
    reader.join(timeout=5)
    shutil.rmtree(home, ignore_errors=True)
    _settle_cgroup_counters()
    return {"rc": proc.returncode, "timed_out": timed_out, "wall_s": wall,
            "output": (out[0] if out else b"").decode(errors="replace"), "no_exec": bool(no_exec_under),
            "disk_reads": children_disk_reads() - reads}


def _settle_cgroup_counters() -> None:
    """Touch and unmap 4 MiB of fresh pages. The kernel folds a memory cgroup's per-CPU counters into
    memory.stat only once enough updates are pending (about 64 per CPU), so the last pages a
    run charged or freed can be missing when kopt reads its disk reads there; a thousand page
    charges of the cgroup's own make the next read fold them all in."""
    with mmap.mmap(-1, 4 << 20) as pages:  # fresh pages every time (a freed heap block would be reused)
        for at in range(0, len(pages), mmap.PAGESIZE):
            pages[at] = 1


def _end_the_rest() -> None:
    """As the PID namespace's first process: kill what the command left (a `setsid` child is in
    no process group of its) and reap everything, so what each process read is counted in
    `children_disk_reads` (a killed orphan's rusage reaches only the process that reaps it). Outside a
    PID namespace of its own (no namespaces on this host) it does nothing: kill(-1) would reach
    the host."""
    if os.getpid() != 1:
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def serve(fd_in: int, fd_out: int) -> None:
    while True:
        try:
            req, _ = protocol.recv(fd_in)
        except protocol.ProtocolError:
            return
        if req.get("cmd") != "run":
            return
        reply = run_one(str(req["shell"]), str(req["cwd"]), float(req.get("timeout", 600)),
                        str(req["no_exec_under"]) if req.get("no_exec_under") else None,
                        confine=req.get("confine") is not False)
        protocol.send(fd_out, {**reply, "nonce": req.get("nonce")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fd-in", type=int, required=True)
    p.add_argument("--fd-out", type=int, required=True)
    p.add_argument("--fd-alarm", type=int, required=True)
    a = p.parse_args()
    _not_dumpable()
    os.close(a.fd_alarm)
    serve(a.fd_in, a.fd_out)


if __name__ == "__main__":
    main()
