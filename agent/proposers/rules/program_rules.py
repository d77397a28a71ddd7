"""`rules` for program targets: mechanical rewrites that are safe to try without an LLM.

Each rule checks that its rewrite keeps the program's behaviour (e.g. fast iostreams only when
the program never mixes in C stdio; `unordered_map` only when nothing relies on key order),
and the evaluator keeps only what is verified faster. One candidate per rule that applies,
and one with all of them, from the reference only.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from kopt.agent.core import Candidate

CSTDIO = re.compile(r"\b(scanf|printf|puts|getchar|putchar|gets|fgets|fputs|fread|fwrite)\s*\(")


def add_flags(code: str) -> str | None:
    """-O3 -march=native for the whole program (the default build is -O2)."""
    if "kopt-flags:" in code:
        return None
    return "// kopt-flags: -O3 -march=native\n" + code


def fast_iostream(code: str) -> str | None:
    """Unsynced iostreams and an untied cin: C++ I/O without stdio locking per call."""
    if "cin" not in code or "sync_with_stdio" in code or CSTDIO.search(code):
        return None
    m = re.search(r"\bint\s+main\s*\([^)]*\)\s*\{", code)
    if not m:
        return None
    line = "\n    std::ios::sync_with_stdio(false);\n    std::cin.tie(nullptr);"
    return code[:m.end()] + line + code[m.end():]


def no_endl(code: str) -> str | None:
    """'\\n' instead of endl: no flush per line."""
    new = re.sub(r"\b(?:std::)?endl\b", r"'\\n'", code)
    return new if new != code else None


def reserve_vectors(code: str) -> str | None:
    """v.reserve(n) before a `for (... i < n ...)` loop whose body push_backs into an empty vector v."""
    new = code
    for m in re.finditer(r"^([ \t]*)for\s*\(\s*(?:int|long long|size_t|auto)\s+\w+\s*=\s*0\s*;\s*\w+\s*<\s*(\w+)\s*;"
                         r"[^)]*\)\s*\{?\s*\n?[^\n]*?\b(\w+)\.push_back\(", code, re.M):
        indent, bound, vec = m.group(1), m.group(2), m.group(3)
        declared = re.search(rf"\bvector\s*<[^;>]+>\s+{vec}\s*;", code[:m.start()])
        if declared and f"{vec}.reserve" not in code:
            loop_line = m.group(0).splitlines()[0]
            new = new.replace(loop_line, f"{indent}{vec}.reserve({bound});\n{loop_line}", 1)
    return new if new != code else None


HASHABLE_KEY = re.compile(r"^(?:std::)?(?:(?:unsigned |signed )?(?:char|short|int|long|long long)|unsigned|size_t|"
                          r"u?int(?:8|16|32|64)_t|string)$")


def _map_decls(code: str) -> list[tuple[str, str]]:
    """(key type, variable name) of every `map<K, V> name` (template brackets balanced)."""
    out = []
    for m in re.finditer(r"\b(?:std::)?map\s*<", code):
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"<": 1, ">": -1}.get(code[i], 0)
            i += 1
        args = code[m.end():i - 1]
        key = args.split(",")[0].strip()
        name = re.match(r"[\s&*]*(\w+)", code[i:])
        out.append((key, name.group(1) if name else ""))
    return out


def hash_maps(code: str) -> str | None:
    """std::map -> std::unordered_map when the keys hash and nothing relies on key order (no
    iteration, begin, lower_bound, ...): lookups drop from O(log n) pointer chases to O(1)."""
    decls = _map_decls(code)
    if not decls or "multimap" in code or any(not HASHABLE_KEY.match(key) for key, _ in decls):
        return None
    for _, name in decls:
        if not name or re.search(rf"\b{name}\s*\.\s*(?:begin|rbegin|cbegin|lower_bound|upper_bound|equal_range)\b"
                                 rf"|:\s*{name}\s*\)|\b(?:prev|next)\s*\(\s*{name}\b", code):
            return None
    new = re.sub(r"\b(std::)?map\s*<", lambda m: f"{m.group(1) or ''}unordered_map<", code)
    if "<unordered_map>" not in new and "<bits/stdc++.h>" not in new:
        new = new.replace("#include <map>", "#include <unordered_map>") if "#include <map>" in new \
            else "#include <unordered_map>\n" + new
    return new


def python_fast_input(code: str) -> str | None:
    """input() bound to sys.stdin.readline: one buffered read path instead of the interactive one."""
    if "input(" not in code or "sys.stdin.readline" in code:
        return None
    return "import sys\ninput = lambda: sys.stdin.readline().rstrip('\\r\\n')\n" + code


Rule = tuple[str, str, Callable[[str], str | None]]
CPP_RULES: list[Rule] = [
    ("compiler flags -O3 -march=native", "cpp-compiler-flags", add_flags),
    ("fast iostreams (sync_with_stdio(false), cin.tie(nullptr))", "cpp-fast-io", fast_iostream),
    ("'\\n' instead of endl (no flush per line)", "cpp-no-endl", no_endl),
    ("reserve vectors before push_back loops", "cpp-reserve", reserve_vectors),
    ("std::map -> std::unordered_map (no ordered use)", "cpp-hash-map", hash_maps),
]
PY_RULES: list[Rule] = [("sys.stdin.readline instead of input()", "python-fast-input", python_fast_input)]


class ProgramRulesProposer:
    name = "rules"

    def __init__(self) -> None:
        self.tokens = 0
        self.cost = 0.0

    def plan(self, source: str) -> list[str]:
        return [step for step, _, _ in self._applicable(source, "cpp")]

    @staticmethod
    def _applicable(code: str, language: str) -> list[tuple[str, str, str]]:
        rules = PY_RULES if language == "python" else CPP_RULES
        out = []
        for step, skill, rule in rules:
            new = rule(code)
            if new is not None:
                out.append((step, skill, new))
        return out

    def propose(self, context: dict) -> list[Candidate]:
        parent: Candidate = context["parent"]
        if parent.parent_ids:  # rules rewrite the reference; the combined candidate covers stacking
            return []
        target = context.get("target")
        language = getattr(target, "language", "cpp")
        meta = {"model": "rules", "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
        found = self._applicable(parent.code, language)
        cands = [Candidate(code=new, parent_ids=[parent.id], plan_step=step, skills=[skill], proposer=dict(meta))
                 for step, skill, new in found]
        if len(found) > 1:
            code = parent.code
            rules = PY_RULES if language == "python" else CPP_RULES
            for _, _, rule in rules:
                code = rule(code) or code
            cands.append(Candidate(code=code, parent_ids=[parent.id], plan_step="all rules: " + "; ".join(
                step for step, _, _ in found), skills=[s for _, s, _ in found], proposer=dict(meta)))
        return cands
