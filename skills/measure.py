"""Measures what a slow -> fast pair gains, or says it could not: never a made-up number.

With an input file (NAME.in) both versions run on it -- C/C++ compiled with the same flags
(g++/gcc -O2) -- and their outputs must agree. The gain is the ratio of median CPU times over
interleaved runs when the slow run is long enough to time; for shorter runs of C/C++ it is
the ratio of instruction counts under `valgrind --tool=cachegrind` (exact and repeatable on a
busy machine). Without an input, or when neither can be had, the pair is unmeasured.
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_TIMED_S = 0.05  # below this a CPU-time ratio is mostly clock resolution
COMPILERS = {"c": ("gcc", "-std=c11"), "cpp": ("g++", "-std=c++17")}


@dataclass
class Gain:
    speedup: float | None
    method: str  # instructions | cpu-time | unmeasured
    note: str = ""
    ok: bool = True  # False: the pair is not valid (does not compile, outputs differ)


class PairProblem(Exception):
    pass


def _compile(src: Path, language: str, out: Path) -> None:
    cc, std = COMPILERS[language]
    if shutil.which(cc) is None:
        raise PairProblem(f"{cc} not found")
    r = subprocess.run([cc, "-O2", std, "-o", str(out), str(src), "-lm"], capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
        raise PairProblem(f"{src.name} does not compile: {first}")


def _run(cmd: list[str], stdin: Path | None, timeout: float) -> bytes:
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin:
        try:
            r = subprocess.run(cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PairProblem(f"{Path(cmd[-1]).name} ran past {timeout:.0f}s") from None
    if r.returncode != 0:
        raise PairProblem(f"{Path(cmd[-1]).name} exited with status {r.returncode}")
    return r.stdout


def _cpu_time(cmd: list[str], stdin: Path | None, timeout: float) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _run(cmd, stdin, timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _instructions(cmd: list[str], stdin: Path | None, timeout: float) -> int | None:
    if shutil.which("valgrind") is None:
        return None
    vg = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd]
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin:
        try:
            r = subprocess.run(vg, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    m = re.search(rb"I\s+refs:\s+([\d,]+)", r.stderr)
    return int(m.group(1).replace(b",", b"")) if m and r.returncode == 0 else None


def measure_pair(slow: Path, fast: Path, language: str, stdin: Path | None, rounds: int = 5,
                 timeout: float = 60.0) -> Gain:
    if stdin is None:
        return Gain(None, "unmeasured", "no NAME.in input next to the pair")
    with tempfile.TemporaryDirectory(prefix="kopt-pair-") as tmp:
        try:
            if language in COMPILERS:
                cmds = []
                for src, tag in ((slow, "slow"), (fast, "fast")):
                    exe = Path(tmp) / tag
                    _compile(src, language, exe)
                    cmds.append([str(exe)])
            elif language == "python":
                cmds = [[sys.executable, str(slow)], [sys.executable, str(fast)]]
            else:
                return Gain(None, "unmeasured", f"no runner for {language}")
            out_slow = _run(cmds[0], stdin, timeout)
            out_fast = _run(cmds[1], stdin, timeout)
            if out_slow.split() != out_fast.split():
                return Gain(None, "unmeasured", "the two versions print different output on the input", ok=False)
            times: list[list[float]] = [[], []]
            for _ in range(rounds):  # interleaved, so a load spike hits both sides
                for side in (0, 1):
                    times[side].append(_cpu_time(cmds[side], stdin, timeout))
            slow_t, fast_t = statistics.median(times[0]), statistics.median(times[1])
            counts = [None]
            if slow_t < MIN_TIMED_S and language in COMPILERS:  # too short to time: count instructions
                counts = [_instructions(c, stdin, timeout * 4) for c in cmds]
        except PairProblem as e:
            return Gain(None, "unmeasured", str(e), ok=False)
    return _choose(slow_t, fast_t, counts, rounds)


def _choose(slow_t: float, fast_t: float, counts: list, rounds: int) -> Gain:
    """CPU time when the slow run is long enough to time (it sees cache and memory effects
    that instruction counts miss); instruction counts for short runs, where the clock is
    mostly noise. The note says what was measured."""
    by_count = round(counts[0] / counts[1], 3) if all(counts) else None
    timed = f"median CPU time {slow_t * 1e3:.1f} ms -> {fast_t * 1e3:.1f} ms over {rounds} interleaved runs"
    counted = f"{counts[0]:,} -> {counts[1]:,} instructions (cachegrind)" if by_count else ""
    note = "; ".join(x for x in (timed, counted) if x)
    if slow_t >= MIN_TIMED_S and fast_t > 0:
        return Gain(round(slow_t / fast_t, 3), "cpu-time", note)
    if by_count:
        return Gain(by_count, "instructions", note)
    return Gain(None, "unmeasured", f"runs too short to time ({timed}) and no valgrind")
