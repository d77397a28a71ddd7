"""Reuse of the reference, told by what the code *is* rather than by its name.

A solution may paste the reference's source into its own file (an honest copy: same
code, compiled from the solution's text). It may not run the task's own `Model` code
loaded from elsewhere -- a readable copy of the task imported or exec'd under another
name, then subclassed, delegated to or held as a submodule. So: the code objects reachable
from a built `ModelNew` (its classes' MRO, its submodules' classes, objects it holds) are
fingerprinted by content (bytecode, names, constants; not file or line), and any that
matches code of a class in the task file without being compiled from the solution's own
source is reuse. Every function alive in the candidate's process that was not there before
the solution loaded (kopt holds that "before" set) is fingerprinted too, so the task's Model
kept in a module global or a closure is found as well. Trivial code (a bare `super().__init__()`)
is never counted.
"""
from __future__ import annotations

import gc
import hashlib
import types

_TRIVIAL_NAMES = {"super", "__init__", "__class__", "self"}


def fingerprint(code: types.CodeType) -> str:
    """Content hash of a code object and the code nested in it (no file names, no lines)."""
    nested = [fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    text = "\0".join([code.co_name, code.co_code.hex(), ",".join(code.co_names), ",".join(code.co_varnames),
                      "|".join(nested)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _nested(code: types.CodeType):
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield c
            yield from _nested(c)


def _trivial(code: types.CodeType) -> bool:
    return not any(isinstance(c, types.CodeType) for c in code.co_consts) and \
        set(code.co_names) <= _TRIVIAL_NAMES | {code.co_name} and len(code.co_code) < 64


def source_fingerprints(source: str, filename: str = "<solution>") -> set[str]:
    """Every code object a source compiles to (how an honest pasted copy is recognised)."""
    try:
        top = compile(source, filename, "exec")
    except (SyntaxError, ValueError):
        return set()
    return {fingerprint(c) for c in _nested(top)}


def task_class_fingerprints(source: str) -> set[str]:
    """The non-trivial functions defined inside the classes of a task file."""
    try:
        top = compile(source, "<task>", "exec")
    except (SyntaxError, ValueError):
        return set()
    out = set()
    for body in (c for c in top.co_consts if isinstance(c, types.CodeType)):
        for fn in _nested(body):
            if body.co_name != "<lambda>" and not _trivial(fn):
                out.add(fingerprint(fn))
    return out


def _functions(obj):
    """Functions held directly by a class dict or an instance dict."""
    for v in list(vars(obj).values()) if hasattr(obj, "__dict__") else []:
        v = getattr(v, "__func__", v)  # bound methods, staticmethod, classmethod
        if isinstance(v, property):
            yield from (f for f in (v.fget, v.fset) if f is not None)
        elif isinstance(v, types.FunctionType):
            yield v
        elif hasattr(v, "func") and isinstance(v.func, types.FunctionType):  # functools.partial
            yield v.func


def model_fingerprints(model) -> list[str]:
    """Fingerprints of the code a built model can run: every class in the MRO of the model,
    of each submodule and of each object held in their instance dicts, and functions
    stored on the instances. Runs in the candidate's worker right after construction."""
    seen_cls: set = set()
    found: set[str] = set()
    holders = list(model.modules()) if hasattr(model, "modules") else [model]
    for m in holders:
        held = [v for v in vars(m).values() if not isinstance(v, (dict, list, tuple, str, int, float))] \
            if hasattr(m, "__dict__") else []
        for obj in [m, *held]:
            for cls in type(obj).__mro__:
                if cls in seen_cls:
                    continue
                seen_cls.add(cls)
                found.update(fingerprint(f.__code__) for f in _functions(cls))
            if obj is m:
                found.update(fingerprint(f.__code__) for f in _functions(obj))
    return sorted(found)


def live_code() -> set:
    """The code objects of every function alive now."""
    return {f.__code__ for f in gc.get_objects() if type(f) is types.FunctionType}


def task_code_names(source: str) -> list[str]:
    """The names of the task's non-trivial class functions: a fingerprint holds the code's
    name, so live code under any other name can never match one (the scans hash only these)."""
    try:
        top = compile(source, "<task>", "exec")
    except (SyntaxError, ValueError):
        return []
    return sorted({fn.co_name for body in top.co_consts if isinstance(body, types.CodeType)
                   for fn in _nested(body) if body.co_name != "<lambda>" and not _trivial(fn)})


def live_fingerprints(names) -> list[str]:
    """Fingerprints of every live function whose code is named one of `names`. kopt asks for
    them once before the solution loads (kept in kopt's process) and again after each stage,
    and subtracts there: task code loaded from elsewhere and held in a module global, a closure
    or a container is found even outside ModelNew's object graph, and no "before" set lives in
    the candidate's process for it to edit (red team 6)."""
    wanted = {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
    return sorted({fingerprint(c) for c in live_code() if c.co_name in wanted})


def reused(task_source: str, solution_source: str, runtime: list) -> int:
    """How many of the model's code objects are the task's own and not the solution's."""
    foreign = task_class_fingerprints(task_source) - source_fingerprints(solution_source)
    return len(foreign & {h for h in runtime if isinstance(h, str)})
