"""Rule `cpu-fuse-loss-reduction`: a forward that returns the mean (or sum) of an
elementwise expression of its inputs -- the shape of most losses -- as one parallel C++
pass that reads every input once and keeps no temporaries.

    return torch.mean((predictions - targets) ** 2)       # eager: 3 passes, 2 temporaries
    return torch.mean(torch.clamp(1 - p * t, min=0))
    return F.mse_loss(p, t)    /    F.l1_loss(p, t)    /    F.smooth_l1_loss(p, t)

The expression is compiled by `forward_analysis`'s elementwise compiler (every input is a
variable). At run time the inputs are broadcast as PyTorch would; each is read as a 2-D
(rows, last dim) view whose row / column stride is 0 or its own, and anything else is
copied to that form first. Autograd, other dtypes or devices run the original statement.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from kopt.agent.proposers.rules.cpu_math import PRELUDE
from kopt.agent.proposers.rules.forward_analysis import CPP, NotElementwise, Operand, _ExprCompiler

# loss -> its elementwise term (default reduction 'mean'; a call with keywords is not read).
# smooth_l1 with beta 1: 0.5 d^2 below |d| = 1, |d| - 0.5 above, = 0.5 m^2 + |d| - m with m = min(|d|, 1)
LOSSES = {"mse_loss": "(({0}) - ({1})) ** 2", "l1_loss": "abs(({0}) - ({1}))",
          "smooth_l1_loss": "0.5 * torch.clamp(abs(({0}) - ({1})), max=1.0) ** 2 + abs(({0}) - ({1})) "
                            "- torch.clamp(abs(({0}) - ({1})), max=1.0)"}
NAMESPACES = ("torch", "F", "torch.nn.functional", "nn.functional")


@dataclass
class FullReduction:
    op: str  # mean | sum | batchmean
    inputs: list[str]
    stmt: str  # the C++ statement computing `acc_v` from v0, v1, ... and operands o0, o1, ...
    operands: list[Operand] = field(default_factory=list)
    original: str = ""  # the returned expression, for the fallback
    start: int = 0  # forward's statements [start, end) are replaced


class _MultiCompiler(_ExprCompiler):
    """The elementwise compiler with several variables: input i is `v{i}`."""

    def __init__(self, inputs: list[str], operands: list[Operand], ops: list[str]):
        super().__init__("", "", operands, ops, CPP)
        self.inputs = inputs

    def compile(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name) and node.id in self.inputs:
            return f"v{self.inputs.index(node.id)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                ast.unparse(node.func.value) not in NAMESPACES:  # method form: (a - b).abs() -> torch.abs(a - b)
            node = ast.Call(func=ast.Attribute(ast.Name("torch", ast.Load()), node.func.attr, ast.Load()),
                            args=[node.func.value, *node.args], keywords=node.keywords)
        return super().compile(node)


def _returned(forward: ast.FunctionDef) -> ast.AST | None:
    """The returned expression of `return e`, or of `v = e; return v` (the named form)."""
    body = [s for s in forward.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) == 1 and isinstance(body[0], ast.Return):
        return body[0].value
    if len(body) == 2 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1 \
            and isinstance(body[0].targets[0], ast.Name) and isinstance(body[1], ast.Return) \
            and isinstance(body[1].value, ast.Name) and body[1].value.id == body[0].targets[0].id:
        return body[0].value
    return None


def _kl_div(node: ast.Call) -> tuple[str, ast.AST] | None:
    """F.kl_div(input, target, reduction=...) (log_target False): sum of xlogy(t, t) - t * input,
    written t * (log(max(t, 1e-30)) - input) so t = 0 adds 0 as xlogy does (1e-30: a
    normal float, which -ffast-math does not flush to zero)."""
    kw = {k.arg: k.value for k in node.keywords}
    if len(node.args) != 2 or set(kw) - {"reduction"} or None in kw:
        return None
    red = kw.get("reduction", ast.Constant("mean"))
    if not isinstance(red, ast.Constant) or red.value not in ("mean", "sum", "batchmean"):
        return None
    a, b = (ast.unparse(x) for x in node.args)
    return red.value, ast.parse(f"({b}) * (torch.log(torch.clamp({b}, min=1e-30)) - ({a}))", mode="eval").body


def _reduction(node: ast.AST) -> tuple[str, ast.AST] | None:
    """(mean|sum|batchmean, the elementwise expression) for `torch.mean(e)`, `e.mean()`,
    `F.mse_loss(a, b)`, `F.kl_div(a, b, reduction=...)`..."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "kl_div" \
            and ast.unparse(node.func.value) in NAMESPACES:
        return _kl_div(node)
    if not isinstance(node, ast.Call) or node.keywords:
        return None
    f = node.func
    if not isinstance(f, ast.Attribute):
        return None
    namespace = ast.unparse(f.value) in NAMESPACES
    if f.attr in ("mean", "sum") and namespace and len(node.args) == 1:
        return f.attr, node.args[0]
    if f.attr in ("mean", "sum") and not namespace and not node.args:
        return f.attr, f.value
    if f.attr in LOSSES and namespace and len(node.args) == 2:
        a, b = (ast.unparse(x) for x in node.args)
        return "mean", ast.parse(LOSSES[f.attr].format(a, b), mode="eval").body
    return None


def find_full_reduction(forward: ast.FunctionDef) -> FullReduction | None:
    inputs = [a.arg for a in forward.args.args[1:]]
    returned = _returned(forward)
    found = _reduction(returned) if returned is not None and inputs else None
    if found is None:
        return None
    op, expr = found
    used = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} & set(inputs)
    if not used or forward.args.vararg or forward.args.kwarg or forward.args.kwonlyargs:
        return None
    operands: list[Operand] = []
    if len(inputs) > MAX_INPUTS:
        return None
    try:
        body = _MultiCompiler(inputs, operands, []).compile(expr)
    except NotElementwise:
        return None
    start = next(i for i, s in enumerate(forward.body) if not (isinstance(s, ast.Expr)
                                                               and isinstance(s.value, ast.Constant)))
    return FullReduction(op, inputs, f"acc += {body};", operands, ast.unparse(returned), start)


KERNEL = """
extern "C" double {name}(const float* const* in, const int64_t* rs, int64_t rows, int64_t cols, const float* ops) {{
  (void)ops;
  double total = 0.0;
  #pragma omp parallel for reduction(+:total) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {{
{row_loads}
{operands}
    float acc = 0.f;
    #pragma omp simd reduction(+:acc)
    for (int64_t c = 0; c < cols; ++c) {{
{loads}
      {stmt}
    }}
    total += (double)acc;
  }}
  return total;
}}
"""
MAX_INPUTS = 4  # one kernel per pattern of inputs read along the row or once per row: 2^k variants

RUNTIME = '''
_REDUCERS = {}


def _kopt_reduce(name, inputs, operands, op):
    """op (mean|sum) of the compiled expression over the broadcast inputs, or None."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs if isinstance(t, torch.Tensor)):
        return None
    if not all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu" for t in inputs):
        return None
    try:
        shape = torch.broadcast_shapes(*[t.shape for t in inputs])
    except RuntimeError:
        return None
    n = math.prod(shape)
    if n == 0 or len(shape) == 0:
        return None
    cols = shape[-1]
    rows = n // cols
    keep, rs, cs = [], [], []
    for t in inputs:
        aligned = (1,) * (len(shape) - t.dim()) + tuple(t.shape)
        if t.is_contiguous() and aligned == tuple(shape):
            keep.append(t); rs.append(cols); cs.append(1)
        elif t.numel() == cols and aligned[-1] == cols:
            keep.append(t.contiguous()); rs.append(0); cs.append(1)
        elif aligned[-1] == 1 and aligned[:-1] == tuple(shape[:-1]):  # one value per row
            keep.append(t.contiguous()); rs.append(1); cs.append(0)
        elif t.numel() == 1:
            keep.append(t.reshape(1).contiguous()); rs.append(0); cs.append(0)
        else:
            keep.append(t.expand(shape).contiguous()); rs.append(cols); cs.append(1)
    if all(r == cols and c == 1 for r, c in zip(rs, cs)) and cols > 4096 and n % 4096 == 0:
        rows, cols = n // 4096, 4096  # every input whole: rows of 4096 spread over the threads
        rs = [cols] * len(rs)
    vals = []
    for o in operands:
        if isinstance(o, torch.Tensor) and o.numel() == 1:
            vals.append(float(o))
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            vals.append(float(o))
        else:
            return None
    variant = f"{name}_m{sum(1 << i for i, c in enumerate(cs) if c)}"
    fn = _REDUCERS.get(variant)
    if fn is None:
        fn = getattr(_LIB, variant)
        fn.restype = ctypes.c_double
        _REDUCERS[variant] = fn
    ptrs = (ctypes.c_void_p * len(keep))(*[t.data_ptr() for t in keep])
    ops = (ctypes.c_float * max(1, len(vals)))(*vals)
    total = fn(ptrs, (ctypes.c_int64 * len(rs))(*rs), ctypes.c_int64(rows), ctypes.c_int64(cols), ops)
    if op == "batchmean":  # kl_div's: the sum over the first dim's size
        return torch.tensor(total / shape[0] if len(shape) else total, dtype=torch.float32)
    return torch.tensor(total / n if op == "mean" else total, dtype=torch.float32)
'''


def kernel_source(name: str, red: FullReduction) -> str:
    """One kernel per mask: bit i set = input i varies along the row (else one value per row)."""
    k = len(red.inputs)
    operands = "\n".join(f"    const float o{i} = ops[{i}];" for i in range(len(red.operands)))
    out = []
    for mask in range(1 << k):
        row_loads = "\n".join(f"    const float* __restrict p{i} = in[{i}] + r * rs[{i}];" if mask >> i & 1
                               else f"    const float v{i} = in[{i}][r * rs[{i}]];" for i in range(k))
        loads = "\n".join(f"      const float v{i} = p{i}[c];" for i in range(k) if mask >> i & 1)
        out.append(KERNEL.format(name=f"{name}_m{mask}", row_loads=row_loads, operands=operands, loads=loads,
                                 stmt=red.stmt))
    return "".join(out)


def generate(task_source: str, red: FullReduction, flags: tuple[str, ...], header: list[str], cls_src: str) -> str:
    """The solution: the C++ library, the runtime and ModelNew (`cls_src`, whose forward
    calls `_kopt_reduce` and falls back to `red.original`)."""
    lines = header + ["import ctypes", "import math", "import torch", "from kopt.sandboxes.native import load_cpp",
                      "", f"_FLAGS = {tuple(flags)!r}", f"_CPP = r'''{PRELUDE + kernel_source('reduce_0', red)}'''",
                      "_LIB = load_cpp(_CPP, _FLAGS)", RUNTIME, "", cls_src, ""]
    return "\n".join(dict.fromkeys(lines[: len(header) + 4])) + "\n" + "\n".join(lines[len(header) + 4:])


def forward_body(red: FullReduction) -> list[ast.stmt]:
    ins = ", ".join(red.inputs)
    ops = ", ".join(o.python for o in red.operands)
    return ast.parse(f"out = _kopt_reduce('reduce_0', [{ins}], [{ops}], {red.op!r})\n"
                     f"if out is None:\n    return {red.original}\nreturn out\n").body
