"""Running a repository's test and bench commands in the sandbox, one tree at a time.

Every command of every candidate (and of the original) runs through `TreeShell`: a
sandboxed runner (`kopt.sandboxes.repo_runner`) whose only writable host folder is its own
tree; the run dir and the other trees are hidden, the network is gone, the environment is
scrubbed. kopt measures each run's wall time from outside the sandbox.
"""
from __future__ import annotations

import math
import os
import re
import secrets
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kopt.sandboxes import fs_walk, overlay_upper, page_residency, protocol
from kopt.sandboxes.jail_probe import overlay_works
from kopt.sandboxes.local import Limits, start_worker

TREE_GROWTH_MB = int(os.environ.get("KOPT_TREE_GROWTH_MB", "1024"))  # what one run may add to its tree
# and how many files and folders: empty files cost bytes only in their folders' blocks, and
# 150,000 of them went under the byte cap, to be walked after every run (red team 15)
TREE_GROWTH_ENTRIES = int(os.environ.get("KOPT_TREE_GROWTH_ENTRIES", "100000"))
TREE_POLL_S = 0.25
# pages a run may add to the page cache beyond the pages of what it wrote before they count as
# read from disk: the file system's own blocks (bitmaps, inode tables, folders) an honest run
# that writes and removes files brings in -- 6-9 pages measured; at 2 such a run was rejected.
# A reader in a process kopt waits for is counted exactly by the runner's blocks read.
CACHE_SLACK_PAGES = 16


@dataclass
class RunResult:
    rc: int
    timed_out: bool
    wall_s: float
    output: str
    no_exec: bool = False  # the run could execute nothing under its tree (a build pass: see fresh)
    disk_reads: int = 0  # pages the run read from disk, the host had not cached them (TreeShell._disk_reads)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def tail(self, lines: int = 25, chars: int = 2000) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])[-chars:]

    @property
    def status(self) -> str:
        return "timed out" if self.timed_out else f"exit {self.rc}"

    def last_line(self) -> str:
        lines = [x for x in self.output.strip().splitlines() if x.strip()]
        return lines[-1].strip()[:200] if lines else "(no output)"

    def tail_line(self, lines: int = 6, chars: int = 500) -> str:
        """The end of a failing command's output on one line: what a model needs to fix it."""
        kept = [x.strip() for x in self.output.strip().splitlines() if x.strip()][-lines:]
        return " / ".join(kept)[-chars:] or "(no output)"


def hide_around(hidden: list[str], keep: list[Path]) -> list[str]:
    """The paths to hide so that everything under `hidden` is out of sight except `keep`.

    A kept folder inside a hidden one (a candidate's tree inside the run dir) stays
    visible: its siblings, and its ancestors' siblings up to the hidden folder, are hidden
    one by one instead of the hidden folder as a whole."""
    keeps = [Path(k).resolve() for k in keep]
    out: list[str] = []

    def visit(p: Path) -> None:
        if any(k == p for k in keeps):
            return
        if not any(p in k.parents for k in keeps):
            out.append(str(p))
            return
        try:
            children = sorted(p.iterdir())
        except OSError:
            return
        for child in children:
            visit(child)

    for h in hidden:
        p = Path(h).resolve()
        if p.exists():
            visit(p)
    return out


def snapshot(tree: Path) -> dict[str, tuple[int, ...]]:
    """(mode, inode, size, mtime, ctime) of every file in a tree outside .git: what a run
    changed shows in a diff, a file swapped for a same-sized symlink with its mtime put back
    too (it hid a change from the timed runs' check: red team 16)."""
    out = {}
    for root, dirs, files in fs_walk.walk(tree):
        dirs[:] = [d for d in dirs if d != ".git"]
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[fs_walk.relative(p, tree)] = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def changed_files(before: dict, after: dict) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def can_throw_away(tree: Path) -> bool:
    """Whether runs in TREE can see it through an overlay (TreeShell's `upper`): the host's jail
    gives one, and the paths can be named in overlayfs' options (no ',', ':' or backslash)."""
    return not set(str(tree)) & set(",:\\\n") and overlay_works()


def python_path(tree: Path) -> dict[str, str]:
    """The tree first on Python's path: a package the user installed in editable mode would
    otherwise import the user's own files, not the candidate's. And pytest lists the tests that
    passed by id (`-rA`), which test_tally compares with the original's, and with plain asserts:
    the assertion rewriter's import hook told the tests' process from the bench's (red team 34)."""
    dirs = [str(d) for d in (tree / "src", tree) if d.is_dir()]
    addopts = f"{os.environ.get('PYTEST_ADDOPTS', '')} -rA --assert=plain".strip()
    return {"PYTHONPATH": os.pathsep.join(dirs), "PYTEST_ADDOPTS": addopts}


class TreeShell:
    """A sandboxed runner bound to one tree; `run` executes one shell command there."""

    def __init__(self, tree: Path, hidden: list[str], keep: list[Path] = (), wall_s: float = 24 * 3600,
                 memory_mb: int = 8192, subdir: str = "", confine: bool = True, upper: Path | None = None,
                 cpu_quota: float | None = None):
        self.tree, self.confine = Path(tree).resolve(), confine  # confine: run_confinement (valgrind needs /proc)
        self.cwd = self.tree / subdir  # where the user pointed kopt, inside the repository
        # upper (overlay_upper.make; see can_throw_away): the worker sees its tree through an
        # overlay and what it changes lands there, the tree itself stays as it is
        self.writable = overlay_upper.root(upper) if upper else self.tree
        self.upper = upper  # cpu_quota: the whole run slowed to that many CPUs' worth (Limits)
        limits = Limits(wall_s=wall_s, memory_mb=memory_mb, cache_dir=str(self.tree), cache_mb=None,
                        hide_paths=tuple(hide_around(hidden, [self.tree, *keep])),
                        cache_overlay=str(upper) if upper else None, cpu_quota=cpu_quota)
        self.worker = start_worker([sys.executable, "-m", "kopt.sandboxes.repo_runner"], limits, python_path(self.tree))

    @property
    def cpu_capped(self) -> bool:
        """Whether the run's CPU quota (cpu_quota) is in force: the host let kopt set it."""
        return bool(self.worker.cgroup and self.worker.cgroup.cpu_capped)

    def run(self, shell: str, timeout: float, no_exec: bool = False) -> RunResult:
        """Run `shell` in the tree; with `no_exec`, nothing under the tree may be executed."""
        nonce = secrets.token_hex(8)
        base = self._measured = fs_walk.usage(self.writable)
        counters = self._counters()
        start = time.perf_counter()
        try:
            deadline = time.monotonic() + timeout + 30  # a sandbox that stops reading or writing cannot stall kopt
            protocol.send(self.worker.to_fd, {"cmd": "run", "shell": shell, "cwd": str(self.cwd),
                                              "timeout": timeout, "nonce": nonce,
                                              "no_exec_under": str(self.tree) if no_exec else "",
                                              "confine": self.confine}, deadline=deadline)
            ready, grown = self._wait(timeout + 30, base)
            if grown is not None:
                self.close()
                return RunResult(-9, False, time.perf_counter() - start, grown)
            if not ready:
                self.close()
                return RunResult(-9, True, time.perf_counter() - start, "the sandbox stopped answering")
            reply, _ = protocol.recv(self.worker.from_fd, max_payload=0, deadline=deadline)
        except (OSError, protocol.ProtocolError) as e:
            self.close()
            return RunResult(-1, False, time.perf_counter() - start,
                             f"the sandbox died: {e}\n{self.worker.output.text()[-2000:]}")
        wall = time.perf_counter() - start
        if grown := self._grown(base):  # a run faster than one poll is measured once it is over (off the clock)
            self.close()
            return RunResult(-9, False, wall, grown)
        if reply.get("nonce") != nonce:
            return RunResult(-1, False, wall, "the sandbox answered out of turn")
        return RunResult(int(reply.get("rc", -1)), bool(reply.get("timed_out")), wall, str(reply.get("output", "")),
                         no_exec=no_exec and reply.get("no_exec") is True,
                         disk_reads=self._disk_reads(reply.get("disk_reads"), counters, self._counters(), base[0]))

    def _counters(self) -> dict:
        """What `_disk_reads` compares before and after a run: the worker's cgroup counters (None
        each where unknown) and, with an upper folder, the pages of it in the page cache."""
        cgroup = self.worker.cgroup
        return {"faults": cgroup.major_faults() if cgroup else None,
                "cached": cgroup.file_cache_pages() if cgroup else None,
                "dirty": cgroup.dirty_pages() if cgroup else None,
                "cap_hits": cgroup.memory_cap_hits() if cgroup else None,
                "written": page_residency.resident_pages(str(self.writable)) if self.upper else None}

    def _disk_reads(self, runner: object, before: dict, after: dict, base_mb: float) -> int:
        """Pages the run read from disk (`disk_reads`), the most any count sees:
        - the runner's: major faults and blocks read (O_DIRECT too) of the processes it waited for;
        - the cgroup's major faults, which count every process (a child the kernel reaps, whose
          rusage reaches no one: red team 21);
        - the pages the run brought into the page cache (its cgroup's file cache), less those
          of what it wrote (resident pages of its upper folder, without one the tree's growth,
          or the cgroup's dirty pages where more: file-system blocks of files made and
          removed, red team 23) and CACHE_SLACK_PAGES: an autoreaped child's buffered preads
          fault nothing (red team 21). A page read, then written, is dirty: read-modify-write
          of the tree copies the file up, its lower pages clean and counted.
        A run that hit its memory cap counts as reading: the reclaim there drops the pages it
        read from the cache count (red team 22)."""
        reads = runner if type(runner) is int and runner >= 0 else 0
        delta = {k: after[k] - before[k] for k in before if before[k] is not None and after[k] is not None}
        if delta.get("cap_hits", 0) > 0:
            return max(reads, 1)
        if "cached" in delta:
            written = delta["written"] if "written" in delta else max(0.0, self._measured[0] - base_mb) * 256
            written = max(written, delta.get("dirty", 0))  # the file system's blocks it changed too
            reads = max(reads, int(delta["cached"] - written) - CACHE_SLACK_PAGES)
        return max(reads, delta.get("faults", 0))

    def _wait(self, timeout: float, base: tuple[float, int]) -> tuple[bool, str | None]:
        """(whether the reply began within TIMEOUT, how the tree grew past a cap or None). The
        tree is a writable host folder: measured every TREE_POLL_S while the run goes on (red
        team 10 wrote 1.5-3 GiB into it in one test run), files the run deleted but holds open
        counted too (red team 11), and the files and folders it made (red team 15)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self.worker.from_fd], [], [], min(left, TREE_POLL_S))[0]:
                return True, None
            if grown := self._grown(base):
                return False, grown
        return False, None

    def _grown(self, base: tuple[float, int]) -> str | None:
        """How the tree grew past a cap since BASE (its MB and entries), or None."""
        unlisted: list[str] = []
        mb, entries = self._measured = fs_walk.usage(self.writable, unlisted)
        if unlisted:  # what is there cannot be measured, nor reset by git
            return f"the run grew its tree by a folder kopt cannot list ({unlisted[0][:160]}...)"
        grown = mb + self.worker.unlinked_mb(str(self.tree)) - base[0]
        if grown > TREE_GROWTH_MB:
            return (f"the run grew its tree by {grown:.0f} MB (at most {TREE_GROWTH_MB} MB; "
                    f"KOPT_TREE_GROWTH_MB sets it for a larger build)")
        if entries - base[1] > TREE_GROWTH_ENTRIES:
            return (f"the run made {entries - base[1]} files and folders in its tree (at most "
                    f"{TREE_GROWTH_ENTRIES}; KOPT_TREE_GROWTH_ENTRIES sets it for a larger build)")
        return None

    def close(self) -> None:
        self.worker.kill()

    def __enter__(self) -> TreeShell:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


MAX_MATCHED_LINE = 4096  # longer lines of a bench's output are never matched (see below)


def short_lines(output: str) -> list[str]:
    """OUTPUT's lines that a pattern may be run over. A pattern runs in kopt's process over what
    the candidate printed, and a natural one backtracks quadratically on a long run of digits
    (`([0-9.]+) ms` over 100,000 digits: a minute a call, red team 10); no honest metric or
    answer line is 4 kB long."""
    return [line for line in output.splitlines() if len(line) <= MAX_MATCHED_LINE]


def parse_metric(output: str, pattern: str | None) -> float | None:
    """The bench's number: group 1 (or the whole match) of the last match of `pattern`;
    None unless it is a positive finite number (a 0, NaN or inf cannot be compared)."""
    if not pattern:
        return None
    matches = [m for line in short_lines(output) for m in re.finditer(pattern, line)]
    if not matches:
        return None
    m = matches[-1]
    text = m.group(1) if m.groups() else m.group(0)
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def normalised(output: str, pattern: str | None) -> str:
    """A bench's output with its metric (every match of `pattern`) masked: what must be the
    same for the candidate as for the original (outputs.OutputCheck masks more where the
    original's own runs vary). A line too long to match (`short_lines`) stays as it is."""
    def mask(m: re.Match) -> str:
        if not m.groups() or m.start(1) < 0:
            return "<metric>"
        return m.group(0)[:m.start(1) - m.start()] + "<metric>" + m.group(0)[m.end(1) - m.start():]

    lines = []
    for line in output.strip().splitlines():
        if len(line) <= MAX_MATCHED_LINE:
            line = re.sub(pattern, mask, line) if pattern else line
        lines.append(line)
    output = "\n".join(lines)
    return "\n".join(line.rstrip() for line in output.strip().splitlines())
