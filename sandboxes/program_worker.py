"""The program runner's worker: runs inside the local sandbox, one per `ProgramRunner`.

It builds the sources the host sends (into the one host folder it may write) and runs the
program on each input as its child, on a stdin file, with a wall-time limit, reporting exit
code, output, wall time and -- under `valgrind --tool=cachegrind --cache-sim=no` -- the
instructions executed. It is the PID 1 of its namespace, so after every run it kills whatever
the program left behind; it makes itself non-dumpable so a program cannot ptrace it. Every run
starts fresh: an empty working directory (also HOME and TMPDIR), the tmpfs and private
/dev/shm emptied, its own IPC namespace -- nothing survives to the next run.

    python -m kopt.sandboxes.program_worker --fd-in R --fd-out W --fd-alarm A
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from kopt.sandboxes import protocol
from kopt.sandboxes.native import trim_compiler_output
from kopt.sandboxes.run_confinement import Confinement, children_disk_reads

MAX_OUTPUT = 256 << 20


def _non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: processes of the same uid (the programs it runs) cannot ptrace it."""
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _trim(text: str, limit: int = 2000) -> str:
    return trim_compiler_output(text, limit)


def _build(req: dict) -> dict:
    out_dir, language, source = Path(req["out_dir"]), req["language"], req["source"]
    if language == "python":
        try:
            compile(source, "program.py", "exec")
        except SyntaxError as e:
            return {"ok": True, "error": f"SyntaxError line {e.lineno}: {e.msg}"}
        src = out_dir / "program.py"
        if not src.exists():
            src.write_text(source)
        return {"ok": True, "argv": [sys.executable, "-S", str(src)], "error": ""}
    exe = out_dir / "program"
    if exe.exists():
        return {"ok": True, "argv": [str(exe)], "error": ""}
    src = out_dir / ("program.c" if language == "c" else "program.cpp")
    src.write_text(source)
    cc = "gcc" if language == "c" else "g++"
    tmp = out_dir / f"program.{os.getpid()}.tmp"
    try:
        r = subprocess.run([cc, *req["flags"], str(src), "-o", str(tmp), "-lm"], capture_output=True, text=True,
                           timeout=240, cwd=out_dir)
    except subprocess.TimeoutExpired:
        return {"ok": True, "error": "the compiler timed out after 240s"}
    except OSError as e:
        return {"ok": True, "error": f"no compiler: {e}"}
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        text = (r.stderr or r.stdout).replace(f"{out_dir}/", "")
        return {"ok": True, "error": _trim(text) or f"{cc} failed ({r.returncode})"}
    os.replace(tmp, exe)
    return {"ok": True, "argv": [str(exe)], "error": ""}


def _strays() -> list[int]:
    """Processes other than this worker still alive in its PID namespace (none when not PID 1)."""
    if os.getpid() != 1:
        return []
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me and _state(int(p)) not in ("Z", "")]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _reap_strays() -> None:
    """Kill and reap everything a program left running (we are PID 1 of the namespace)."""
    if os.getpid() == 1:
        try:
            os.kill(-1, 9)
        except OSError:
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _private_shm() -> bool:
    """Whether /dev/shm is the jail's own tmpfs (then it is wiped between runs; never the host's)."""
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[:2] == ["kopt-shm", "/dev/shm"] for line in f)
    except OSError:
        return False


@functools.cache
def _ipc_wrapper() -> tuple[str, ...]:
    """`unshare --user --ipc` when it works here: each run gets its own System V IPC and keyrings,
    so shared memory cannot carry an answer from one run to the next."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    try:
        ok = subprocess.run([exe, "--user", "--ipc", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (exe, "--user", "--ipc") if ok else ()


def _wipe(base: Path) -> None:
    """Remove everything under BASE (the worker's private tmpfs) and a private /dev/shm: the next
    run starts from an empty working directory, HOME, TMPDIR and /dev/shm. A folder the program
    made unreadable (mode 000) is opened up first: skipped, it kept an answer for the next run
    (red team 7: every counted and timed run was a lookup, 800x). What cannot be removed fails
    the run (RuntimeError), never reaches the next one."""
    folders = [base, Path("/dev/shm")] if _private_shm() else [base]
    for folder in folders:
        for entry in os.scandir(folder):
            try:
                _remove(entry.path)
            except (OSError, RecursionError):
                pass
        left = [entry.name for entry in os.scandir(folder)]
        if left:
            raise RuntimeError(f"the run left {left[0]!r} in {folder} and it could not be removed")


def _remove(path: str) -> None:
    """Remove PATH and all below it, whatever modes the program gave its folders (never
    following a symlink)."""
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        _remove(entry.path)
    os.rmdir(path)


SUMMARY = re.compile(rb"^==(\d+)== I\s+refs:\s+([0-9,]+)\s*$", re.M)
SUMMARY_LIKE = re.compile(rb"^==(\d+)== I\s+refs:", re.M)
PREFIX = re.compile(rb"^==(\d+)==", re.M)
MAX_VALGRIND_LOG = 1 << 20


def _count(log: bytes, main_pid: int) -> int | None:
    """Instructions of the run, from valgrind's log (a pipe the program cannot rewrite, only add
    to): every traced process's `I refs` summary, each a positive integer, one per process, the
    program's own among them. A program can write into that pipe (/proc/self/fd) but not take
    out what valgrind wrote, so an extra or doubled summary (a forgery) voids the count. Verbose
    (-v), valgrind writes lines from every process it follows, a forked child too, as soon as
    it starts: one that never printed a summary was killed before its count (red team 6: the
    work in a child SIGKILLed by its parent read as 26 thousand instructions for 108 million)."""
    found = SUMMARY.findall(log)
    if len(found) != len(SUMMARY_LIKE.findall(log)):
        return None  # a summary that is not a plain count (e.g. negative): forged
    pids = [int(pid) for pid, _ in found]
    starts = {int(pid) for pid in re.findall(rb"^==(\d+)== Command: ", log, re.M)}
    if len(set(pids)) != len(pids) or main_pid not in pids or not starts <= set(pids):
        return None  # a process counted twice, the program's own count missing, or a traced one killed
    if _uncounted(log):
        return None
    counts = [int(n.replace(b",", b"")) for _, n in found]
    return sum(counts) if all(n > 0 for n in counts) else None


def _uncounted(log: bytes) -> bool:
    """A process valgrind followed (a fork) that never printed its count: killed before it."""
    return bool({int(pid) for pid in PREFIX.findall(log)} - {int(pid) for pid, _ in SUMMARY.findall(log)})


def _drain(fd: int, into: bytearray) -> None:
    """Read FD to its end, keeping at most MAX_VALGRIND_LOG bytes (a program may flood it)."""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(65536):
            if len(into) < MAX_VALGRIND_LOG:
                into += chunk


@functools.cache
def _confinement() -> Confinement:
    return Confinement()


def _run(req: dict, stdin: bytes, base: Path) -> tuple[dict, bytes]:
    """One run in a fresh working directory (also its HOME and TMPDIR) and, in the jail, a fresh
    /dev/shm and IPC namespace: nothing a run leaves behind reaches the next one, so a program
    cannot remember an input it was already checked on. Nor can it read which pages of a host
    file are cached (run_confinement.py), the state a run cannot wipe; a counted run is the
    exception (valgrind needs /proc)."""
    _wipe(base)
    io, work = base / "io", base / "cwd"
    io.mkdir()
    work.mkdir()
    (io / "stdin").write_bytes(stdin)
    argv, log, pass_fds, reader = list(req["argv"]), bytearray(), (), None
    confine = None if req.get("count") else _confinement()
    if req.get("count"):
        # counts travel on a pipe, never as files: the program shares this uid and tmpfs, so
        # any file valgrind writes it could write (or rewrite) as well
        rfd, wfd = os.pipe()
        pass_fds = (wfd,)
        reader = threading.Thread(target=_drain, args=(rfd, log), daemon=True)
        reader.start()
        argv = ["valgrind", "-v", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
                "--cachegrind-out-file=/dev/null", f"--log-fd={wfd}", *argv]
    env = {**os.environ, "HOME": str(work), "TMPDIR": str(work)}
    io0 = children_disk_reads()
    with open(io / "stdin", "rb") as fin, open(io / "stdout", "wb") as fout, open(io / "stderr", "wb") as ferr:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen([*_ipc_wrapper(), *argv], stdin=fin, stdout=fout, stderr=ferr, cwd=work,
                                    env=env, start_new_session=True, pass_fds=pass_fds,
                                    preexec_fn=confine.apply if confine and confine.available else None)
        finally:
            for fd in pass_fds:
                os.close(fd)
        timed_out = False
        try:
            rc = proc.wait(timeout=req["timeout"])
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            rc = proc.wait()
        wall_ms = (time.perf_counter() - t0) * 1000
    # a process still running when the program exits could rewrite the counts, and its own
    # instructions would never be counted: such a counted run has no count
    left_running = bool(_strays())
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        pass
    _reap_strays()
    disk_reads = children_disk_reads() - io0  # the run's and everything it started (reaped above)
    instructions, uncounted = None, False
    if reader is not None:
        reader.join(10)  # every writer is dead: the pipe is at its end
        if not timed_out and not left_running and not reader.is_alive():
            instructions, uncounted = _count(bytes(log), proc.pid), _uncounted(bytes(log))
    with open(io / "stdout", "rb") as f:
        out = f.read(MAX_OUTPUT)  # a longer output is cut (and compares unequal)
    err = (io / "stderr").read_bytes()[-4000:].decode(errors="replace")
    _wipe(base)
    return ({"ok": True, "rc": rc, "wall_ms": wall_ms, "timed_out": timed_out, "instructions": instructions,
             "uncounted": uncounted, "left_running": left_running, "disk_reads": disk_reads, "stderr": err,
             "confined": bool(confine and confine.available)}, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fd-in", type=int, required=True)
    ap.add_argument("--fd-out", type=int, required=True)
    ap.add_argument("--fd-alarm", type=int, required=True)
    a = ap.parse_args(argv)
    _non_dumpable()
    base = Path(os.getcwd())
    while True:
        try:
            req, payload = protocol.recv(a.fd_in, max_payload=1 << 30)
        except protocol.ProtocolError:
            return
        if req.get("cmd") == "exit":
            return
        try:
            if req.get("cmd") == "build":
                reply, data = _build(req), b""
            elif req.get("cmd") == "run":
                reply, data = _run(req, payload, base)
            else:
                reply, data = {"ok": False, "error": f"unknown command {req.get('cmd')!r}"}, b""
        except Exception as e:  # noqa: BLE001 -- reported to the host, the worker lives on
            reply, data = {"ok": False, "error": f"{type(e).__name__}: {e}"}, b""
        protocol.send(a.fd_out, reply, data)


if __name__ == "__main__":
    main()
