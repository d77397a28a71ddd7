"""Reads a KernelBench task's `Model.forward` and finds runs of elementwise statements
that one fused pass over memory can replace.

Only straight-line forwards are understood (`x = op(x)` statements and a `return`);
anything else is left alone, so the `rules` proposer stays honest: it proposes what it
can prove it understands and lets the evaluator judge the rest.
"""
from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

# call name -> C++ expression; {0} is the operand, {kw} named arguments with defaults;
# kexp / ktanh / kerf / kmish are the inline vectorisable versions in `kopt.agent.proposers.rules.cpu_math`
UNARY: dict[str, tuple[str, dict[str, float]]] = {
    "relu": ("({0} > 0.f ? {0} : 0.f)", {}),
    "relu6": ("fminf(fmaxf({0}, 0.f), 6.f)", {}),
    "sigmoid": ("(1.f / (1.f + kexp(-{0})))", {}),
    "tanh": ("ktanh({0})", {}),
    "gelu": ("(0.5f * {0} * (1.f + kerf({0} * 0.70710678118654752f)))", {}),
    "silu": ("({0} / (1.f + kexp(-{0})))", {}),
    "mish": ("kmish({0})", {}),
    "softplus": ("({0} * {beta} > {threshold} ? {0} : log1pf(kexp({0} * {beta})) / {beta})",
                 {"beta": 1.0, "threshold": 20.0}),
    "elu": ("({0} > 0.f ? {0} : {alpha} * (kexp({0}) - 1.f))", {"alpha": 1.0}),
    "selu": ("(1.0507009873554805f * ({0} > 0.f ? {0} : 1.6732632423543772f * (kexp({0}) - 1.f)))", {}),
    "leaky_relu": ("({0} > 0.f ? {0} : {negative_slope} * {0})", {"negative_slope": 0.01}),
    "hardtanh": ("fminf(fmaxf({0}, {min_val}), {max_val})", {"min_val": -1.0, "max_val": 1.0}),
    "hardswish": ("({0} * fminf(fmaxf({0} + 3.f, 0.f), 6.f) / 6.f)", {}),
    "hardsigmoid": ("(fminf(fmaxf({0} + 3.f, 0.f), 6.f) / 6.f)", {}),
    "softsign": ("({0} / (1.f + fabsf({0})))", {}),
    "tanhshrink": ("({0} - ktanh({0}))", {}),
    "logsigmoid": ("(-log1pf(kexp(-{0})))", {}),
    "exp": ("expf({0})", {}),  # libm: exact overflow to inf, which kexp clamps
    "log": ("logf({0})", {}),
    "sqrt": ("sqrtf({0})", {}),
    "rsqrt": ("(1.f / sqrtf({0}))", {}),
    "abs": ("fabsf({0})", {}),
    "neg": ("(-{0})", {}),
    "erf": ("kerf({0})", {}),
    "sin": ("sinf({0})", {}),
    "cos": ("cosf({0})", {}),
    "square": ("({0} * {0})", {}),
}
POSITIONAL = {"leaky_relu": ["negative_slope"], "hardtanh": ["min_val", "max_val"], "elu": ["alpha"],
              "softplus": ["beta", "threshold"], "clamp": ["min", "max"], "clip": ["min", "max"]}
BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# The same ops as Triton expressions (`_tanh` / `_mish` are jit helpers the Triton
# generator writes into every solution; Triton has no tanh of its own)
TRITON_UNARY: dict[str, tuple[str, dict[str, float]]] = {
    "relu": ("tl.maximum({0}, 0.0)", {}),
    "relu6": ("tl.minimum(tl.maximum({0}, 0.0), 6.0)", {}),
    "sigmoid": ("tl.sigmoid({0})", {}),
    "tanh": ("_tanh({0})", {}),
    "gelu": ("(0.5 * {0} * (1.0 + tl.erf({0} * 0.7071067811865476)))", {}),
    "silu": ("({0} * tl.sigmoid({0}))", {}),
    "mish": ("_mish({0})", {}),
    "softplus": ("tl.where({0} * {beta} > {threshold}, {0}, tl.log(1.0 + tl.exp({0} * {beta})) / {beta})",
                 {"beta": 1.0, "threshold": 20.0}),
    "elu": ("tl.where({0} > 0.0, {0}, {alpha} * (tl.exp({0}) - 1.0))", {"alpha": 1.0}),
    "selu": ("(1.0507009873554805 * tl.where({0} > 0.0, {0}, 1.6732632423543772 * (tl.exp({0}) - 1.0)))", {}),
    "leaky_relu": ("tl.where({0} > 0.0, {0}, {negative_slope} * {0})", {"negative_slope": 0.01}),
    "hardtanh": ("tl.minimum(tl.maximum({0}, {min_val}), {max_val})", {"min_val": -1.0, "max_val": 1.0}),
    "hardswish": ("({0} * tl.minimum(tl.maximum({0} + 3.0, 0.0), 6.0) / 6.0)", {}),
    "hardsigmoid": ("(tl.minimum(tl.maximum({0} + 3.0, 0.0), 6.0) / 6.0)", {}),
    "softsign": ("({0} / (1.0 + tl.abs({0})))", {}),
    "tanhshrink": ("({0} - _tanh({0}))", {}),
    "logsigmoid": ("(tl.minimum({0}, 0.0) - tl.log(1.0 + tl.exp(-tl.abs({0}))))", {}),
    "exp": ("tl.exp({0})", {}),
    "log": ("tl.log({0})", {}),
    "sqrt": ("tl.sqrt({0})", {}),
    "rsqrt": ("tl.rsqrt({0})", {}),
    "abs": ("tl.abs({0})", {}),
    "neg": ("(-{0})", {}),
    "erf": ("tl.erf({0})", {}),
    "sin": ("tl.sin({0})", {}),
    "cos": ("tl.cos({0})", {}),
    "square": ("({0} * {0})", {}),
}


@dataclass(frozen=True)
class Dialect:
    """How one kernel language spells what `_ExprCompiler` emits."""

    unary: dict[str, tuple[str, dict[str, float]]]
    maximum: str
    minimum: str
    sqrt: str
    tanh: str
    float_suffix: str
    end: str  # statement terminator

    def lit(self, value: float) -> str:
        text = repr(value)
        if self.float_suffix:
            return f"{text}f" if "e" in text or "." in text else f"{text}.f"
        return text if "e" in text or "." in text else f"{text}.0"


CPP = Dialect(UNARY, "fmaxf", "fminf", "sqrtf", "ktanh", "f", ";")  # C++ and CUDA (kopt.agent.proposers.rules.cpu_math)
TRITON = Dialect(TRITON_UNARY, "tl.maximum", "tl.minimum", "tl.sqrt", "_tanh", "", "")


class NotElementwise(Exception):
    pass


@dataclass
class Operand:
    """A value the kernel needs from Python: a `self.<attr>` scalar or per-channel tensor."""

    python: str  # expression in forward's scope, e.g. "self.scale"


@dataclass
class FusedRun:
    """Consecutive statements `var = f(var)` compiled into one C++ expression."""

    var: str
    start: int  # index into forward's statements
    stop: int
    stmts: list[str]  # C++ statements updating `v`, using operands o0, o1, ...
    operands: list[Operand] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    fresh: bool = False  # the value is a temporary of forward: safe to overwrite in place


class _ExprCompiler:
    def __init__(self, var: str, current: str, operands: list[Operand], ops: list[str], dialect: Dialect = CPP):
        self.var, self.current, self.operands, self.ops = var, current, operands, ops
        self.d = dialect

    def number(self, node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            v = self.number(node.operand)
            return -v if v is not None else None
        return None

    def lit(self, value: float) -> str:
        return self.d.lit(value)

    def operand(self, node: ast.AST) -> str:
        src = ast.unparse(node)
        for i, o in enumerate(self.operands):
            if o.python == src:
                return f"o{i}"
        self.operands.append(Operand(src))
        return f"o{len(self.operands) - 1}"

    def compile(self, node: ast.AST) -> str:
        num = self.number(node)
        if num is not None:
            return self.lit(num)
        if isinstance(node, ast.Name) and node.id == self.var:
            return self.current
        if isinstance(node, ast.Attribute) and _self_chain(node):  # self.scale, self.act.negative_slope
            return self.operand(node)
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            return f"({self.compile(node.left)} {BINOPS[type(node.op)]} {self.compile(node.right)})"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exp = self.number(node.right)
            base = self.compile(node.left)
            if exp in (2.0, 3.0):
                self.ops.append("pow")
                return "(" + " * ".join([base] * int(exp)) + ")"
            if exp == 0.5:
                return f"{self.d.sqrt}({base})"
            raise NotElementwise("non-integer power")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{self.compile(node.operand)})"
        if isinstance(node, ast.Call):
            return self.call(node)
        raise NotElementwise(ast.unparse(node))

    def call(self, node: ast.Call) -> str:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        args = list(node.args)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == self.var:
            args = [func.value, *args]  # method form: x.relu()
        elif isinstance(func, ast.Attribute) and not _is_namespace(func.value):
            raise NotElementwise(ast.unparse(node))
        name = name.rstrip("_") if name.endswith("_") and name[:-1] in self.d.unary else name
        kwargs = {k.arg: k.value for k in node.keywords}
        if kwargs.pop("inplace", None) is not None and not args:
            raise NotElementwise("inplace form")
        if not args:
            raise NotElementwise(ast.unparse(node))
        operand = self.compile(args[0])
        if name in ("clamp", "clip", "clamp_min", "clamp_max"):
            names = {"clamp_min": ["min"], "clamp_max": ["max"]}.get(name, ["min", "max"])
            bounds = dict(zip(names, args[1:]))
            bounds.update({k: v for k, v in kwargs.items() if k in ("min", "max")})
            out = operand
            if bounds.get("min") is not None and not _is_none(bounds["min"]):
                out = f"{self.d.maximum}({out}, {self.compile(bounds['min'])})"
            if bounds.get("max") is not None and not _is_none(bounds["max"]):
                out = f"{self.d.minimum}({out}, {self.compile(bounds['max'])})"
            self.ops.append("clamp")
            return out
        if name == "gelu":
            approx = kwargs.pop("approximate", None)
            if approx is not None and isinstance(approx, ast.Constant) and approx.value == "tanh":
                self.ops.append("gelu_tanh")
                v = operand
                c = [self.lit(k) for k in (0.5, 1.0, 0.7978845608028654, 0.044715)]
                return f"({c[0]} * {v} * ({c[1]} + {self.d.tanh}({c[2]} * ({v} + {c[3]} * {v} * {v} * {v}))))"
        if name not in self.d.unary:
            raise NotElementwise(f"unknown call {name}")
        template, defaults = self.d.unary[name]
        params = dict(defaults)
        for key, value in zip(POSITIONAL.get(name, []), args[1:]):
            params[key] = value
        for key, value in kwargs.items():
            if key not in defaults:
                raise NotElementwise(f"{name}({key}=...)")
            params[key] = value
        rendered = {k: (self.lit(v) if isinstance(v, float) else self.compile(v)) for k, v in params.items()}
        self.ops.append(name)
        return template.format(operand, **rendered)


def _self_chain(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "self"


def _is_namespace(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return text in ("torch", "F", "torch.nn.functional", "nn.functional", "torch.special")


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _assigns_var(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id
    return None


def _value(stmt: ast.stmt) -> ast.AST:
    if isinstance(stmt, ast.AugAssign):
        return ast.BinOp(left=ast.Name(id=stmt.target.id, ctx=ast.Load()), op=stmt.op, right=stmt.value)
    return stmt.value


def _produces_fresh(stmt: ast.stmt) -> bool:
    """Does this statement make a new tensor (not a view of an input)?"""
    value = _value(stmt)
    if not isinstance(value, ast.Call):
        return isinstance(value, ast.BinOp)
    text = ast.unparse(value.func)
    views = ("view", "reshape", "transpose", "permute", "flatten", "squeeze", "unsqueeze", "expand",
             "narrow", "select", "t", "contiguous", "detach")
    return text.split(".")[-1] not in views


def compile_statement(stmt: ast.stmt, var: str, operands: list[Operand],
                      dialect: Dialect = CPP) -> tuple[str, list[str]] | None:
    """`var = f(var)` as one statement updating `v` (C++ by default), or None if it is not
    elementwise in `var`. New `self.<attr>` operands are appended to `operands` only on success."""
    if _assigns_var(stmt) != var or not _uses_var(_value(stmt), var):
        return None
    ops: list[str] = []
    trial = list(operands)
    try:
        expr = _ExprCompiler(var, "v", trial, ops, dialect).compile(_value(stmt))
    except NotElementwise:
        return None
    operands[:] = trial
    return f"v = {expr}{dialect.end}", ops


def produces_fresh(body: list[ast.stmt], start: int, var: str) -> bool:
    """Is `var` a temporary of forward right before statement `start` (safe to overwrite)?"""
    return start > 0 and _assigns_var(body[start - 1]) == var and _produces_fresh(body[start - 1])


def find_fusable_runs(forward: ast.FunctionDef, barriers: frozenset[int] = frozenset()) -> list[FusedRun]:
    """Maximal runs of `var = elementwise(var, ...)` statements in forward's body; statements
    whose index is in `barriers` (claimed by another rule) are never part of a run."""
    body = forward.body
    runs: list[FusedRun] = []
    i = 0
    while i < len(body):
        var = _assigns_var(body[i])
        j, stmts, operands, ops = i, [], [], []
        while j < len(body) and var is not None and j not in barriers:
            compiled = compile_statement(body[j], var, operands)
            if compiled is None:
                break
            stmts.append(compiled[0])
            ops += compiled[1]
            j += 1
        if j > i:
            runs.append(FusedRun(var, i, j, stmts, [Operand(o.python) for o in operands], ops,
                                 produces_fresh(body, i, var)))
            i = j
        else:
            i += 1
    return runs


def _uses_var(node: ast.AST, var: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(node))


def model_class(tree: ast.Module) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            return node
    raise ValueError("no class Model")


def forward_of(cls: ast.ClassDef) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "forward":
            return node
    raise ValueError("Model has no forward")


def fast_path_first(task_source: str, find: Callable, call: Callable[..., str]) -> tuple[str, object] | None:
    """(the task's source, class still `Model`, whose forward first runs `_kopt_out = CALL(found)`
    and returns it unless it is None -- the kernel declines what it cannot do -- ; what FIND found
    in the forward), or None where it finds nothing or there is no `Model.forward`."""
    tree = ast.parse(task_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    fwd = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None) if cls else None
    found = find(fwd) if fwd is not None else None
    if found is None:
        return None
    new = copy.deepcopy(fwd)
    new.body[:0] = ast.parse(f"_kopt_out = {call(found)}\nif _kopt_out is not None:\n    return _kopt_out\n").body
    cls.body[cls.body.index(fwd)] = ast.fix_missing_locations(new)
    return ast.unparse(tree) + "\n", found


def init_modules(cls: ast.ClassDef, kinds: Collection[str]) -> dict[str, str]:
    """Attribute -> class name for what `__init__` sets to one of KINDS (`self.bn = nn.BatchNorm2d(...)`)."""
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    found: dict[str, str] = {}
    for node in ast.walk(init) if init is not None else []:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1:
            f, t = node.value.func, node.targets[0]
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in kinds and isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) \
                    and t.value.id == "self":
                found[t.attr] = name
    return found


class _ModuleCalls(ast.NodeTransformer):
    """`self.<m>(a, ...)` with ARITY plain positional arguments -> `WRAPPER(self.<m>, a, ...)`."""

    def __init__(self, names: dict[str, str], arity: int, wrapper: str) -> None:
        self.names, self.arity, self.wrapper, self.done = names, arity, wrapper, []

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self" \
                and f.attr in self.names and len(node.args) == self.arity and not node.keywords \
                and not any(isinstance(a, ast.Starred) for a in node.args):
            self.done.append(f"self.{f.attr}")
            return ast.Call(ast.Name(self.wrapper, ast.Load()), [f, *node.args], [])
        return node


def route_module_calls(task_source: str, kinds: Collection[str], arity: int,
                       wrapper: str) -> tuple[str, dict[str, str], list[str]] | None:
    """(the task's source, class still `Model`, with every call in forward of a module that
    `__init__` sets to one of KINDS, taking ARITY positional arguments, through WRAPPER; the
    modules found (attribute -> class name); the calls routed, once each), or None."""
    tree = ast.parse(task_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    fwd = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None) if cls else None
    names = init_modules(cls, kinds) if fwd is not None else {}
    if not names:
        return None
    calls = _ModuleCalls(names, arity, wrapper)
    new_fwd = calls.visit(copy.deepcopy(fwd))
    if not calls.done:
        return None
    cls.body[cls.body.index(fwd)] = ast.fix_missing_locations(new_fwd)
    return ast.unparse(tree) + "\n", names, list(dict.fromkeys(calls.done))
