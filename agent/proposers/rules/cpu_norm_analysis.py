"""Finds normalisations in a KernelBench task's `Model.forward` that one fused C++ kernel
per row (or per (sample, group)) can replace, together with the elementwise statements
around them.

Recognised, as `x = <norm>(x)` statements:
- `self.<attr>(x)` where `__init__` assigns `self.<attr> = nn.GroupNorm(...)`,
  `nn.InstanceNorm{1,2,3}d(...)`, `nn.LayerNorm(...)`, `nn.Softmax(dim=...)` or
  `nn.LogSoftmax(dim=...)` once, at its top level;
- `torch.softmax / F.softmax / x.softmax` and the `log_softmax` forms, with an explicit dim.

The analysis only knows the *kind* of each norm: its sizes, eps, affine parameters and the
softmax dim are read from the module (or the call) at run time by the generated code, which
falls back to the original statements whenever a call is outside what the kernel handles.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from kopt.agent.proposers.rules.forward_analysis import Operand, compile_statement, forward_of, produces_fresh

MODULE_KINDS = {"GroupNorm": "group_norm", "InstanceNorm1d": "instance_norm", "InstanceNorm2d": "instance_norm",
                "InstanceNorm3d": "instance_norm", "LayerNorm": "layer_norm", "Softmax": "softmax",
                "LogSoftmax": "log_softmax"}
FUNCTIONAL = {"softmax": "softmax", "log_softmax": "log_softmax"}
NAMESPACES = ("torch", "F", "torch.nn.functional", "nn.functional", "functional", "torch.special")
# elementwise ops cheap enough to recompute in every pass of the norm kernel (arithmetic is
# always cheap); a run before a norm is pulled into the kernel only while its ops are here
CHEAP_OPS = {"relu", "relu6", "leaky_relu", "hardtanh", "clamp", "abs", "neg", "square", "pow",
             "hardswish", "hardsigmoid"}


@dataclass
class NormRun:
    """Statements [start, stop) of forward: cheap elementwise ones, the norm at `norm`, and
    the elementwise ones after it, all updating `var`."""

    var: str
    start: int
    norm: int
    stop: int
    kind: str  # group_norm | instance_norm | layer_norm | softmax | log_softmax
    module: str | None  # python expression of the norm module, e.g. "self.gn"
    dim: str | None  # python expression of a functional softmax's dim
    pre: list[str] = field(default_factory=list)  # C++ statements updating `v`
    post: list[str] = field(default_factory=list)
    operands: list[Operand] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # for describing the run
    fresh: bool = False


def norm_modules(cls: ast.ClassDef) -> dict[str, str]:
    """`self.<attr>` -> norm kind, for attributes `__init__` builds once from a known class."""
    assigned: dict[str, int] = {}
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for sub in ast.walk(t):
                if _self_attr(sub):
                    assigned[sub.attr] = assigned.get(sub.attr, 0) + 1
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    found: dict[str, str] = {}
    for stmt in init.body if init else []:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and _self_attr(stmt.targets[0])
                and isinstance(stmt.value, ast.Call)):
            continue
        func = stmt.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        prefix = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        attr = stmt.targets[0].attr
        if name in MODULE_KINDS and prefix in ("", "nn", "torch.nn") and assigned.get(attr) == 1:
            found[attr] = MODULE_KINDS[name]
    return found


def _self_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def norm_call(stmt: ast.stmt, modules: dict[str, str]) -> tuple[str, str, str | None, str | None] | None:
    """(var, kind, module expression, dim expression) if `stmt` is `var = <norm>(var)`."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Call)):
        return None
    var, call = stmt.targets[0].id, stmt.value
    func, args = call.func, list(call.args)
    kwargs = {k.arg: k.value for k in call.keywords}
    if None in kwargs:  # **kwargs
        return None
    if _self_attr(func) and func.attr in modules:
        if len(args) == 1 and not kwargs and _is_name(args[0], var):
            return var, modules[func.attr], ast.unparse(func), None
        return None
    if not isinstance(func, ast.Attribute) or func.attr not in FUNCTIONAL:
        return None
    if _is_name(func.value, var):  # method form: x.softmax(-1)
        args = [func.value, *args]
    elif ast.unparse(func.value) not in NAMESPACES:
        return None
    if set(kwargs) - {"dim"} or not args or not _is_name(args[0], var) or len(args) > 2:
        return None
    dim = kwargs.get("dim", args[1] if len(args) == 2 else None)
    if dim is None or any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(dim)):
        return None  # implicit dim (deprecated, shape dependent) or a dim computed from x
    return var, FUNCTIONAL[func.attr], None, ast.unparse(dim)


def _is_name(node: ast.AST, var: str) -> bool:
    return isinstance(node, ast.Name) and node.id == var


def find_norm_runs(cls: ast.ClassDef) -> list[NormRun]:
    """Every recognised norm in forward, with the elementwise statements it absorbs."""
    body = forward_of(cls).body
    modules = norm_modules(cls)
    runs: list[NormRun] = []
    free_from = 0  # statements before this index belong to an earlier run
    for n, stmt in enumerate(body):
        if n < free_from:
            continue
        found = norm_call(stmt, modules)
        if found is None:
            continue
        var, kind, module, dim = found
        start = n
        while start - 1 >= free_from and _cheap(body[start - 1], var):
            start -= 1
        operands: list[Operand] = []
        pre, post, ops = [], [], []
        for s in body[start:n]:
            code, names = compile_statement(s, var, operands)
            pre.append(code)
            ops += names or ["arith"]
        ops.append(kind)
        stop = n + 1
        while stop < len(body) and (compiled := compile_statement(body[stop], var, operands)) is not None:
            post.append(compiled[0])
            ops += compiled[1] or ["arith"]
            stop += 1
        runs.append(NormRun(var, start, n, stop, kind, module, dim, pre, post, operands, ops,
                            produces_fresh(body, start, var)))
        free_from = stop
    return runs


def _cheap(stmt: ast.stmt, var: str) -> bool:
    compiled = compile_statement(stmt, var, [])
    return compiled is not None and set(compiled[1]) <= CHEAP_OPS
