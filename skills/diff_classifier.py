"""Names the optimisation a slow -> fast pair shows, from the constructs that changed.

Both versions are parsed with tree-sitter (C, C++ -- CUDA parses as C++ well enough -- and
Python; C/C++ source inside a Python file's long strings is parsed too, so a KernelBench
solution's embedded kernel counts). Each version is summarised as a `Profile` of
countable constructs (loops and their nesting order, allocations and I/O inside loops,
container types, calls, pragmas, flags, PyTorch ops), and `classify` compares the two
profiles with one small rule per kind of change. It never reads the numbers: what a pair
gained is measured elsewhere.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from kopt.agent.errors import EnvironmentMissing

LANGUAGES = {".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp",
             ".cu": "cpp", ".cuh": "cpp", ".py": "python"}
INPUT = {"cin", "scanf", "getchar", "getline", "fgets", "input", "readline", "fscanf", "gets"}
FAST_INPUT = {"sync_with_stdio", "tie", "fread", "getchar_unlocked", "read", "buffer", "mmap", "getc_unlocked",
              "readlines"}
OUTPUT = {"cout", "printf", "puts", "putchar", "print", "endl", "fflush", "flush", "write", "fprintf"}
CONTAINERS = {"map", "unordered_map", "set", "unordered_set", "multiset", "multimap", "list", "vector", "deque",
              "priority_queue", "array", "string", "dict", "Counter", "defaultdict", "frozenset", "bitset"}
ALLOC_CALLS = {"malloc", "calloc", "realloc", "make_unique", "make_shared", "list", "dict", "set", "zeros", "empty",
               "copy", "deepcopy"}
ALGORITHMS = {"sort", "stable_sort", "lower_bound", "upper_bound", "binary_search", "partial_sum", "accumulate",
              "nth_element", "bisect_left", "bisect_right", "bisect", "lru_cache", "cache", "heappush", "heappop",
              "sorted", "cumsum", "partition_point", "memo"}
EXPENSIVE = {"pow", "sqrt", "sqrtf", "powf", "fmod", "exp", "log"}
KERNEL_MARKERS = ("load_inline", "load_cpp", "triton.jit", "__global__", "cpp_extension", "ctypes.CDLL")
TORCH_FUSED = {"addmm", "baddbmm", "addcmul", "addcdiv", "linear", "silu", "fused", "scaled_dot_product_attention",
               "compile"}


# most telling first: a pair that changed its algorithm and also reserved a vector is an algorithm change
PRIORITY = ["algorithm", "data-structure", "loop-order", "cache-blocking", "fusion", "loop-fusion", "fast-input",
            "buffered-output", "hoist-allocation", "openmp", "simd", "compiler-flags", "avoid-copy", "in-place",
            "reserve", "strength-reduction", "string-building"]


@dataclass
class Profile:
    loops: int = 0
    depth: int = 0
    paths: set = field(default_factory=set)  # loop variables of each innermost nest, outer -> inner
    strided_loops: int = 0  # `i += T`: blocked loops
    alloc_in_loop: int = 0
    names: Counter = field(default_factory=Counter)  # identifiers anywhere
    names_in_loop: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    containers: Counter = field(default_factory=Counter)
    pragmas: Counter = field(default_factory=Counter)
    flags: set = field(default_factory=set)
    torch_ops: Counter = field(default_factory=Counter)
    kernels: int = 0
    ref_params: int = 0
    value_params: int = 0
    divisions_in_loop: int = 0
    string_concat_in_loop: int = 0

    def merge(self, other: Profile) -> None:
        for name in ("loops", "strided_loops", "alloc_in_loop", "kernels", "ref_params", "value_params",
                     "divisions_in_loop", "string_concat_in_loop"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.depth = max(self.depth, other.depth)
        self.paths |= other.paths
        self.flags |= other.flags
        for name in ("names", "names_in_loop", "calls", "containers", "pragmas", "torch_ops"):
            getattr(self, name).update(getattr(other, name))


@dataclass
class Change:
    kind: str
    detail: str


@lru_cache(maxsize=4)
def _parser(language: str):
    try:
        from tree_sitter import Language, Parser

        if language == "python":
            import tree_sitter_python as grammar
        elif language == "c":
            import tree_sitter_c as grammar
        else:
            import tree_sitter_cpp as grammar
    except ImportError:
        raise EnvironmentMissing("the diff classifier needs tree-sitter: pip install 'kopt[skills]'") from None
    return Parser(Language(grammar.language()))


C_STRINGS = {"string_literal": '"..."', "raw_string_literal": 'R"(...)"', "concatenated_string": '"..."'}


def strip_comments_and_strings(source: str, language: str) -> str:
    """SOURCE with every comment removed and string literals emptied ("..."), for text that
    other prompts will show (a mined card's sketch): a candidate's comments and strings are the
    model's words, possibly instructions aimed at the next model. A Python string that holds
    multi-line code (an embedded kernel) keeps its code, itself stripped as C++."""
    data = source.encode()
    edits: list[tuple[int, int, bytes]] = []

    def walk(node) -> None:
        kind = node.type
        if kind == "comment":
            edits.append((node.start_byte, node.end_byte, b""))
            return
        if language != "python" and kind in C_STRINGS:
            edits.append((node.start_byte, node.end_byte, C_STRINGS[kind].encode()))
            return
        if language == "python" and kind == "string":
            text = data[node.start_byte:node.end_byte].decode(errors="replace")
            quote = text[:3] if text.lstrip("rbuRBUfF")[:3] in ('"""', "'''") else None
            body = text.lstrip("rbuRBUfF")
            if quote and "\n" in body and re.search(r"[;{}]", body):
                q = body[:3]
                inner = strip_comments_and_strings(body[3:-3], "cpp").replace(q, "")
                edits.append((node.start_byte, node.end_byte, (q + inner + q).encode()))
            else:
                edits.append((node.start_byte, node.end_byte, b'"..."'))
            return
        for child in node.children:
            walk(child)

    walk(_parser(language).parse(data).root_node)
    for start, end, text in sorted(edits, reverse=True):
        data = data[:start] + text + data[end:]
    return "\n".join(ln.rstrip() for ln in data.decode(errors="replace").splitlines() if ln.strip())


def language_of(suffix: str) -> str | None:
    return LANGUAGES.get(suffix.lower())


# comprehensions are loops too: `sum(f(x) for x in xs)` has the same depth as the for-loop it replaces
LOOPS = {"for_statement", "while_statement", "do_statement", "for_range_loop", "list_comprehension",
         "generator_expression", "set_comprehension", "dictionary_comprehension"}
FLAG = re.compile(r"(?<![\w-])-(O[0-3sfast]+|march=\w+|mtune=\w+|ffast-math|fopenmp|funroll-loops|mavx\w*|"
                  r"fno-math-errno|flto)\b")


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _last_name(node) -> str:
    """`std::ios::sync_with_stdio` -> sync_with_stdio, `torch.nn.functional.relu` -> relu."""
    return re.split(r"::|\.|->", _text(node))[-1].strip()


def _loop_var(node) -> str:
    for name in ("initializer", "left", "declarator"):
        child = node.child_by_field_name(name)
        if child is not None:
            ids = [c for c in _walk(child) if c.type == "identifier"]
            if ids:
                return _text(ids[0] if name != "initializer" else ids[0])
    cond = node.child_by_field_name("condition")
    if cond is not None:
        ids = [c for c in _walk(cond) if c.type == "identifier"]
        if ids:
            return _text(ids[0])
    return "?"


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def profile(source: str, language: str) -> Profile:
    """Count the constructs of one version (see `Profile`)."""
    tree = _parser(language).parse(source.encode())
    p = Profile()
    _visit(tree.root_node, p, (), language)
    if language == "python":
        p.kernels += sum(source.count(m) for m in KERNEL_MARKERS)
        for node in _walk(tree.root_node):  # C/C++ kernels embedded in strings
            if node.type == "string" and len(node.text) > 80 and re.search(r"[;{}]", _text(node)):
                inner = _text(node).strip("rbuRBU").strip("\"'")
                p.merge(profile(inner, "cpp"))
    return p


def _visit(node, p: Profile, loop_path: tuple, language: str) -> None:
    t = node.type
    in_loop = bool(loop_path)
    if t in LOOPS:
        var = _loop_var(node)
        path = (*loop_path, var)
        p.loops += 1
        p.depth = max(p.depth, len(path))
        update = node.child_by_field_name("update")
        if update is not None and re.search(r"\+=\s*(?!1\b)\w+", _text(update)):
            p.strided_loops += 1
        if not any(c.type in LOOPS for c in _walk(node) if c is not node):
            p.paths.add(path)
        for c in node.children:
            _visit(c, p, path, language)
        return
    if t in ("identifier", "type_identifier", "field_identifier", "namespace_identifier"):
        name = _text(node)
        p.names[name] += 1
        if in_loop:
            p.names_in_loop[name] += 1
    elif t in ("call_expression", "call"):
        fn = node.child_by_field_name("function")
        if fn is not None:
            name = _last_name(fn)
            p.calls[name] += 1
            full = _text(fn)
            if re.match(r"(torch|F|nn\.functional|torch\.nn\.functional)\.", full) or re.match(r"\w+\.\w+_$", full):
                p.torch_ops[name] += 1
            elif language == "python" and "." in full and full.split(".")[-1] in ("contiguous", "clone"):
                p.torch_ops[name] += 1
            if in_loop and name in ALLOC_CALLS:
                p.alloc_in_loop += 1
    elif t == "new_expression" and in_loop:
        p.alloc_in_loop += 1
    elif t == "template_type":
        name_node = node.child_by_field_name("name")
        if name_node is not None and _text(name_node) in CONTAINERS:
            p.containers[_text(name_node)] += 1
    elif t == "declaration" and in_loop and re.match(r"\s*(const\s+)?(std::)?(vector|string|map|set|unordered_\w+|"
                                                    r"deque|list)\b[^&*]*\w+\s*[({=;]", _text(node)):
        p.alloc_in_loop += 1
    elif t == "parameter_declaration":
        text = _text(node)
        if re.search(r"(vector|string|map|set)\b", text):
            if "&" in text:
                p.ref_params += 1
            elif "*" not in text:
                p.value_params += 1
    elif t == "preproc_call" and _text(node).startswith("#pragma"):
        arg = node.child_by_field_name("argument")
        words = _text(arg).split() if arg is not None else []
        key = " ".join(w.split("(")[0] for w in words[:2])
        p.pragmas[key] += 1
        p.flags |= {"-" + m.group(1) for m in re.finditer(r"\"(O[0-3]|fast|unroll-loops|avx\w*|arch=\w+)\"",
                                                            _text(node))}
    elif t in ("string", "string_literal", "raw_string_literal"):
        p.flags |= {"-" + m.group(1) for m in FLAG.finditer(_text(node))}
    elif t in ("binary_expression", "binary_operator", "augmented_assignment", "assignment_expression") and in_loop:
        op = node.child_by_field_name("operator")
        op_text = _text(op) if op is not None else ""
        if op_text in ("/", "%", "/=", "%="):
            p.divisions_in_loop += 1
        if language == "python" and op_text == "+=" and re.search(r"str\(|f[\"']|[\"']", _text(node)):
            p.string_concat_in_loop += 1
    elif t == "decorated_definition" and "triton.jit" in _text(node)[:200]:
        p.kernels += 1
    if language == "python" and t == "keyword_argument" and re.match(r"inplace\s*=\s*True", _text(node)):
        p.torch_ops["inplace"] += 1
    if t == "comparison_operator" and in_loop and re.search(r"\bin\b", _text(node)):
        p.names_in_loop["__membership__"] += 1
    for c in node.children:
        _visit(c, p, loop_path, language)


def _sum(counter: Counter, names) -> int:
    return sum(counter.get(n, 0) for n in names)


def _loop_order(slow: Profile, fast: Profile) -> str | None:
    for a in slow.paths:
        if len(a) < 2 or a in fast.paths:
            continue
        for b in fast.paths:
            if b != a and sorted(b) == sorted(a) and len(set(a)) == len(a):
                return f"loop nest ({', '.join(a)}) became ({', '.join(b)})"
    return None


def classify(slow_src: str, fast_src: str, language: str) -> list[Change]:
    """The kinds of change from `slow_src` to `fast_src`, most specific first."""
    s, f = profile(slow_src, language), profile(fast_src, language)
    out: list[Change] = []

    def add(kind: str, detail: str) -> None:
        out.append(Change(kind, detail))

    # I/O
    new_fast_in = sorted(n for n in FAST_INPUT if f.names[n] > s.names[n])
    if new_fast_in and (_sum(s.names, INPUT) > 0):
        old = ", ".join(sorted(n for n in INPUT if s.names[n]))
        add("fast-input", f"input through {', '.join(new_fast_in)} instead of {old}")
    elif _sum(s.names, INPUT) and _sum(f.names, INPUT) < _sum(s.names, INPUT) and _sum(f.names_in_loop, INPUT) \
            < _sum(s.names_in_loop, INPUT):
        add("fast-input", "fewer per-token input calls inside loops")
    if (s.names["endl"] > f.names["endl"]) or (_sum(f.names_in_loop, OUTPUT) < _sum(s.names_in_loop, OUTPUT)
                                               and _sum(s.names_in_loop, OUTPUT) > 0):
        add("buffered-output", "output no longer flushed / written per item inside a loop")
    # loops and memory
    if (order := _loop_order(s, f)):
        add("loop-order", order)
    if f.strided_loops > s.strided_loops and f.depth > s.depth:
        add("cache-blocking", f"loops blocked into tiles (nest depth {s.depth} -> {f.depth})")
    if s.alloc_in_loop > f.alloc_in_loop:
        add("hoist-allocation", f"allocations inside loops {s.alloc_in_loop} -> {f.alloc_in_loop}")
    if f.calls["reserve"] > s.calls["reserve"]:
        add("reserve", "capacity reserved before filling a container")
    # data structures
    swapped = [(a, b) for a, b in (("map", "unordered_map"), ("set", "unordered_set"), ("list", "vector"),
                                   ("map", "vector"), ("multiset", "priority_queue"))
               if s.containers[a] > f.containers[a] and f.containers[b] > s.containers[b]]
    py_sets = language == "python" and (f.calls["set"] + f.calls["add"] + f.calls["Counter"] + f.calls["dict"]
                                        > s.calls["set"] + s.calls["add"] + s.calls["Counter"] + s.calls["dict"])
    if swapped:
        add("data-structure", ", ".join(f"{a} -> {b}" for a, b in swapped))
    elif py_sets and (s.names_in_loop["__membership__"] or s.calls["index"] > f.calls["index"]
                      or s.calls["count"] > f.calls["count"]):
        add("data-structure", "list scans replaced by a set/dict lookup")
    # algorithms
    new_algos = sorted(n for n in ALGORITHMS if f.calls[n] + f.names[n] > s.calls[n] + s.names[n])
    if f.depth < s.depth or (new_algos and f.loops <= s.loops):
        how = f"loop nest depth {s.depth} -> {f.depth}" if f.depth < s.depth else "same depth"
        add("algorithm", how + (f"; uses {', '.join(new_algos)}" if new_algos else ""))
    # parallelism, vectorisation, flags
    if f.pragmas["omp parallel"] > s.pragmas["omp parallel"]:
        add("openmp", "OpenMP parallel loop added")
    if (f.pragmas["omp simd"] + f.pragmas["GCC ivdep"] + f.names["__restrict"] + f.names["__restrict__"]
            > s.pragmas["omp simd"] + s.pragmas["GCC ivdep"] + s.names["__restrict"] + s.names["__restrict__"]):
        add("simd", "SIMD pragma or __restrict added")
    if (f.flags - s.flags) or f.pragmas["GCC optimize"] > s.pragmas["GCC optimize"] \
            or f.pragmas["GCC target"] > s.pragmas["GCC target"]:
        add("compiler-flags", "flags added: " + (", ".join(sorted(f.flags - s.flags)) or "#pragma GCC"))
    # fusion
    fewer_ops = sum(s.torch_ops.values()) - sum(f.torch_ops.values())
    if language == "python" and (f.kernels > s.kernels and sum(s.torch_ops.values()) > 1
                                 or fewer_ops >= 2 or _sum(f.calls, TORCH_FUSED) > _sum(s.calls, TORCH_FUSED)):
        add("fusion", f"{sum(s.torch_ops.values())} PyTorch ops -> {sum(f.torch_ops.values())}"
                      + (" plus a custom kernel" if f.kernels > s.kernels else ""))
    elif language != "python" and f.loops < s.loops and f.depth == s.depth and not new_algos:
        add("loop-fusion", f"{s.loops} loops -> {f.loops} at the same nesting depth")
    # copies and in-place
    if s.torch_ops["contiguous"] + s.torch_ops["clone"] > f.torch_ops["contiguous"] + f.torch_ops["clone"]:
        add("avoid-copy", ".contiguous()/.clone() copies removed")
    elif f.ref_params > s.ref_params and f.value_params < s.value_params:
        add("avoid-copy", "containers passed by reference instead of by value")
    inplace = lambda p: sum(v for k, v in p.torch_ops.items() if k.endswith("_") or k == "inplace")
    if inplace(f) > inplace(s):
        add("in-place", "in-place ops on temporaries")
    if _sum(s.calls, EXPENSIVE) > _sum(f.calls, EXPENSIVE) or s.divisions_in_loop > f.divisions_in_loop:
        add("strength-reduction", "fewer divisions / pow / sqrt in loops")
    if s.string_concat_in_loop > f.string_concat_in_loop:
        add("string-building", "string concatenation in a loop replaced")
    return sorted(out, key=lambda c: PRIORITY.index(c.kind))
