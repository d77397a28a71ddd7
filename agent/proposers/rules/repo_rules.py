"""`rules` for a repository: the one mechanical change kopt can make without a model.

Without an LLM, kopt cannot rewrite arbitrary code honestly. What it can do is raise the
optimisation level of a native build: a Makefile variable (CFLAGS, CXXFLAGS, NVCCFLAGS...)
or a CMake `set(CMAKE_<LANG>_FLAGS ...)` / `CMAKE_BUILD_TYPE` that builds at -O0/-O1/-Og
(or with no -O at all) becomes -O2, and -O3 with -march=native. The repository's own
tests and bench decide whether that is correct and faster. For a pure-Python repository
no rule applies and it proposes nothing -- use `--model` for real rewrites.
"""
from __future__ import annotations

import re
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.proposers.prompting.edits import EditError
from kopt.agent.targets.repo import safefs

MAKE_FLAGS = re.compile(r"^(?P<name>(?:C|CXX|CU|NVCC|CPP|CUDA)FLAGS)[ \t]*(?P<op>[:+?]?=)[ \t]*(?P<value>.*)$", re.M)
CMAKE_FLAGS = re.compile(r"^\s*set\s*\(\s*(?P<name>CMAKE_(?:C|CXX|CUDA)_FLAGS)\s+\"(?P<value>[^\"]*)\"\s*\)", re.M)
CMAKE_TYPE = re.compile(r"^\s*set\s*\(\s*CMAKE_BUILD_TYPE\s+\"?(?P<value>Debug|None)\"?[^)\n]*\)", re.M)
OPT = re.compile(r"(?<!\S)-O(?:[0-3sgz]|fast)?(?!\S)")
SKILL = "cpp-compiler-flags"


def raised(flags: str, level: str) -> str | None:
    """`flags` with its -O level replaced by `level` (e.g. "-O3 -march=native"); None when
    it already builds at that level or higher."""
    current = OPT.findall(flags)
    have = current[-1] if current else ""
    if have in ("-O3", "-Ofast") and (level == "-O2" or "-march=native" in flags):
        return None
    if have == "-O2" and level == "-O2":
        return None
    stripped = OPT.sub("", flags).split()
    return " ".join([level, *[f for f in stripped if not (f == "-march=native" and "-march=native" in level)]])


def flag_edits(rel: str, text: str, level: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs that raise every optimisation flag line of one build file."""
    out = []
    pattern = CMAKE_FLAGS if rel.endswith((".cmake", "CMakeLists.txt")) else MAKE_FLAGS
    for m in pattern.finditer(text):
        if "op" in m.groupdict() and m.group("op") == "+=" and not OPT.search(m.group("value")):
            continue  # an addition to flags set elsewhere
        new_value = raised(m.group("value").strip(), level)
        if new_value is None:
            continue
        line = m.group(0)
        out.append((line, line[: m.start("value") - m.start()] + new_value + line[m.end("value") - m.start():]))
    if rel.endswith("CMakeLists.txt"):
        for m in CMAKE_TYPE.finditer(text):
            line = m.group(0)
            out.append((line, line[: m.start("value") - m.start()] + "Release" + line[m.end("value") - m.start():]))
    return out


SAFE_FLAG = re.compile(r"^(?:-O(?:[0-3sgz]|fast)?|-march=[\w.+-]+|-mtune=[\w.+-]+|-flto|-funroll-loops"
                       r"|-fomit-frame-pointer|-g[0-3]?)$")


def _flag_line(line: str) -> tuple[str, str] | None:
    for pattern in (MAKE_FLAGS, CMAKE_FLAGS):
        if m := pattern.match(line):
            return m.group("name") + m.groupdict().get("op", ""), m.group("value")
    return None


def flags_only(old: str, new: str) -> bool:
    """Whether a build file changed only in optimisation flags (-O levels, -march, -g...),
    line for line: the one change to a build file a candidate may make. A changed recipe,
    target or define is not one."""
    a, b = old.splitlines(), new.splitlines()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if CMAKE_TYPE.match(x) and CMAKE_TYPE.sub(lambda m: m.group(0).replace(m.group("value"), "Release"), x) == y:
            continue
        fx, fy = _flag_line(x), _flag_line(y)
        if fx is None or fy is None or fx[0] != fy[0]:
            return False
        if not all(SAFE_FLAG.match(t) for t in set(fx[1].split()) ^ set(fy[1].split())):
            return False
    return True


def build_files(tree: Path) -> list[str]:
    names = ("Makefile", "makefile", "GNUmakefile", "CMakeLists.txt")
    found = [p for p in tree.rglob("*") if (p.name in names or p.suffix in (".mk", ".cmake"))
             and ".git" not in p.parts and safefs.is_regular(tree, str(p.relative_to(tree)))]
    return sorted(str(p.relative_to(tree)) for p in found)[:20]


class RepoRulesProposer:
    name = "rules"

    def propose(self, context: dict) -> list[Candidate]:
        target, parent = context["target"], context["parent"]
        if parent.code != target.baseline_code():
            return []  # the flags are raised once, from the original
        tree = target.ws.tree_for(parent.code)
        out = []
        for level, label in (("-O2", "-O2"), ("-O3 -march=native", "-O3 -march=native")):
            blocks = []
            for rel in build_files(tree):
                text = safefs.read_text(tree, rel, errors="replace")
                blocks += [f"{rel}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE"
                           for old, new in flag_edits(rel, text, level)]
            if not blocks:
                continue
            answer = "\n\n".join(blocks)
            try:
                code, kind = target.apply_answer(answer, parent.code)
            except EditError:
                continue
            if any(c.code == code for c in out):
                continue
            out.append(Candidate(code=code, parent_ids=[parent.id], skills=[SKILL],
                                 plan_step=f"build with {label} (rule: raise the compiler optimisation level)",
                                 proposer={"model": "rules", "edit": kind}, completion=answer))
        return out
