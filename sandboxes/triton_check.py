"""Mistakes in Triton kernels that can be found from the source alone, before any GPU.

Triton compiles a `@triton.jit` function from its Python syntax tree, so a misspelt
`tl.` function, Python syntax the compiler does not accept, or a launch whose arguments do
not fit the kernel fail only at the first launch -- on a GPU machine, after a queue wait.
These checks read the tree (the solution never runs here) and say what to fix in one line.
"""
from __future__ import annotations

import ast
import importlib.util

# Syntax Triton's code generator rejects inside a kernel.
UNSUPPORTED = {ast.Try: "try/except", ast.Lambda: "lambda", ast.Yield: "yield", ast.YieldFrom: "yield from",
               ast.Await: "await", ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
               ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
               ast.ClassDef: "a class definition", ast.FunctionDef: "a nested function",
               ast.Global: "global", ast.Nonlocal: "nonlocal", ast.AsyncFor: "async for",
               ast.AsyncWith: "async with", ast.Delete: "del"}
if hasattr(ast, "TryStar"):
    UNSUPPORTED[ast.TryStar] = "try/except*"
# Keyword arguments a launch takes besides the kernel's own parameters.
LAUNCH_OPTIONS = {"num_warps", "num_stages", "num_ctas", "maxnreg", "enable_fp_fusion", "warmup", "grid",
                  "launch_cooperative_grid", "enable_warp_specialization", "debug", "stream", "device"}


def _decorator_names(fn: ast.FunctionDef) -> list[str]:
    out = []
    for d in fn.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        out.append(d.attr if isinstance(d, ast.Attribute) else d.id if isinstance(d, ast.Name) else "")
    return out


def _language_aliases(tree: ast.Module) -> set[str]:
    """Names bound to `triton.language` (usually `tl`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "triton.language" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "triton":
            names |= {a.asname or a.name for a in node.names if a.name == "language"}
    return names


def _language_module():
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        import triton.language as tl
    except Exception:  # noqa: BLE001 - a broken triton install: skip the name check
        return None
    return tl


def check_triton(source: str) -> list[str]:
    """One line per problem found; an empty list when the kernels look compilable."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # reported as a syntax error by the evaluator
    kernels = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and "jit" in _decorator_names(n)}
    problems: list[str] = []
    aliases = _language_aliases(tree)
    tl = _language_module()
    for name, fn in kernels.items():
        problems += _body_problems(name, fn, aliases, tl)
    problems += _launch_problems(tree, kernels)
    return problems


def _body_problems(name: str, fn: ast.FunctionDef, aliases: set[str], tl) -> list[str]:
    out = []
    for stmt in fn.body:
        for node in ast.walk(stmt):
            what = UNSUPPORTED.get(type(node))
            if what:
                out.append(f"triton kernel {name}, line {node.lineno}: {what} is not supported inside a "
                           f"@triton.jit function")
            if tl is not None and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and not hasattr(tl, node.attr):
                out.append(f"triton kernel {name}, line {node.lineno}: {node.value.id}.{node.attr} does not exist "
                           f"in triton.language {getattr(__import__('triton'), '__version__', '')}".rstrip())
    return out


def _launch_problems(tree: ast.Module, kernels: dict[str, ast.FunctionDef]) -> list[str]:
    """`kernel[grid](...)` calls whose arguments cannot bind to the kernel's parameters."""
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in kernels):
            continue
        fn = kernels[node.func.value.id]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue  # *args / **kwargs: cannot tell statically
        params = [a.arg for a in fn.args.args]
        where = f"launch of {fn.name} at line {node.lineno}"
        if len(node.args) > len(params):
            out.append(f"{where}: {len(node.args)} positional arguments, but the kernel takes {len(params)}")
            continue
        for kw in node.keywords:
            if kw.arg in params[:len(node.args)]:
                out.append(f"{where}: argument {kw.arg!r} given both by position and by name")
            elif kw.arg not in params and kw.arg not in LAUNCH_OPTIONS:
                out.append(f"{where}: unknown argument {kw.arg!r} (the kernel's parameters: {', '.join(params)})")
        tuned = {"autotune", "heuristics"} & set(_decorator_names(fn))
        given = set(params[:len(node.args)]) | {k.arg for k in node.keywords}
        n_defaults = len(fn.args.defaults)
        required = params[:len(params) - n_defaults] if n_defaults else params
        missing = [p for p in required if p not in given]
        if missing and not tuned:
            out.append(f"{where}: missing argument(s) {', '.join(missing)}")
    return out
