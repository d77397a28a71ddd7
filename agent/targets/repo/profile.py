"""Profiling the bench command on the original tree, inside the sandbox.

Python: `py-spy record --subprocesses` (sampling, sees the whole command tree); where
py-spy cannot attach, `python -m cProfile` when the bench is a plain `python script.py`.
Native code: `valgrind --tool=callgrind` (exact instruction counts, so the ranking does not
depend on the machine's load) on a second run, after a first one has built everything.
The result is a weight per repository function; `hotspots.rank` turns it into a prompt.
"""
from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.targets.repo.hotspots import LANGUAGE_OF, FunctionDef, RepoIndex, is_test_path
from kopt.agent.targets.repo.shell_commands import TreeShell

OUT_DIR = ".kopt-profile"
CALLGRIND_MAX_S = 600.0
PY_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")
# compilers are not traced (the build ran before); make is: it runs the bench
BUILD_TOOLS = "*/cc1*,*/as,*/ld,*/ld.*,*/collect2,*/g++*,*/gcc*,*/c++,*/cc,*/clang*,*/nvcc,*/cicc,*/ptxas"
PLAIN_PYTHON = re.compile(r"^\s*((?:\S*/)?python[\d.]*)\s+([\w./-]+\.py)(\s.*)?$")


@dataclass
class Profile:
    tool: str                                  # py-spy | cProfile | callgrind | none
    weights: dict[FunctionDef, float] = field(default_factory=dict)
    total: float = 0.0
    note: str = ""

    @property
    def covered(self) -> float:
        """How much of the profile lands in the repository's own functions."""
        return sum(self.weights.values()) / self.total if self.total else 0.0


def _tool(name: str) -> str | None:
    return shutil.which(name) or (str(Path(sys.executable).with_name(name))
                                  if Path(sys.executable).with_name(name).exists() else None)


def parse_pyspy_raw(text: str, tree: Path, index: RepoIndex) -> tuple[dict[FunctionDef, float], float]:
    """Credit each sampled stack to its innermost frame in the repository's own code."""
    weights: dict[FunctionDef, float] = {}
    total = 0.0
    root = str(tree.resolve()) + "/"
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in reversed(stack.split(";")):
            m = PY_FRAME.match(frame)
            if not m or not m.group(2).startswith(root):
                continue
            fn = index.enclosing(m.group(2)[len(root):], int(m.group(3)))
            if fn is not None:
                weights[fn] = weights.get(fn, 0.0) + int(count)
                break
    return weights, total


def parse_cprofile(path: Path, tree: Path, index: RepoIndex) -> tuple[dict[FunctionDef, float], float]:
    import pstats

    stats = pstats.Stats(str(path)).stats  # the user's own original code wrote it
    root = str(tree.resolve()) + "/"
    weights: dict[FunctionDef, float] = {}
    total = 0.0
    for (file, line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        total += tottime
        if file.startswith(root):
            fn = index.enclosing(file[len(root):], line) or index.enclosing(file[len(root):], line + 1)
            if fn is not None:
                weights[fn] = weights.get(fn, 0.0) + tottime
    return weights, total


def symbol_name(symbol: str) -> str:
    """`ns::Class::method(int) const` -> `method`; `slow<int>(x)` -> `slow`."""
    base = symbol.split("(", 1)[0].strip()
    while base.endswith(">") and "<" in base:
        depth, i = 0, len(base) - 1
        while i >= 0:
            depth += {">": 1, "<": -1}.get(base[i], 0)
            if depth == 0:
                break
            i -= 1
        base = base[:i]
    return base.split("::")[-1].strip()


ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*?):(.+?)(?:\s+\[(.*)\])?\s*$")


def parse_callgrind(files: list[Path], index: RepoIndex) -> tuple[dict[FunctionDef, float], float]:
    weights: dict[FunctionDef, float] = {}
    total = 0.0
    annotate = _tool("callgrind_annotate")
    for f in files:
        try:
            out = subprocess.run([annotate or "callgrind_annotate", "--inclusive=no", "--threshold=100", str(f)],
                                 capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            m = ANNOTATE_LINE.match(line)
            if not m:
                continue
            ir = float(m.group(1).replace(",", ""))
            if m.group(3).strip() == "PROGRAM TOTALS" or m.group(2).strip() == "PROGRAM TOTALS":
                total += ir
                continue
            hint = m.group(2) if m.group(2) != "???" else None
            defs = index.by_name(symbol_name(m.group(3)), hint)
            if defs:
                weights[defs[0]] = weights.get(defs[0], 0.0) + ir
    return weights, total


def profile_bench(shell: TreeShell, tree: Path, bench: str, index: RepoIndex, timeout: float,
                  bench_s: float = 1.0) -> Profile:
    """Profile `bench` in `tree` with the best tool that works here for the repo's languages.
    `bench_s` (one run's seconds) sizes the repeats py-spy needs and callgrind's time limit."""
    langs = {LANGUAGE_OF[Path(f).suffix.lower()] for f in index.files if not is_test_path(f)}
    out = tree / OUT_DIR
    out.mkdir(exist_ok=True)
    notes = []
    try:
        if "python" in langs:
            repeat = max(1, min(5, math.ceil(2.0 / max(bench_s, 1e-3))))
            prof = _pyspy(shell, tree, bench, index, timeout, repeat) or _cprofile(shell, tree, bench, index, timeout)
            if prof and prof.weights:
                return prof
            notes.append("no Python samples in the repository's code")
        if langs & {"c", "cpp"}:
            prof = _callgrind(shell, tree, bench, index, timeout, min(CALLGRIND_MAX_S, max(120.0, 80 * bench_s)))
            if prof and prof.weights:
                return prof
            notes.append(prof.note or "callgrind found no repository function" if prof else "valgrind is not available")
        return Profile("none", note="; ".join(notes) or "no profiler applies")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _no_exec(bench: str, repeat: int = 1) -> str:
    """A shell line that forks the bench (`repeat` times): py-spy decides at start whether its
    root process is Python, so `sh -c "python x.py"` (which execs in place) would hide the
    interpreter, and it looks for new child processes only now and then, so a short bench
    can end unseen unless it is repeated."""
    if repeat <= 1:
        return f"{bench}\nexit $?"
    return f"i=0; while [ $i -lt {repeat} ]; do\n{bench}\n[ $? -eq 0 ] || exit 1; i=$((i + 1)); done"


def _pyspy(shell, tree, bench, index, timeout, repeat: int) -> Profile | None:
    exe = _tool("py-spy")
    if not exe:
        return None
    raw = tree / OUT_DIR / "pyspy.txt"
    base = f"{shlex.quote(exe)} record --subprocesses --format raw --rate 500 --full-filenames " \
           f"--output {shlex.quote(str(raw))} -- "
    # a plain `python script.py` is started by py-spy itself: sampled from its first instruction
    attempts = [base + bench] if PLAIN_PYTHON.match(bench) else []
    attempts.append(base + f"/bin/sh -c {shlex.quote(_no_exec(bench, repeat))}")
    for command in attempts:
        raw.unlink(missing_ok=True)
        r = shell.run(command, timeout * repeat)
        if raw.exists():
            weights, total = parse_pyspy_raw(raw.read_text(errors="replace"), tree, index)
            if weights:
                return Profile("py-spy", weights, total, "" if r.ok else f"bench exited {r.rc} under py-spy")
    return None


def _cprofile(shell, tree, bench, index, timeout) -> Profile | None:
    m = PLAIN_PYTHON.match(bench)
    if not m:
        return None
    stats = tree / OUT_DIR / "cprofile.out"
    shell.run(f"{m.group(1)} -m cProfile -o {shlex.quote(str(stats))} {m.group(2)}{m.group(3) or ''}", timeout)
    if not stats.exists():
        return None
    weights, total = parse_cprofile(stats, tree, index)
    return Profile("cProfile", weights, total)


def _callgrind(shell, tree, bench, index, timeout, limit_s: float) -> Profile | None:
    exe = _tool("valgrind")
    if not exe:
        return None
    shell.run(bench, timeout)  # build first: the profile is of the bench, not the compiler
    pattern = tree / OUT_DIR / "callgrind.%p"
    r = shell.run(f"{shlex.quote(exe)} --tool=callgrind --callgrind-out-file={shlex.quote(str(pattern))} "
              f"--trace-children=yes --trace-children-skip={shlex.quote(BUILD_TOOLS)} "
              f"/bin/sh -c {shlex.quote(bench)}", limit_s)
    if r.timed_out:
        return Profile("callgrind", note=f"callgrind did not finish in {limit_s:.0f}s; use --focus FILE:FUNC")
    files = sorted((tree / OUT_DIR).glob("callgrind.*"))
    weights, total = parse_callgrind(files, index)
    return Profile("callgrind", weights, total)
