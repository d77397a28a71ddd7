"""Finds the affine regions of a task's forward: a Linear / matmul followed by statements
that stay affine in the layer's input (scalar or per-feature multiply, divide, add,
subtract, negation, another Linear with no nonlinearity in between, a residual add of an
earlier value of the region, a sum or mean over the output features, and reductions over
a dimension already reduced to width 1).

Such a region is one matrix product with weights folded at construction (the `algebra`
rule in `affine_codegen`): a sum over a GEMM's 8192 output features becomes a GEMV, a
scale after a Linear disappears into its weights. The analysis reads the forward's
statements (the AST): tracing with torch.fx would run the task's own code in kopt's
process, and KernelBench forwards are straight-line code the AST shows exactly.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

REDUCTIONS = {"sum": "sum", "mean": "mean"}
# reductions that are the identity over a dimension of width 1 (keepdim=True)
WIDTH1_IDENTITIES = {"sum", "mean", "max", "min", "amax", "amin", "logsumexp"}
COPIES = ("clone", "detach", "contiguous")
NAMESPACES = ("torch", "F", "torch.nn.functional", "nn.functional")


@dataclass
class Step:
    """One statement of the region in folded form.

    kind: linear (A = W, or W @ A when composing), linear_t (A = W.T), scale (mul/div by
    `operand`), shift (add/sub `operand`), neg, add2 (dst = src +/- other), copy,
    reduce (sum/mean over the features), identity (a width-1 reduction)."""

    kind: str
    dst: str
    src: str
    operand: str = ""  # Python expression in forward's scope (self.<attr> or a number)
    bias: str = ""  # linear: the bias expression, "" for none
    op: str = ""  # scale: mul/div; shift: add/sub; add2: add/sub; reduce: sum/mean
    other: str = ""  # add2: the second affine value
    keepdim: bool = False
    dim: int = -1
    module: str = ""  # linear from an nn.Linear attribute: its expression (checked at run time)


@dataclass
class AffineRegion:
    start: int  # index into forward's body
    stop: int
    input: str  # the name the region reads
    output: str  # the name it leaves for the rest of forward
    steps: list[Step] = field(default_factory=list)

    def summary(self) -> str:
        kinds = [s.kind if s.kind != "reduce" else s.op for s in self.steps]
        return " -> ".join(dict.fromkeys(kinds))


def _attr_chain(node: ast.AST) -> bool:
    """`self.a` or `self.a.b` (a value of the module the fold may read at run time)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "self"


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _number(node.operand)
        return None if v is None else -v
    return None


def _operand(node: ast.AST) -> str | None:
    """A scalar / per-feature operand the fold can read: a number or a `self.` attribute."""
    if _number(node) is not None:
        return repr(_number(node))
    return ast.unparse(node) if _attr_chain(node) else None


def _call_name(call: ast.Call) -> tuple[str, ast.AST | None]:
    """(function name, method receiver or None) of a call."""
    f = call.func
    if isinstance(f, ast.Attribute):
        if ast.unparse(f.value) in NAMESPACES:
            return f.attr, None
        return f.attr, f.value
    return getattr(f, "id", ""), None


def _transposed(node: ast.AST) -> ast.AST | None:
    """W for `W.T`, `W.t()`, `W.transpose(0, 1)` / `(-1, -2)`, else None."""
    if isinstance(node, ast.Attribute) and node.attr in ("T", "mT"):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        args = [_number(a) for a in node.args]
        if node.func.attr == "t" and not node.args:
            return node.func.value
        if node.func.attr == "transpose" and sorted(args) in ([0.0, 1.0], [-2.0, -1.0]):
            return node.func.value
    return None


def _kw(call: ast.Call, name: str, pos: int | None = None) -> ast.AST | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    if pos is not None and len(call.args) > pos:
        return call.args[pos]
    return None


class _Reader:
    """Turns one statement into a Step, or None when it is not affine in a known value."""

    def __init__(self, linear_modules: set[str]):
        self.linear_modules = linear_modules

    def step(self, stmt: ast.stmt, live: set[str]) -> Step | None:
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            value = ast.BinOp(left=ast.Name(stmt.target.id, ast.Load()), op=stmt.op, right=stmt.value)
            dst = stmt.target.id
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value, dst = stmt.value, stmt.targets[0].id
        else:
            return None
        return self.expr(value, dst, live)

    def _live(self, node: ast.AST, live: set[str]) -> str | None:
        return node.id if isinstance(node, ast.Name) and node.id in live else None

    def expr(self, node: ast.AST, dst: str, live: set[str]) -> Step | None:
        if isinstance(node, ast.BinOp):
            return self.binop(node, dst, live)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and self._live(node.operand, live):
            return Step("neg", dst, node.operand.id)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call) and _number(node.slice) == 0.0:
            name, _ = _call_name(node.value)  # torch.max(x, dim=1, keepdim=True)[0]
            if name in ("max", "min"):
                return self.reduction(node.value, dst, live)
            return None
        if isinstance(node, ast.Call):
            return self.call(node, dst, live)
        return None

    def binop(self, node: ast.BinOp, dst: str, live: set[str]) -> Step | None:
        left, right = self._live(node.left, live), self._live(node.right, live)
        if isinstance(node.op, ast.MatMult) and left and _attr_chain(_transposed(node.right) or node.right):
            return self.product(dst, left, node.right)
        if left and right and isinstance(node.op, (ast.Add, ast.Sub)):
            return Step("add2", dst, left, other=right, op="add" if isinstance(node.op, ast.Add) else "sub")
        if isinstance(node.op, (ast.Mult, ast.Add)) and not left and right:
            node = ast.BinOp(left=node.right, op=node.op, right=node.left)  # commutative: live value first
            left = right
        if not left:
            return None
        operand = _operand(node.right)
        if operand is None:
            return None
        kind = {ast.Mult: ("scale", "mul"), ast.Div: ("scale", "div"), ast.Add: ("shift", "add"),
                ast.Sub: ("shift", "sub")}.get(type(node.op))
        return Step(kind[0], dst, left, operand=operand, op=kind[1]) if kind else None

    def product(self, dst: str, src: str, weight: ast.AST) -> Step | None:
        inner = _transposed(weight)
        if inner is not None and _attr_chain(inner):
            return Step("linear", dst, src, operand=ast.unparse(inner))
        if _attr_chain(weight):
            return Step("linear_t", dst, src, operand=ast.unparse(weight))
        return None

    def call(self, call: ast.Call, dst: str, live: set[str]) -> Step | None:
        name, receiver = _call_name(call)
        while name in COPIES and isinstance(receiver, ast.Call) and _call_name(receiver)[0] in COPIES \
                and not receiver.args and not call.args:
            call = receiver  # h.clone().detach()
            name, receiver = _call_name(call)
        args = ([receiver] if receiver is not None else []) + list(call.args)
        if isinstance(call.func, ast.Attribute) and _attr_chain(call.func) and ast.unparse(call.func) \
                in self.linear_modules and len(call.args) == 1 and not call.keywords:
            src = self._live(call.args[0], live)  # self.linear(x)
            module = ast.unparse(call.func)
            return Step("linear", dst, src, operand=f"{module}.weight", bias=f"{module}.bias",
                        module=module) if src else None
        if not args or not self._live(args[0], live):
            return None
        src = args[0].id
        if name in ("matmul", "mm") and len(args) == 2 and not call.keywords:
            return self.product(dst, src, args[1])
        if name == "linear" and receiver is None and len(args) >= 2 and _attr_chain(args[1]):
            bias = _kw(call, "bias", 2)
            if bias is not None and not (_attr_chain(bias) or (isinstance(bias, ast.Constant) and bias.value is None)):
                return None
            text = "" if bias is None or isinstance(bias, ast.Constant) else ast.unparse(bias)
            return Step("linear", dst, src, operand=ast.unparse(args[1]), bias=text)
        if name in COPIES and len(args) == 1 and not call.keywords:
            return Step("copy", dst, src)
        if name in ("mul", "div", "add", "sub") and len(args) == 2 and not call.keywords:
            op = ast.BinOp(left=args[0], op={"mul": ast.Mult(), "div": ast.Div(), "add": ast.Add(),
                                             "sub": ast.Sub()}[name], right=args[1])
            return self.binop(op, dst, live)
        if name in WIDTH1_IDENTITIES or name in REDUCTIONS:
            return self.reduction(call, dst, live)
        return None

    def reduction(self, call: ast.Call, dst: str, live: set[str]) -> Step | None:
        name, receiver = _call_name(call)
        pos = 0 if receiver is not None else 1
        src_node = receiver if receiver is not None else (call.args[0] if call.args else None)
        src = self._live(src_node, live) if src_node is not None else None
        dim = _number(_kw(call, "dim", pos)) if _kw(call, "dim", pos) is not None else None
        keep = _kw(call, "keepdim", pos + 1)
        keepdim = isinstance(keep, ast.Constant) and keep.value is True
        if src is None or dim is None or (keep is not None and not isinstance(keep, ast.Constant)):
            return None
        if len(call.args) > pos + 2 or any(k.arg not in ("dim", "keepdim") for k in call.keywords):
            return None
        if name in REDUCTIONS:
            return Step("reduce", dst, src, op=name, dim=int(dim), keepdim=keepdim)
        return Step("identity", dst, src, op=name, dim=int(dim), keepdim=keepdim)


def linear_modules(cls: ast.ClassDef) -> set[str]:
    """`self.<name>` attributes `__init__` sets to an nn.Linear."""
    out = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call):
            f = ast.unparse(node.value.func)
            if f in ("nn.Linear", "torch.nn.Linear", "Linear") and _attr_chain(node.targets[0]):
                out.add(ast.unparse(node.targets[0]))
    return out


def _names_read(stmts: list[ast.stmt]) -> set[str]:
    """Names whose current value the statements read (straight-line liveness: a name
    assigned by a plain `name = ...` before any read is not; anything else counts as read)."""
    read: set[str] = set()
    killed: set[str] = set()
    for s in stmts:
        read |= {n.id for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - killed
        if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
            killed.add(s.targets[0].id)
    return read


def _valid(steps: list[Step]) -> bool:
    """Shape rules the fold relies on: a reduction only over the features, identities only
    after a keepdim reduction, no second product after the features were reduced."""
    reduced: dict[str, bool] = {}  # value -> reduced to width 1 with keepdim
    gone: set[str] = set()  # values reduced without keepdim (a dimension fewer)
    for s in steps:
        if s.kind in ("linear", "linear_t") and (s.src in reduced and reduced[s.src] or s.src in gone):
            return False
        if s.kind == "reduce" and (s.dim not in (1, -1) or s.src in gone or reduced.get(s.src)):
            return False
        if s.kind == "identity" and not (reduced.get(s.src) and s.keepdim and s.dim in (1, -1)):
            return False
        if s.kind == "add2" and ((s.src in gone) != (s.other in gone)
                                 or reduced.get(s.src, False) != reduced.get(s.other, False)):
            return False
        if s.kind == "reduce":
            (reduced.__setitem__(s.dst, True) if s.keepdim else gone.add(s.dst))
            continue
        was_gone = s.src in gone or (s.kind == "add2" and s.other in gone)
        reduced[s.dst] = bool(reduced.get(s.src)) and s.kind not in ("linear", "linear_t")
        (gone.add(s.dst) if was_gone else gone.discard(s.dst))
    return True


def find_affine_regions(forward: ast.FunctionDef, cls: ast.ClassDef) -> list[AffineRegion]:
    """Maximal regions that start with a product and hold at least one more affine step."""
    reader = _Reader(linear_modules(cls))
    body = forward.body
    regions: list[AffineRegion] = []
    i = 0
    while i < len(body):
        first = reader.step(body[i], {n.id for n in ast.walk(body[i]) if isinstance(n, ast.Name)} - {"self"})
        if first is None or first.kind not in ("linear", "linear_t"):
            i += 1
            continue
        steps, live, j = [first], {first.dst}, i + 1  # later steps read only the region's own values
        while j < len(body):
            s = reader.step(body[j], live)
            if s is None or s.src not in live:
                break
            steps.append(s)
            live.add(s.dst)
            j += 1
        while len(steps) > 1 and not _valid(steps):
            steps.pop()
            j -= 1
        region = _close(body, i, j, steps)
        if region is not None:
            regions.append(region)
            i = region.stop
        else:
            i += 1
    return regions


def _close(body: list[ast.stmt], start: int, stop: int, steps: list[Step]) -> AffineRegion | None:
    """The region if its values other than the output are not read after it, else a
    shorter prefix that satisfies this (None when under two steps remain)."""
    while stop - start >= 2:
        steps = steps[: stop - start]
        output = steps[-1].dst
        internal = {s.dst for s in steps} - {output}
        if not (internal & _names_read(body[stop:])):
            return AffineRegion(start, stop, steps[0].src, output, steps)
        stop -= 1
    return None
