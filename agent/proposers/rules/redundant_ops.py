"""Rule `cpu-remove-redundant-ops`: statements of forward that cannot change their value
are removed -- a clamp / hardtanh / relu whose bounds an earlier activation already
guarantees (tanh then clamp(-1, 1), sigmoid then clamp(0, 1), relu then relu), and the
renormalisation of a softmax by its own sum.

The analysis tracks the closed range of the running value through straight-line
`x = f(x)` statements (bounded activations, clamps, scaling by a positive number, adding
a number); NaN passes through every removed op unchanged, as it does through the op.
"""
from __future__ import annotations

import ast
import math

from kopt.agent.proposers.rules.affine_analysis import _call_name, _kw, _number

INF = math.inf
# activation -> closed range of its output
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, INF), "relu6": (0.0, 6.0),
          "hardsigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0), "exp": (0.0, INF), "abs": (0.0, INF),
          "softplus": (0.0, INF), "gelu": (-0.17, INF), "silu": (-0.28, INF), "elu": (-1.0, INF),
          "hardswish": (-0.375, INF), "mish": (-0.31, INF), "softmax": (0.0, 1.0)}
FUNCS = ("torch", "F", "torch.nn.functional", "nn.functional")


def _target(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    return None


def _of(call: ast.AST, var: str) -> tuple[str, ast.Call] | None:
    """(op name, call) when `call` applies an op to `var` (function or method form)."""
    if not isinstance(call, ast.Call):
        return None
    name, receiver = _call_name(call)
    first = receiver if receiver is not None else (call.args[0] if call.args else None)
    if isinstance(first, ast.Name) and first.id == var:
        return name.rstrip("_"), call
    return None


def _bounds(name: str, call: ast.Call, method: bool) -> tuple[float, float] | None:
    """The (min, max) a clamp-like call enforces, or None when they are not plain numbers."""
    pos = 0 if method else 1
    if name in ("clamp", "clip"):
        lo, hi = _kw(call, "min", pos), _kw(call, "max", pos + 1)
    elif name == "hardtanh":
        lo, hi = _kw(call, "min_val", pos), _kw(call, "max_val", pos + 1)
        lo = lo if lo is not None else ast.Constant(-1.0)
        hi = hi if hi is not None else ast.Constant(1.0)
    elif name == "relu6":
        lo, hi = ast.Constant(0.0), ast.Constant(6.0)
    elif name == "relu":
        lo, hi = ast.Constant(0.0), None
    else:
        return None
    values = []
    for b in (lo, hi):
        if b is None or (isinstance(b, ast.Constant) and b.value is None):
            values.append(None)
        elif _number(b) is None:
            return None
        else:
            values.append(_number(b))
    return (-INF if values[0] is None else values[0]), (INF if values[1] is None else values[1])


def _softmax_dim(call: ast.Call, method: bool) -> str | None:
    d = _kw(call, "dim", 0 if method else 1)
    return ast.unparse(d) if d is not None else None


def _renormalises(value: ast.AST, var: str, dim: str) -> bool:
    """`var / var.sum(dim=dim, keepdim=True)` or `var / torch.sum(var, dim=dim, keepdim=True)`."""
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Div)
            and isinstance(value.left, ast.Name) and value.left.id == var):
        return False
    found = _of(value.right, var)
    if found is None or found[0] != "sum":
        return False
    call = found[1]
    method = isinstance(call.func, ast.Attribute) and ast.unparse(call.func.value) == var
    keep = _kw(call, "keepdim", 1 if method else 2)
    return _softmax_dim(call, method) == dim and isinstance(keep, ast.Constant) and keep.value is True


def redundant_statements(forward: ast.FunctionDef) -> list[tuple[int, str]]:
    """(index, why) of each statement of forward that cannot change the value it assigns."""
    out: list[tuple[int, str]] = []
    rng: dict[str, tuple[float, float]] = {}
    softmaxed: dict[str, str] = {}  # var -> dim of the softmax it holds
    for i, stmt in enumerate(forward.body):
        var = _target(stmt)
        if var is None:
            rng.clear()
            softmaxed.clear()
            continue
        value = stmt.value
        if var in softmaxed and _renormalises(value, var, softmaxed[var]):
            out.append((i, f"{var} is a softmax over dim {softmaxed[var]}: dividing by its sum changes nothing"))
            continue
        found = _of(value, var)
        name = found[0] if found else ""
        method = bool(found) and isinstance(found[1].func, ast.Attribute) and \
            ast.unparse(found[1].func.value) not in FUNCS
        bounds = _bounds(name, found[1], method) if found else None
        known = rng.get(var)
        if bounds is not None and known is not None and bounds[0] <= known[0] and known[1] <= bounds[1]:
            out.append((i, f"{name} to [{bounds[0]}, {bounds[1]}] cannot bind: {var} is already in "
                           f"[{known[0]}, {known[1]}]"))
            continue
        rng.pop(var, None)
        softmaxed.pop(var, None)
        if bounds is not None:
            lo, hi = bounds
            rng[var] = (max(lo, known[0]), min(hi, known[1])) if known else (lo, hi)
        elif name in RANGES and (name == "softmax" or (len(found[1].args) == (0 if method else 1) and all(
                k.arg == "inplace" for k in found[1].keywords))):  # parameters (elu's alpha...) move the range
            rng[var] = RANGES[name]
            if name == "softmax" and found is not None and _softmax_dim(found[1], method) is not None:
                softmaxed[var] = _softmax_dim(found[1], method)
        elif known is not None and isinstance(value, ast.BinOp) and isinstance(value.left, ast.Name) \
                and value.left.id == var and _number(value.right) is not None:
            c = _number(value.right)
            if isinstance(value.op, ast.Add):
                rng[var] = (known[0] + c, known[1] + c)
            elif isinstance(value.op, ast.Sub):
                rng[var] = (known[0] - c, known[1] - c)
            elif isinstance(value.op, ast.Mult) and c > 0:
                rng[var] = (known[0] * c, known[1] * c)
            elif isinstance(value.op, ast.Div) and c > 0:
                rng[var] = (known[0] / c, known[1] / c)
    return out


def remove(task_source: str, indices: list[int]) -> str:
    """The task's source with those statements of Model.forward deleted."""
    tree = ast.parse(task_source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model")
    fwd = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    fwd.body = [s for i, s in enumerate(fwd.body) if i not in set(indices)]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
