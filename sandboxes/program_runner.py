"""Compile and run stdin/stdout programs inside the local sandbox (the host's side).

One jailed worker (`start_worker`: no network, private tmpfs, rlimits, cgroups, scrubbed
env; its code is program_worker.py) per `ProgramRunner`. The host sends it sources to build
and inputs to run; the worker reports exit code, output, wall time and -- under cachegrind --
the exact number of instructions executed (children included), which does not move when the
machine is busy. Builds land in a per-source cache folder, the only host path the worker
may write. This module also says which compiler flags a source may ask for and keys builds.
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
import time
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.sandboxes import protocol
from kopt.sandboxes.local import Limits, start_worker
from kopt.sandboxes.native import cache_root

CXX_DEFAULT_FLAGS = ("-O2",)
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
    uncounted: bool = False  # a process it started was killed before valgrind printed its count
    disk_reads: int = 0  # major faults and blocks read: pages the host had not cached
    confined: bool = False  # ran under run_confinement (no /proc, no getrusage)

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
        self.worker = start_worker([sys.executable, "-m", "kopt.sandboxes.program_worker"], limits)

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
                         reply.get("instructions"), bool(reply.get("left_running")), reply.get("uncounted") is True,
                         int(reply.get("disk_reads") or 0), reply.get("confined") is True)


def build_runner(role: str, source: str, language: str, flags: list[str],
                 hide_paths: tuple[str, ...] = ()) -> tuple[ProgramRunner, str]:
    """(a started runner holding SOURCE built, compiler errors or '')."""
    runner = ProgramRunner(role, hide_paths)
    try:
        return runner, runner.build(source, language, flags)
    except BaseException:
        runner.close()
        raise


def build_reference(path: Path, language: str, source: str, std: str | None) -> tuple[ProgramRunner, str]:
    """(a started runner holding a program's reference built, compiler errors or ''); flags the
    source asks for that are not allowed are the user's error, in one line."""
    try:
        flags = source_flags_for(path, language, source, std)
    except FlagError as e:
        raise UserInputError(f"{path.name}: {e}") from None
    return build_runner("reference", source, language, flags)
