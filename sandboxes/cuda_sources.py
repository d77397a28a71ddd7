"""The CUDA a solution carries, read out of its syntax tree, never by running it.

The strings passed to `load_inline(cuda_sources=...)`, to CuPy's `RawKernel`/`RawModule`,
and any other module-level string holding a `__global__` kernel (`.cu` text written out at
run time), each with the flags the solution passes (only optimisation and code-generation
choices are kept). cuda_compile.py builds what is found here.
"""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field

# Flags a solution may pass through: optimisation and code-generation choices only, never
# anything that names an output, an input file or a host tool.
_SAFE_FLAG = re.compile(r"^(-O[0-3s]?|-{1,2}use_fast_math|-D[A-Za-z_][\w=.,+-]*|-U\w+|--expt-[\w-]+|-lineinfo"
                        r"|-std=c\+\+\d\d|--extended-lambda|-maxrregcount=?\d+|--maxrregcount=?\d+"
                        r"|-Xptxas=?-?[\w=,.-]+|--ptxas-options=[\w=,.-]+|--ftz=\w+|--prec-div=\w+"
                        r"|--prec-sqrt=\w+|--fmad=\w+|-restrict|--restrict|-w|-G0)$")


@dataclass
class CudaUnit:
    """One translation unit as the solution's runtime would compile it."""

    origin: str  # where it came from, as the model should read it: "cuda_sources", "RawKernel(RELU_SRC)"
    kind: str  # load_inline | cupy | text
    source: str
    flags: tuple[str, ...] = ()
    torch_prelude: bool = False
    extension_name: str = ""
    kernel_names: tuple[str, ...] = ()  # CuPy looks these up by name in the built module
    ignored_flags: tuple[str, ...] = ()


@dataclass
class Extraction:
    units: list[CudaUnit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # source-level errors found without a compiler
    unresolved: list[str] = field(default_factory=list)  # CUDA built at run time: cannot be checked here


MAX_RESOLVED_CHARS = 4 << 20  # a longer CUDA source is not resolved (red team 10: 1000 x 1000 x 100 kB joins)
MAX_RESOLVE_STEPS = 200_000
# every string the resolver builds, together: 200k steps of 4 MiB concatenations would copy
# 800 GB, and 100,000 aliases of a 2 MiB kernel compared with every unit stalled kopt for
# most of an hour (red team 11)
MAX_BUILT_CHARS = 64 << 20


def _size(v) -> int:
    return len(v) if isinstance(v, str) else sum(_size(i) for i in v) if isinstance(v, list) else 0


class _Strings:
    """Resolves an expression to the string (or list of strings) it certainly is, else None.
    It runs in kopt's own process on a candidate's source, so its work and its results are
    bounded: each name is resolved once, at most MAX_RESOLVE_STEPS steps are taken and no
    value grows past MAX_RESOLVED_CHARS."""

    def __init__(self, tree: ast.Module):
        self.steps, self.memo, self.built, self.texts = 0, {}, 0, {}
        self.names: dict[str, ast.expr] = dict(self._assignments(tree.body))
        # names assigned inside functions or classes too, where a name is assigned only once
        inner: dict[str, list[ast.expr]] = {}
        for scope in ast.walk(tree):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for name, value in self._assignments(scope.body):
                    inner.setdefault(name, []).append(value)
        for name, values in inner.items():
            if name not in self.names and len(values) == 1:
                self.names[name] = values[0]

    @staticmethod
    def _assignments(body: list[ast.stmt]):
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                yield node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                yield node.target.id, node.value

    def value(self, node: ast.expr | None, depth: int = 0):
        self.steps += 1
        if node is None or depth > 20 or self.steps > MAX_RESOLVE_STEPS:
            return None
        if isinstance(node, ast.Name) and node.id in self.names:
            if node.id not in self.memo:
                self.memo[node.id] = None  # a name that refers to itself resolves to nothing
                self.memo[node.id] = self.value(self.names[node.id], depth + 1)
            return self.memo[node.id]
        v = self._value(node, depth)
        if v is not None and isinstance(node, (ast.BinOp, ast.JoinedStr, ast.Call)):
            self.built += _size(v)  # a new string (a constant or a list is the source's own)
        return None if _size(v) > MAX_RESOLVED_CHARS or self.built > MAX_BUILT_CHARS else v

    def _value(self, node: ast.expr, depth: int):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e, depth + 1) for e in node.elts]
            return None if any(i is None for i in items) or sum(map(_size, items)) > MAX_RESOLVED_CHARS else items
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
            if _size(a) + _size(b) > MAX_RESOLVED_CHARS:
                return None
            if isinstance(a, str) and isinstance(b, str) or isinstance(a, list) and isinstance(b, list):
                return a + b
            return None
        if isinstance(node, ast.JoinedStr):
            parts, total = [], 0
            for v in node.values:
                got = self.value(v.value if isinstance(v, ast.FormattedValue) else v, depth + 1)
                if got is None or isinstance(v, ast.FormattedValue) and v.format_spec is not None:
                    return None
                parts.append(str(got))
                total += len(parts[-1])
                if total > MAX_RESOLVED_CHARS:
                    return None
            return "".join(parts)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) == 1:
            inner = self.value(node.args[0], depth + 1)
            owner = self.value(node.func.value, depth + 1)
            if node.func.attr == "dedent" and isinstance(inner, str):
                return textwrap.dedent(inner)
            if node.func.attr == "join" and isinstance(owner, str) and isinstance(inner, list):
                if _size(inner) + len(owner) * len(inner) > MAX_RESOLVED_CHARS:
                    return None
                return owner.join(str(i) for i in inner)
        return None

    def text(self, node: ast.expr | None) -> str | None:
        """The value as one text: the same object for every name bound to the same value."""
        v = self.value(node)
        if isinstance(v, list) and all(isinstance(i, str) for i in v):
            if id(v) not in self.texts:
                self.built += _size(v)
                self.texts[id(v)] = (v, "\n".join(v) if self.built <= MAX_BUILT_CHARS else None)
            return self.texts[id(v)][1]
        return v if isinstance(v, str) else None


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _arg(node: ast.Call, pos: int, name: str) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return node.args[pos] if len(node.args) > pos else None


def _label(node: ast.expr | None, fallback: str) -> str:
    return node.id if isinstance(node, ast.Name) else fallback


def _split_flags(values) -> tuple[tuple[str, ...], tuple[str, ...]]:
    flags = [f for v in (values or []) for f in str(v).split() if f]
    return tuple(f for f in flags if _SAFE_FLAG.match(f)), tuple(f for f in flags if not _SAFE_FLAG.match(f))


def _defined(name: str, text: str) -> bool:
    """Whether C++ text defines function `name`: a body follows its parameter list (after
    qualifiers or a trailing return type, if any) -- the first `;`, `{` or `}` after `name(`
    is a `{`, and the last parenthesis before it closes. Linear in the text: the backtracking
    regex this was made it quadratic on `"f(" * 500_000` in kopt's own process (red team 12)."""
    stop, last_paren = -1, -1  # the next `;{}` at or after an occurrence, the last paren before it
    for m in re.finditer(rf"\b{re.escape(name)}\s*\(", text):
        start = m.end()
        if stop < start:  # occurrences come in order: each stretch up to a stop is read once
            found = re.compile(r"[;{}]").search(text, start)
            if found is None:
                return False  # no body anywhere after this or any later occurrence
            stop = found.start()
            last_paren = max(text.rfind("(", start, stop), text.rfind(")", start, stop))
        if text[stop] == "{" and last_paren >= start and text[last_paren] == ")":
            return True
    return False


def extract_cuda(source: str) -> Extraction:
    """Every CUDA translation unit the solution would compile, read statically."""
    out = Extraction()
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        out.problems.append(f"syntax error line {e.lineno}: {e.msg}")
        return out
    strings = _Strings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name == "load_inline":
            _from_load_inline(node, strings, out)
        elif name in ("RawKernel", "RawModule"):
            _from_cupy(node, name, strings, out)
    # any other module-level string holding a kernel (`.cu` text written out and built at run
    # time) that is not already part of a unit found above
    # (each text once, however many names hold it; the comparisons bounded like the resolver)
    seen: set[int] = set()
    compared = 0
    for var in strings.names:
        text = strings.text(ast.Name(id=var, ctx=ast.Load()))  # through the memo: one object per value
        if not text or id(text) in seen:
            continue
        seen.add(id(text))
        if "__global__" not in text:
            continue
        compared += len(text) * (1 + len(out.units))
        if compared > MAX_BUILT_CHARS:
            out.unresolved.append(f"{var}: more CUDA text in module-level strings than kopt reads statically")
            break
        if not any(text in u.source for u in out.units):
            out.units.append(CudaUnit(origin=var, kind="text", source=text, torch_prelude=False))
    return out


def _from_load_inline(node: ast.Call, strings: _Strings, out: Extraction) -> None:
    cuda_node, cpp_node = _arg(node, 2, "cuda_sources"), _arg(node, 1, "cpp_sources")
    if cuda_node is None:
        return
    cuda = strings.text(cuda_node)
    where = f"line {node.lineno}"
    if cuda is None:
        out.unresolved.append(f"load_inline at {where}: cuda_sources is built at run time")
        return
    cpp = strings.text(cpp_node) or ""
    functions = strings.value(_arg(node, 3, "functions")) or []
    if isinstance(functions, str):
        functions = [functions]
    if isinstance(functions, dict):
        functions = list(functions)
    for fn in functions:
        if isinstance(fn, str) and not _defined(fn, cuda + "\n" + cpp):
            out.problems.append(f"load_inline at {where}: functions=[{fn!r}] but neither cpp_sources nor "
                                f"cuda_sources defines {fn}() (the binding would not link)")
    flags, ignored = _split_flags(strings.value(_arg(node, 99, "extra_cuda_cflags")))
    name = strings.value(_arg(node, 0, "name"))
    no_headers = strings.value(_arg(node, 99, "no_implicit_headers")) is True
    out.units.append(CudaUnit(origin=f"cuda_sources of load_inline({name})" if name else "cuda_sources",
                              kind="load_inline", source=cuda, flags=flags, torch_prelude=not no_headers,
                              extension_name=str(name or "kopt_ext"), ignored_flags=ignored))


def _from_cupy(node: ast.Call, kind: str, strings: _Strings, out: Extraction) -> None:
    code_node = _arg(node, 0, "code")
    code = strings.text(code_node)
    where = f"{kind}({_label(code_node, 'line ' + str(node.lineno))})"
    if code is None:
        out.unresolved.append(f"{kind} at line {node.lineno}: its code is built at run time")
        return
    names: tuple[str, ...] = ()
    if kind == "RawKernel":
        kname = strings.value(_arg(node, 1, "name"))
        names = (kname,) if isinstance(kname, str) else ()
    opts = strings.value(_arg(node, 2 if kind == "RawKernel" else 1, "options"))
    flags, ignored = _split_flags([opts] if isinstance(opts, str) else opts)
    if any(u.source == code and u.kind == "cupy" for u in out.units):
        unit = next(u for u in out.units if u.source == code and u.kind == "cupy")
        unit.kernel_names = tuple(dict.fromkeys(unit.kernel_names + names))
        return
    out.units.append(CudaUnit(origin=where, kind="cupy", source=code, flags=flags, kernel_names=names,
                              ignored_flags=ignored))
