"""Build C/C++ into a shared library with the system compiler, cached by content.

Solutions call `load_cpp(source, flags)` and get a `ctypes.CDLL`. The cache key covers
the source, the flags and the compiler's version, so an unchanged candidate is never
rebuilt and a toolchain upgrade never reuses a stale build.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

DEFAULT_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")


class CompileError(RuntimeError):
    """The compiler rejected the source; the message holds its trimmed output."""


def cache_root() -> Path:
    return Path(os.environ.get("KOPT_CACHE_DIR") or Path.home() / ".cache" / "kopt")


@functools.cache
def compiler_id(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        raise CompileError(f"C++ compiler {cxx!r} not found: {e}") from None
    return out.splitlines()[0] if out else cxx


def build_key(source: str, flags: tuple[str, ...], cxx: str) -> str:
    h = hashlib.sha256()
    for part in (source, "\0".join(flags), compiler_id(cxx)):
        h.update(part.encode())
        h.update(b"\0\0")
    return h.hexdigest()[:24]


def build_cpp(source: str, flags: tuple[str, ...] = DEFAULT_FLAGS, cxx: str | None = None,
              timeout: float = 300) -> Path:
    cxx = cxx or os.environ.get("CXX", "g++")
    flags = tuple(flags)
    out_dir = cache_root() / "native" / build_key(source, flags, cxx)
    lib = out_dir / "lib.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "src.cpp"
    src.write_text(source)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so")
    os.close(fd)
    try:
        r = subprocess.run([cxx, *flags, str(src), "-o", tmp], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.unlink(tmp)
        raise CompileError(f"compiler timed out after {timeout:.0f}s") from None
    if r.returncode != 0:
        os.unlink(tmp)
        raise CompileError("CompileError: " + trim_compiler_output(r.stderr or r.stdout))
    os.replace(tmp, lib)
    return lib


def trim_compiler_output(text: str, limit: int = 2000) -> str:
    """Keep the lines a model can act on: errors first, with their context."""
    lines = text.splitlines()
    errors = [i for i, line in enumerate(lines) if "error" in line]
    keep: list[str] = []
    for i in errors[:5]:
        keep.extend(lines[max(0, i - 1): i + 3])
    out = "\n".join(keep or lines)
    return out[:limit]


def load_cpp(source: str, flags: tuple[str, ...] = DEFAULT_FLAGS, cxx: str | None = None) -> ctypes.CDLL:
    return ctypes.CDLL(str(build_cpp(source, flags, cxx)))
