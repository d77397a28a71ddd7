"""Rule `cpu-compose-pools`: consecutive pooling modules of one kind whose stride equals
their kernel (no padding, dilation or ceil mode) as one pooling with the product window.

MaxPool(a) then MaxPool(b) takes the max over b windows of a, which are the a*b window
of the input (output sizes agree too: floor(floor(D / a) / b) = floor(D / (a * b))); an
average of b equal-sized averages is the average of their union. One pass over the large
tensor instead of two: PyTorch's MaxPool3d(2) on the CPU costs several times a
MaxPool3d(4) over the same input (upstream level-2 #6 pools twice after a softmax).

The analysis only reads the statements (`x = self.p(x)` for modules `__init__` builds once
from nn.MaxPool{1,2,3}d / nn.AvgPool{1,2,3}d); the window, stride and padding are read from
the modules at run time by `HELPER`, which runs the original statements for anything else.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from kopt.agent.proposers.rules.conv_mean import replace_regions

POOLS = {f"{kind}Pool{d}d": (kind.lower(), d) for kind in ("Max", "Avg") for d in (1, 2, 3)}


@dataclass(frozen=True)
class PoolChain:
    var: str
    start: int
    stop: int
    modules: tuple[str, ...]  # python expressions, e.g. ("self.pool1", "self.pool2")
    kind: str  # max | avg


def pool_modules(cls: ast.ClassDef) -> dict[str, tuple[str, int]]:
    """`self.<attr>` -> (kind, dims) for pooling modules `__init__` assigns once, at its top level."""
    counts: dict[str, int] = {}
    for node in ast.walk(cls):
        for t in node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                    counts[sub.attr] = counts.get(sub.attr, 0) + 1
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    found = {}
    for stmt in init.body if init else []:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.value, ast.Call)):
            continue
        target, func = stmt.targets[0], stmt.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        prefix = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self" \
                and name in POOLS and prefix in ("", "nn", "torch.nn") and counts.get(target.attr) == 1:
            found[target.attr] = POOLS[name]
    return found


def self_module_call(stmt: ast.stmt, pools) -> tuple[str, str] | None:
    """(var, attr) when stmt is `var = self.attr(var)` for a module attr among POOLS (any
    collection of attribute names)."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Call) and not stmt.value.keywords and len(stmt.value.args) == 1):
        return None
    var, func, arg = stmt.targets[0].id, stmt.value.func, stmt.value.args[0]
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self" \
            and func.attr in pools and isinstance(arg, ast.Name) and arg.id == var:
        return var, func.attr
    return None


def find_pool_chains(forward: ast.FunctionDef, cls: ast.ClassDef) -> list[PoolChain]:
    """Runs of two or more consecutive pooling statements on one value, of one kind and dims."""
    pools = pool_modules(cls)
    body, chains, i = forward.body, [], 0
    while i < len(body):
        first = self_module_call(body[i], pools)
        j = i + 1
        while first and j < len(body) and (nxt := self_module_call(body[j], pools)) and nxt[0] == first[0] \
                and pools[nxt[1]] == pools[first[1]]:
            j += 1
        if first and j - i >= 2:
            mods = tuple(f"self.{self_module_call(body[k], pools)[1]}" for k in range(i, j))
            chains.append(PoolChain(first[0], i, j, mods, pools[first[1]][0]))
        i = max(j, i + 1)
    return chains


def rewrite(task_source: str, chains: list[PoolChain]) -> str:
    """The task's source (class still `Model`) with each chain a call to a method that tries
    the composed pooling and runs the original statements when it does not apply."""
    def method(chain: PoolChain, k: int, body: list[ast.stmt]):
        original = "\n".join("    " + ast.unparse(s) for s in body[chain.start: chain.stop])
        return f"_kopt_pools_{k}", (f"def _kopt_pools_{k}(self, {chain.var}):\n"
                                    f"    _kopt_y = _composed_pool({chain.var}, ({', '.join(chain.modules)},))\n"
                                    f"    if _kopt_y is not None:\n        return _kopt_y\n"
                                    f"{original}\n    return {chain.var}\n")
    return replace_regions(task_source, chains, method)


HELPER = '''
_POOL_FORMS = {torch.nn.MaxPool1d: (1, "max"), torch.nn.MaxPool2d: (2, "max"), torch.nn.MaxPool3d: (3, "max"),
               torch.nn.AvgPool1d: (1, "avg"), torch.nn.AvgPool2d: (2, "avg"), torch.nn.AvgPool3d: (3, "avg")}


def _as_tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _kopt_pool_window(x, pools):
    """(n, kind, window) of pooling modules of one type whose stride is their kernel (no
    padding, dilation, ceil mode, indices or divisor override), applied in turn to x: one
    pooling with the product window; or None."""
    form = _POOL_FORMS.get(type(pools[0]))
    if form is None or any(type(p) is not type(pools[0]) for p in pools) or not isinstance(x, torch.Tensor):
        return None
    n, kind = form
    if x.dim() not in (n + 1, n + 2):
        return None
    window = [1] * n
    for p in pools:
        k = _as_tuple(p.kernel_size, n)
        s = _as_tuple(p.stride if p.stride is not None else p.kernel_size, n)
        if k != s or any(_as_tuple(p.padding, n)) or p.ceil_mode or len(k) != n:
            return None
        if kind == "max" and (p.return_indices or any(d != 1 for d in _as_tuple(p.dilation, n))):
            return None
        if kind == "avg" and p.divisor_override is not None:
            return None
        window = [w * int(v) for w, v in zip(window, k)]
    return n, kind, tuple(window)


def _composed_pool(x, pools):
    """One pooling with the product window (`_kopt_pool_window`), or None."""
    found = _kopt_pool_window(x, pools)
    if found is None:
        return None
    n, kind, window = found
    return getattr(torch.nn.functional, f"{kind}_pool{n}d")(x, window, window)
'''
