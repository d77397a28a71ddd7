"""Where the time goes, in the repository's own functions (tree-sitter: Python, C, C++, CUDA).

A profile names files and lines (py-spy, cProfile) or symbols (callgrind); this module
maps them to function definitions in the tree, ranks them, and finds for each hot
function its callers and the tests that mention it -- the compact context a model needs,
instead of the whole repository.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.targets.repo import safefs
from kopt.agent.targets.repo.worktree import git

LANGUAGE_OF = {".py": "python", ".c": "c", ".h": "cpp", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
               ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp", ".cu": "cpp", ".cuh": "cpp"}
MAX_FILE_BYTES = 1 << 20
DEF_LINE = re.compile(r"\s*(?:async\s+)?def\s")
TEST_FILE = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*$|_test\.[^/]+$|(^|/)test[^/]*\.(c|cc|cpp|cxx|cu)$")


@dataclass(frozen=True)
class FunctionDef:
    path: str       # relative to the repository root
    name: str       # the bare name, as calls spell it
    qualname: str   # Class.method / ns::Class::method
    start: int      # 1-based first line
    end: int        # 1-based last line

    @property
    def label(self) -> str:
        return f"{self.path}:{self.qualname}"


@dataclass
class Hotspot:
    fn: FunctionDef
    share: float                      # of the profile's samples (or instructions), 0..1
    callers: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)


@functools.cache
def _parser(language: str):
    import tree_sitter

    if language == "python":
        import tree_sitter_python as grammar
    elif language == "c":
        import tree_sitter_c as grammar
    else:
        import tree_sitter_cpp as grammar
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def _c_name(declarator) -> str | None:
    """The function's name from a C/C++ declarator (through pointers, references, scopes)."""
    node = declarator
    while node is not None and node.type != "function_declarator":
        node = node.child_by_field_name("declarator")
    if node is None:
        return None
    name = node.child_by_field_name("declarator")
    return name.text.decode(errors="replace") if name is not None else None


def parse_functions(path: str, text: str) -> list[FunctionDef]:
    """Every function definition in one source file, nested ones included."""
    language = LANGUAGE_OF.get(Path(path).suffix.lower())
    if language is None:
        return []
    tree = _parser(language).parse(text.encode())
    out: list[FunctionDef] = []

    def visit(node, scope: list[str]) -> None:
        kind = node.type
        if language == "python" and kind in ("function_definition", "class_definition"):
            name = node.child_by_field_name("name").text.decode(errors="replace")
            if kind == "function_definition":
                out.append(FunctionDef(path, name, ".".join([*scope, name]), node.start_point[0] + 1,
                                       node.end_point[0] + 1))
            for child in node.children:
                visit(child, [*scope, name])
            return
        if language != "python" and kind == "function_definition":
            full = _c_name(node.child_by_field_name("declarator"))
            if full:
                name = re.split(r"::", full)[-1].strip()
                qual = "::".join([*scope, full])
                out.append(FunctionDef(path, name, qual, node.start_point[0] + 1, node.end_point[0] + 1))
            return
        if language != "python" and kind in ("class_specifier", "struct_specifier", "namespace_definition"):
            name_node = node.child_by_field_name("name")
            inner = [*scope, name_node.text.decode(errors="replace")] if name_node is not None else scope
            for child in node.children:
                visit(child, inner)
            return
        for child in node.children:
            visit(child, scope)

    visit(tree.root_node, [])
    return out


class RepoIndex:
    """The source files of one tree and their functions, parsed on first use."""

    def __init__(self, root: Path):
        self.root = Path(root)
        files = git(self.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
        self.files = [f for f in files if f and Path(f).suffix.lower() in LANGUAGE_OF]
        self._texts: dict[str, str] = {}
        self._funcs: dict[str, list[FunctionDef]] = {}

    def text(self, rel: str) -> str:
        if rel not in self._texts:
            try:  # lstat'ed, regular files only, capped: the tree may be a candidate's
                self._texts[rel] = safefs.read_text(self.root, rel, MAX_FILE_BYTES + 1, errors="replace")
            except OSError:
                self._texts[rel] = ""
            if len(self._texts[rel]) > MAX_FILE_BYTES:
                self._texts[rel] = ""
        return self._texts[rel]

    def functions(self, rel: str) -> list[FunctionDef]:
        if rel not in self._funcs:
            self._funcs[rel] = parse_functions(rel, self.text(rel))
        return self._funcs[rel]

    def enclosing(self, rel: str, line: int) -> FunctionDef | None:
        """The innermost function whose body holds `line`."""
        hits = [f for f in self.functions(rel) if f.start <= line <= f.end] if rel in self.files else []
        return min(hits, key=lambda f: f.end - f.start, default=None)

    def by_name(self, name: str, path_hint: str | None = None) -> list[FunctionDef]:
        found = [f for rel in self.files if LANGUAGE_OF[Path(rel).suffix.lower()] != "python"
                 for f in self.functions(rel) if f.name == name or f.qualname == name]
        if path_hint:
            hinted = [f for f in found if path_hint.endswith(f.path)]
            found = hinted or found
        return found

    def find(self, rel: str, qualname: str) -> FunctionDef | None:
        """A function by file and (qualified or bare) name: how `--focus` and views locate it."""
        funcs = self.functions(rel) if rel in self.files or safefs.is_regular(self.root, rel) else []
        return next((f for f in funcs if f.qualname == qualname), None) or \
            next((f for f in funcs if f.name == qualname), None)

    def source(self, fn: FunctionDef) -> str:
        return "\n".join(self.text(fn.path).splitlines()[fn.start - 1: fn.end])

    def callers(self, fn: FunctionDef, limit: int = 5) -> list[str]:
        call = re.compile(rf"\b{re.escape(fn.name)}\s*(?:<[^;()]*>)?\s*\(")
        out: list[str] = []
        for rel in self.files:
            text = self.text(rel)
            if fn.name not in text or is_test_path(rel):  # tests are listed on their own
                continue
            for i, line in enumerate(text.splitlines(), 1):
                if rel == fn.path and i == fn.start:
                    continue
                if call.search(line) and not DEF_LINE.match(line):
                    outer = self.enclosing(rel, i)
                    if outer == fn:
                        continue
                    label = f"{rel}:{outer.qualname if outer else '<module>'} (line {i})"
                    if label not in out:
                        out.append(label)
                    if len(out) >= limit:
                        return out
        return out

    def tests_touching(self, fn: FunctionDef, limit: int = 5) -> list[str]:
        word = re.compile(rf"\b{re.escape(fn.name)}\b")
        out: list[str] = []
        for rel in self.files:
            if not TEST_FILE.search(rel) or fn.name not in self.text(rel):
                continue
            for i, line in enumerate(self.text(rel).splitlines(), 1):
                if word.search(line):
                    outer = self.enclosing(rel, i)
                    label = f"{rel}:{outer.qualname}" if outer else rel
                    if label not in out:
                        out.append(label)
                    if len(out) >= limit:
                        return out
        return out


def is_test_path(rel: str) -> bool:
    return bool(TEST_FILE.search(rel))


def rank(weights: dict[FunctionDef, float], total: float, index: RepoIndex, top: int = 3,
         min_share: float = 0.02) -> list[Hotspot]:
    """The hottest non-test functions with their callers and tests."""
    ranked = sorted(((f, w) for f, w in weights.items() if not is_test_path(f.path)), key=lambda x: -x[1])
    out = []
    for fn, w in ranked[:top]:
        share = w / total if total else 0.0
        if share < min_share and out:
            break
        out.append(Hotspot(fn, share, index.callers(fn), index.tests_touching(fn)))
    return out


def render(hotspots: list[Hotspot], index: RepoIndex, max_chars: int = 12000, max_lines: int = 150) -> str:
    """The hot functions as a model reads them: where, how hot, who calls them, which tests
    cover them, and their current text; cut to fit a context window."""
    parts = []
    budget = max_chars
    for h in hotspots:
        fn = index.find(h.fn.path, h.fn.qualname) or h.fn
        lines = index.source(fn).splitlines()
        if len(lines) > max_lines:
            lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
        head = f"### {fn.path} -- {fn.qualname} (lines {fn.start}-{fn.end})"
        if h.share:
            head += f", {h.share:.0%} of the bench's profile"
        meta = []
        if h.callers:
            meta.append("called from: " + "; ".join(h.callers))
        if h.tests:
            meta.append("tests touching it: " + "; ".join(h.tests))
        # begin/end markers, not code fences: the prompt already sits inside one
        block = "\n".join([head, *meta, f"----- begin {fn.path} -----", *lines, f"----- end {fn.path} -----"])
        if len(block) > budget and parts:
            break
        parts.append(block[:budget])
        budget -= len(block)
    return "\n\n".join(parts)
