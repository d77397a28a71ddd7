"""Compile and run stdin/stdout programs inside the local sandbox.

One jailed worker (`start_worker`: no network, private tmpfs, rlimits, cgroups, scrubbed
env) per `ProgramRunner`. The host sends it sources to build and inputs to run; the worker
runs each program as its child on a stdin file, with a wall-time limit, and reports exit
code, output, wall time and -- under `valgrind --tool=cachegrind --cache-sim=no` -- the
exact number of instructions executed (children included), which does not move when the
machine is busy. Builds land in a per-source cache folder, the only host path the worker
may write. The worker is the PID 1 of its namespace, so after every run it kills whatever
the program left behind; it also makes itself non-dumpable so a program cannot ptrace it.
Every run starts fresh: an empty working directory (also HOME and TMPDIR), the worker's
tmpfs and private /dev/shm emptied, its own IPC namespace -- nothing survives to the next run.

    python -m kopt.sandboxes.program_runner --fd-in R --fd-out W --fd-alarm A   (the worker)
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kopt.sandboxes import protocol
from kopt.sandboxes.local import Limits, start_worker
from kopt.sandboxes.native import cache_root, trim_compiler_output

CXX_DEFAULT_FLAGS = ("-O2",)
MAX_OUTPUT = 256 << 20
MAX_HEADER_BYTES = 4 << 20
# Flags a candidate may ask for with a `// kopt-flags: ...` line; anything else (-I, -include,
# -fplugin, -B, -Wl, ...) could read or run files outside the program and is refused.
ALLOWED_FLAG = re.compile(r"^-(O[0-3sg]?|Ofast|march=native|mtune=native|funroll(-all)?-loops|fomit-frame-pointer"
                          r"|flto|fno-[a-z0-9-]+|f(inline-functions|tree-vectorize|prefetch-loop-arrays|fast-math)"
                          r"|std=(c|c\+\+|gnu|gnu\+\+)[0-9a-z]+|D[A-Za-z_]\w*(=\w+)?)$")
FLAGS_LINE = re.compile(r"^\s*(?://|#)\s*kopt-flags:(.*)$", re.M)
LANGUAGES = {".c": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".py": "python"}


class FlagError(ValueError):
    """A `kopt-flags` line asks for a flag the runner does not allow."""


def language_of(path: str | Path) -> str | None:
    return LANGUAGES.get(Path(path).suffix.lower())


def source_flags(source: str) -> list[str]:
    """Compiler flags a source asks for on its `kopt-flags:` line (checked against the allow list)."""
    m = FLAGS_LINE.search(source)
    flags = m.group(1).split() if m else []
    bad = [f for f in flags if not ALLOWED_FLAG.match(f)]
    if bad:
        raise FlagError(f"compiler flag(s) not allowed: {' '.join(bad)} (allowed: -O*, -march=native, -funroll-loops, "
                        f"-fno-*, -std=..., -DNAME)")
    return flags


def compile_flags(language: str, source: str, std: str | None = None) -> list[str]:
    """The full flag list for SOURCE: defaults, then the standard, then the source's own flags
    (a later -O or -std wins, as with gcc)."""
    if language == "python":
        return []
    default_std = "c11" if language == "c" else "gnu++17"
    static = ["-static"] if static_link_ok() else []
    return [*CXX_DEFAULT_FLAGS, *static, f"-std={std or default_std}", *source_flags(source)]


def source_flags_for(path: Path, language: str, source: str, std: str | None = None) -> list[str]:
    """`compile_flags` for a source that lives in a folder: `#include "x.h"` (testlib.h, a shared
    header) resolves next to it, and the headers' contents are part of the build key."""
    flags = compile_flags(language, source, std)
    if language == "python":
        return flags
    folder = Path(path).resolve().parent
    headers = sorted(set(re.findall(r'^\s*#\s*include\s*"([^"]+)"', source, re.M)))
    digest = hashlib.sha256()
    for name in headers:
        digest.update(name.encode() + b"\0" + header_bytes(folder, name))
    return [*flags, "-iquote", str(folder), f"-DKOPT_HEADERS_{digest.hexdigest()[:12]}"] if headers else flags


def header_bytes(folder: Path, name: str) -> bytes:
    """The contents of header NAME beside a source, for the build key only: the name comes from
    a candidate, so kopt's own process reads nothing but a small regular file inside FOLDER
    (no absolute path, no `..`, no symlink, device or FIFO: `/proc/self/fd/0` would block for
    good). The compiler resolves the include itself, inside the sandbox."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not name.strip():
        return b""
    path = folder / rel
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_HEADER_BYTES:
            return b""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_HEADER_BYTES)


@functools.cache
def static_link_ok() -> bool:
    """Whether static C++ links work here. Static binaries skip the dynamic loader: valgrind starts
    3x faster on them and their instruction counts carry no loader noise."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "t.cpp").write_text("#include <cstdio>\nint main(){std::puts(\"ok\");}\n")
        try:
            r = subprocess.run(["g++", "-static", "t.cpp", "-o", "t"], cwd=d, capture_output=True, timeout=120)
            return r.returncode == 0 and subprocess.run([f"{d}/t"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


@functools.cache
def valgrind_path() -> str | None:
    """valgrind, when it exists and can run a program here."""
    exe = shutil.which("valgrind")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", "true"],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if r.returncode == 0 else None


@functools.cache
def compiler_version(language: str) -> str:
    exe = {"c": "gcc", "cpp": "g++"}.get(language, sys.executable)
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (out.splitlines() or [exe])[0]


def build_dir(role: str, language: str, source: str, flags: list[str]) -> Path:
    """A build folder owned by one (role, source, flags): no program can plant a binary another one runs."""

    key = hashlib.sha256("\0".join([role, language, source, *flags, compiler_version(language)]).encode())
    path = cache_root() / "programs" / key.hexdigest()[:24]
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class RunResult:
    """One run of a program on one input."""

    rc: int
    stdout: bytes
    stderr: str
    wall_ms: float
    timed_out: bool = False
    instructions: int | None = None
    left_running: bool = False  # processes outlived the program (a counted run then has no count)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def failure(self) -> str:
        """One line saying how the run failed ('' when it did not)."""
        if self.timed_out:
            return f"timed out after {self.wall_ms / 1000:.1f}s"
        if self.rc == 0:
            return ""
        how = f"killed by signal {-self.rc}" if self.rc < 0 else f"exit code {self.rc}"
        tail = " | ".join(self.stderr.strip().splitlines()[-2:])[:200]
        return how + (f": {tail}" if tail else "")


class RunnerError(Exception):
    """The sandboxed worker died or did not answer (a verdict for the program, not a kopt crash)."""


class ProgramRunner:
    """A sandboxed worker holding one program (built from source, or a ready executable).
    Use as a context manager. Only the build may write on the host (the program's own build
    folder); runs happen in a second worker that can write nowhere but its private tmpfs."""

    def __init__(self, role: str = "program", hide_paths: tuple[str, ...] = (), memory_mb: int = 2048,
                 wall_s: float = 3600.0):
        self.role, self.hide_paths, self.memory_mb, self.wall_s = role, tuple(hide_paths), memory_mb, wall_s
        self.worker = None
        self.argv: list[str] = []

    def __enter__(self) -> ProgramRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, cache_dir: Path | None, read: tuple[str, ...] = ()) -> None:
        """A fresh worker; CACHE_DIR is the one host folder it may write, READ the host paths it
        must read (the jail shows home folders only through an allow-list)."""

        limits = Limits(wall_s=self.wall_s, memory_mb=self.memory_mb, hide_paths=self.hide_paths,
                        cache_dir=str(cache_dir) if cache_dir else None, nproc=256, tmp_mb=1024,
                        read_paths=tuple(read))
        self.worker = start_worker([sys.executable, "-m", "kopt.sandboxes.program_runner"], limits)

    def close(self) -> None:
        if self.worker is not None:
            try:
                protocol.send(self.worker.to_fd, {"cmd": "exit"}, deadline=time.monotonic() + 1)
            except (OSError, protocol.ProtocolError):
                pass
            self.worker.kill()
            self.worker = None

    def _call(self, header: dict, payload: bytes = b"", timeout: float = 600.0) -> tuple[dict, bytes]:
        w = self.worker
        try:
            deadline = time.monotonic() + timeout  # a sandbox that stops reading or writing cannot stall kopt
            protocol.send(w.to_fd, header, payload, deadline=deadline)
            if not select.select([w.from_fd], [], [], timeout)[0]:
                raise RunnerError(f"{self.role} sandbox did not answer within {timeout:.0f}s")
            reply, data = protocol.recv(w.from_fd, max_payload=1 << 30, deadline=deadline)
        except (OSError, protocol.ProtocolError):
            tail = " | ".join(w.output.text().strip().splitlines()[-2:])[-300:]
            raise RunnerError(f"{self.role} sandbox died: {tail or 'no output'}") from None
        if not reply.get("ok"):
            raise RunnerError(str(reply.get("error", "failed")))
        return reply, data

    def build(self, source: str, language: str, flags: list[str]) -> str:
        """Build SOURCE; returns '' or the compiler's trimmed errors."""
        if self.worker is not None:
            raise RunnerError("a ProgramRunner holds one program")
        out_dir = build_dir(self.role, language, source, flags)
        built = out_dir / ("program.py" if language == "python" else "program")
        if built.exists():  # written only after a successful build
            self.argv = [sys.executable, "-S", str(built)] if language == "python" else [str(built)]
            self._start(None, (str(out_dir),))
            return ""
        # the build reads the source's folder when it includes a header from there (-iquote)
        self._start(out_dir, tuple(b for a, b in zip(flags, flags[1:]) if a == "-iquote"))
        reply, _ = self._call({"cmd": "build", "language": language, "source": source, "flags": flags,
                               "out_dir": str(out_dir)}, timeout=300)
        self.argv = reply.get("argv") or []
        # the program runs in a fresh worker with nothing writable on the host: it cannot change
        # its own build or leave answers there for its next evaluation
        self.close()
        if self.argv:
            self._start(None, (str(out_dir),))
        return reply.get("error", "")

    def use_executable(self, path: Path) -> None:
        """A ready-made executable (e.g. a user's compiled validator), run as it is."""
        self.argv = [str(Path(path).resolve())]
        self._start(None, (self.argv[0],))

    def run(self, stdin: bytes, timeout_s: float = 10.0, count: bool = False,
            args: list[str] | None = None, argv: list[str] | None = None) -> RunResult:
        """Run the program on STDIN; with `count`, under cachegrind for its instruction count.
        ARGV runs another command in the same sandbox instead (e.g. to time an empty start-up)."""
        if not (argv or self.argv):
            raise RunnerError(f"the {self.role} program was not built")
        header = {"cmd": "run", "argv": [*(argv or self.argv), *(args or [])], "timeout": timeout_s,
                  "count": bool(count and valgrind_path())}
        reply, out = self._call(header, stdin, timeout=timeout_s + 60)
        return RunResult(reply["rc"], out, reply.get("stderr", ""), reply["wall_ms"], reply.get("timed_out", False),
                         reply.get("instructions"), bool(reply.get("left_running")))


def build_runner(role: str, source: str, language: str, flags: list[str],
                 hide_paths: tuple[str, ...] = ()) -> tuple[ProgramRunner, str]:
    """(a started runner holding SOURCE built, compiler errors or '')."""
    runner = ProgramRunner(role, hide_paths)
    try:
        return runner, runner.build(source, language, flags)
    except BaseException:
        runner.close()
        raise


# ---- the worker: runs inside the sandbox ------------------------------------------------

def _non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: processes of the same uid (the programs it runs) cannot ptrace it."""
    try:
        import ctypes

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
    run starts from an empty working directory, HOME, TMPDIR and /dev/shm."""
    folders = [base, Path("/dev/shm")] if _private_shm() else [base]
    for folder in folders:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


SUMMARY = re.compile(rb"^==(\d+)== I\s+refs:\s+([0-9,]+)\s*$", re.M)
SUMMARY_LIKE = re.compile(rb"^==(\d+)== I\s+refs:", re.M)
MAX_VALGRIND_LOG = 1 << 20


def _count(log: bytes, main_pid: int) -> int | None:
    """Instructions of the run, from valgrind's log (a pipe the program cannot rewrite, only add
    to): every traced process's `I refs` summary, each a positive integer, one per process, the
    program's own among them. A program can write into that pipe (/proc/self/fd) but not take
    out what valgrind wrote, so an extra or doubled summary (a forgery) voids the count."""
    found = SUMMARY.findall(log)
    if len(found) != len(SUMMARY_LIKE.findall(log)):
        return None  # a summary that is not a plain count (e.g. negative): forged
    pids = [int(pid) for pid, _ in found]
    starts = {int(pid) for pid in re.findall(rb"^==(\d+)== Command: ", log, re.M)}
    if len(set(pids)) != len(pids) or main_pid not in pids or not starts <= set(pids):
        return None  # a process counted twice, the program's own count missing, or a traced one killed
    counts = [int(n.replace(b",", b"")) for _, n in found]
    return sum(counts) if all(n > 0 for n in counts) else None


def _drain(fd: int, into: bytearray) -> None:
    """Read FD to its end, keeping at most MAX_VALGRIND_LOG bytes (a program may flood it)."""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(65536):
            if len(into) < MAX_VALGRIND_LOG:
                into += chunk


def _run(req: dict, stdin: bytes, base: Path) -> tuple[dict, bytes]:
    """One run in a fresh working directory (also its HOME and TMPDIR) and, in the jail, a fresh
    /dev/shm and IPC namespace: nothing a run leaves behind reaches the next one, so a program
    cannot remember an input it was already checked on."""
    _wipe(base)
    io, work = base / "io", base / "cwd"
    io.mkdir()
    work.mkdir()
    (io / "stdin").write_bytes(stdin)
    argv, log, pass_fds, reader = list(req["argv"]), bytearray(), (), None
    if req.get("count"):
        # counts travel on a pipe, never as files: the program shares this uid and tmpfs, so
        # any file valgrind writes it could write (or rewrite) as well
        rfd, wfd = os.pipe()
        pass_fds = (wfd,)
        reader = threading.Thread(target=_drain, args=(rfd, log), daemon=True)
        reader.start()
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
                "--cachegrind-out-file=/dev/null", f"--log-fd={wfd}", *argv]
    env = {**os.environ, "HOME": str(work), "TMPDIR": str(work)}
    with open(io / "stdin", "rb") as fin, open(io / "stdout", "wb") as fout, open(io / "stderr", "wb") as ferr:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen([*_ipc_wrapper(), *argv], stdin=fin, stdout=fout, stderr=ferr, cwd=work,
                                    env=env, start_new_session=True, pass_fds=pass_fds)
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
    instructions = None
    if reader is not None:
        reader.join(10)  # every writer is dead: the pipe is at its end
        if not timed_out and not left_running and not reader.is_alive():
            instructions = _count(bytes(log), proc.pid)
    with open(io / "stdout", "rb") as f:
        out = f.read(MAX_OUTPUT)  # a longer output is cut (and compares unequal)
    err = (io / "stderr").read_bytes()[-4000:].decode(errors="replace")
    _wipe(base)
    return ({"ok": True, "rc": rc, "wall_ms": wall_ms, "timed_out": timed_out, "instructions": instructions,
             "left_running": left_running, "stderr": err}, out)


def main(argv: list[str] | None = None) -> None:
    import argparse

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
