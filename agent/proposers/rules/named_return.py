"""Puts a task's forward into the form the rules read: a returned call named, and calls of
activation modules (`self.act(x)` with `self.act = nn.LeakyReLU(...)`) written as the
functional op reading the module's own parameters at run time."""
from __future__ import annotations

import ast

from kopt.agent.proposers.rules.forward_analysis import compile_statement, forward_of, model_class

NAMESPACES = ("torch", "F", "nn", "self", "math")


def name_returned_value(task_source: str) -> str:
    """`return torch.softmax(x, dim=1)` becomes `x = torch.softmax(x, dim=1); return x`, the
    statement form the analyses read (KernelBench's level-1 tasks mostly return the call).
    Only a call whose first argument (or method receiver) is a plain name, or an elementwise
    expression of a single name (`x / (1 + torch.abs(x))`), is rewritten; the source comes
    back unchanged when there is nothing to do."""
    try:
        tree = ast.parse(task_source)
        fwd = forward_of(model_class(tree))
    except (ValueError, SyntaxError):
        return task_source
    last = fwd.body[-1] if fwd.body else None
    if not (isinstance(last, ast.Return) and isinstance(last.value, (ast.Call, ast.BinOp, ast.UnaryOp))):
        return task_source
    call = last.value
    if isinstance(call, ast.Call):
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        var = receiver if isinstance(receiver, ast.Name) and receiver.id not in NAMESPACES else \
            (call.args[0] if call.args else None)
    else:  # `return x * torch.sigmoid(x)`: an expression of one tensor (Swish, Softsign)
        names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name) and n.id not in NAMESPACES}
        var = ast.Name(names.pop()) if len(names) == 1 else None
    if not isinstance(var, ast.Name):
        return task_source
    named = ast.Assign(targets=[ast.Name(var.id, ast.Store())], value=call, lineno=last.lineno)
    if not isinstance(call, ast.Call) and compile_statement(named, var.id, []) is None:
        return task_source  # `return x / torch.norm(x)`: read as it stands (norm_rescale)
    fwd.body[-1:] = [named, ast.Return(value=ast.Name(var.id, ast.Load()), lineno=last.lineno)]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# module class -> (functional name, parameters read from the module at run time)
ACTIVATION_MODULES = {
    "ReLU": ("relu", ()), "ReLU6": ("relu6", ()), "Sigmoid": ("sigmoid", ()), "Tanh": ("tanh", ()),
    "SiLU": ("silu", ()), "Mish": ("mish", ()), "Softsign": ("softsign", ()), "Tanhshrink": ("tanhshrink", ()),
    "LogSigmoid": ("logsigmoid", ()), "Hardswish": ("hardswish", ()), "Hardsigmoid": ("hardsigmoid", ()),
    "SELU": ("selu", ()), "LeakyReLU": ("leaky_relu", ("negative_slope",)),
    "Hardtanh": ("hardtanh", ("min_val", "max_val")), "ELU": ("elu", ("alpha",)),
    "Softplus": ("softplus", ("beta", "threshold")), "GELU": ("gelu", ()),
}


def activation_modules(cls: ast.ClassDef) -> dict[str, str]:
    """`self.<attr>` -> module class, for attributes assigned once, to a known activation
    (GELU only without arguments: its `approximate` changes the formula)."""
    seen: dict[str, list[ast.Call | None]] = {}
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                seen.setdefault(ast.unparse(t), []).append(node.value if isinstance(node.value, ast.Call) else None)
    out = {}
    for attr, calls in seen.items():
        call = calls[0] if len(calls) == 1 else None
        name = ast.unparse(call.func).split(".")[-1] if call is not None else ""
        if name in ACTIVATION_MODULES and ast.unparse(call.func) in (f"nn.{name}", f"torch.nn.{name}", name) \
                and not (name == "GELU" and (call.args or call.keywords)):
            out[attr] = name
    return out


def functional_activations(task_source: str) -> str:
    """`self.act(x)` -> `torch.nn.functional.<op>(x, <param>=self.act.<param>, ...)` for
    activation modules; the source comes back unchanged when there are none."""
    try:
        tree = ast.parse(task_source)
        cls = model_class(tree)
        fwd = forward_of(cls)
    except (ValueError, SyntaxError):
        return task_source
    acts = activation_modules(cls)
    changed = False

    class Rewrite(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            nonlocal changed
            self.generic_visit(node)
            attr = ast.unparse(node.func)
            if attr in acts and len(node.args) == 1 and not node.keywords:
                fn, params = ACTIVATION_MODULES[acts[attr]]
                kwargs = ", ".join(f"{p}={attr}.{p}" for p in params)
                changed = True
                return ast.parse(f"torch.nn.functional.{fn}({ast.unparse(node.args[0])}"
                                 f"{', ' + kwargs if kwargs else ''})", mode="eval").body
            return node

    fwd.body = [Rewrite().visit(s) for s in fwd.body]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if changed else task_source


def normalise(task_source: str) -> str:
    """Both rewrites of this module: the form every rule reads."""
    return functional_activations(name_returned_value(task_source))
