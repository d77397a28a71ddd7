"""Rule `cpu-fuse-norm-rescale`: a forward that divides its input by a norm or mean of
itself -- RMSNorm, L1 / L2 / Frobenius normalisation -- as one blocked OpenMP C++ pass:
the reduction and the rescale read each block while it is in cache, where eager PyTorch
writes |x| or x**2, reduces it and divides in separate passes over memory.

    rms = torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + self.eps); return x / rms
    return x / torch.norm(x, p=2, dim=1, keepdim=True)
    return x / torch.mean(torch.abs(x), dim=1, keepdim=True)
    norm = torch.norm(x, p='fro'); return x / norm

The denominator is g(reduce(f(x), dim)) with f one of x**2 / |x| (or a norm's), reduce a
mean or sum over one dim with keepdim (or over everything) and g built from +, -, *, /,
sqrt and numbers or attributes of self (read at each call). The generated forward tries
the kernel first -- float32 CPU tensors, an int dim, no autograd -- and otherwise runs the
task's statements as written.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

from kopt.agent.proposers.rules.forward_analysis import fast_path_first

NAMESPACES = ("torch",)
SQUARE, ABS = "v * v", "fabsf(v)"


@dataclass
class Rescale:
    var: str  # the input divided by its own norm
    f: str  # C++ of the reduced term from `v`
    mean: bool
    dim: str | None  # Python expression of the dim (None: every element)
    g: str  # C++ of the denominator from `r` (the reduction) and ops[i]
    operands: list[str] = field(default_factory=list)  # Python expressions of ops[i]


class _NotRescale(Exception):
    pass


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _kw(node: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in node.keywords if k.arg is not None}


def _term(node: ast.AST, var: str) -> str:
    """C++ of f(v) for x ** 2, x * x, torch.abs(x), x.abs(), torch.square(x), x.pow(2)."""
    is_var = lambda n: isinstance(n, ast.Name) and n.id == var  # noqa: E731
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and is_var(node.left) \
            and isinstance(node.right, ast.Constant) and node.right.value == 2:
        return SQUARE
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and is_var(node.left) and is_var(node.right):
        return SQUARE
    if isinstance(node, ast.Call) and not node.keywords:
        name, f = _call_name(node), node.func
        args = node.args if ast.unparse(f.value) in NAMESPACES else [f.value, *node.args]
        if name in ("abs", "square") and len(args) == 1 and is_var(args[0]):
            return ABS if name == "abs" else SQUARE
        if name == "pow" and len(args) == 2 and is_var(args[0]) and isinstance(args[1], ast.Constant) \
                and args[1].value == 2:
            return SQUARE
    raise _NotRescale


def _dim_of(call: ast.Call, args: list[ast.expr], position: int) -> str | None:
    """The dim of a reduction with keepdim=True, or None for a reduction over everything."""
    kw = _kw(call)
    if set(kw) - {"dim", "keepdim", "p"}:
        raise _NotRescale
    dim = kw.get("dim", args[position] if len(args) > position else None)
    if dim is None:
        if "keepdim" in kw or len(args) > position:
            raise _NotRescale
        return None
    keep = kw.get("keepdim", args[position + 1] if len(args) > position + 1 else None)
    if not (isinstance(keep, ast.Constant) and keep.value is True) or len(args) > position + 2:
        raise _NotRescale  # without keepdim the quotient broadcasts differently
    return ast.unparse(dim)


def _reduction(node: ast.AST, var: str) -> tuple[str, bool, str | None, str] | None:
    """(f, mean, dim, g applied to r) for torch.mean / sum of f(x), or torch.norm(x, p)."""
    name = _call_name(node)
    if name not in ("mean", "sum", "norm"):
        return None
    ns = ast.unparse(node.func.value) in NAMESPACES
    args = list(node.args) if ns else [node.func.value, *node.args]
    if not args:
        return None
    if name == "norm":
        if not (isinstance(args[0], ast.Name) and args[0].id == var):
            raise _NotRescale
        p = _kw(node).get("p", args[1] if len(args) > 1 else None)
        pv = p.value if isinstance(p, ast.Constant) else None
        if pv not in (1, 2, "fro", None) or (pv == "fro" and ("dim" in _kw(node) or len(args) > 2)):
            raise _NotRescale
        dim = _dim_of(node, args, 2)
        return (ABS, False, dim, "r") if pv == 1 else (SQUARE, False, dim, "sqrtf(r)")
    if "p" in _kw(node):
        raise _NotRescale
    return _term(args[0], var), name == "mean", _dim_of(node, args, 1), "r"


class _Scalar:
    """C++ of the denominator: the reduction is `r`, numbers inline, self.<attr> ops[i]."""

    OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

    def __init__(self, var: str) -> None:
        self.var, self.found, self.operands = var, None, []

    def compile(self, node: ast.AST) -> str:
        red = _reduction(node, self.var)
        if red is not None:
            if self.found is not None:
                raise _NotRescale
            self.found = red
            return f"({red[3]})"
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return f"{float(node.value)!r}f"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            self.operands.append(ast.unparse(node))
            return f"ops[{len(self.operands) - 1}]"
        if isinstance(node, ast.BinOp) and type(node.op) in self.OPS:
            return f"({self.compile(node.left)} {self.OPS[type(node.op)]} {self.compile(node.right)})"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) \
                and node.right.value == 0.5:
            return f"sqrtf({self.compile(node.left)})"
        if _call_name(node) == "sqrt" and ast.unparse(node.func.value) in NAMESPACES and len(node.args) == 1 \
                and not node.keywords:
            return f"sqrtf({self.compile(node.args[0])})"
        raise _NotRescale


def find_rescale(forward: ast.FunctionDef) -> Rescale | None:
    """`return x / DEN` or `d = DEN; return x / d`, x the forward's first argument."""
    body = [s for s in forward.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    params = [a.arg for a in forward.args.args[1:]]
    if not params or not body or not isinstance(body[-1], ast.Return):
        return None
    ret = body[-1].value
    if not (isinstance(ret, ast.BinOp) and isinstance(ret.op, ast.Div) and isinstance(ret.left, ast.Name)
            and ret.left.id == params[0]):
        return None
    den = ret.right
    if len(body) == 2:
        s = body[0]
        if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                and isinstance(den, ast.Name) and den.id == s.targets[0].id != params[0]):
            return None
        den = s.value
    elif len(body) != 1:
        return None
    scalar = _Scalar(params[0])
    try:
        g_outer = scalar.compile(den)
    except _NotRescale:
        return None
    if scalar.found is None:
        return None
    f, mean, dim, _ = scalar.found
    return Rescale(params[0], f, mean, dim, g_outer, scalar.operands)


CPP = r"""
#include <cmath>
#include <cstdint>

static inline float term(float v) { return TERM; }
static inline float denom(double r_, const float* ops) { (void)ops; const float r = (float)r_; return DENOM; }

extern "C" int kopt_rescale(const float* x, float* y, int64_t outer, int64_t D, int64_t inner, const float* ops) {
  const double n = MEAN ? (double)D : 1.0;
  if (inner == 1 && outer == 1) {  // one reduction over everything
    double total = 0.0;
    #pragma omp parallel for reduction(+:total) schedule(static)
    for (int64_t b = 0; b < D; b += 4096) {
      const int64_t e = b + 4096 < D ? b + 4096 : D;
      float acc = 0.f;
      #pragma omp simd reduction(+:acc)
      for (int64_t i = b; i < e; ++i) acc += term(x[i]);
      total += (double)acc;
    }
    const float s = 1.0f / denom(total / n, ops);
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < D; ++i) y[i] = x[i] * s;
  } else if (inner == 1) {  // contiguous rows: reduce the row, rescale it while it is in cache
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const float* __restrict p = x + o * D;
      float* __restrict q = y + o * D;
      double total = 0.0;
      for (int64_t b = 0; b < D; b += 4096) {
        const int64_t e = b + 4096 < D ? b + 4096 : D;
        float acc = 0.f;
        #pragma omp simd reduction(+:acc)
        for (int64_t i = b; i < e; ++i) acc += term(p[i]);
        total += (double)acc;
      }
      const float s = 1.0f / denom(total / n, ops);
      #pragma omp simd
      for (int64_t i = 0; i < D; ++i) q[i] = p[i] * s;
    }
  } else {  // reduce over a strided dim: blocks of BLK positions, D rows each
    const int64_t BLK = 256, nb = (inner + BLK - 1) / BLK;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < outer * nb; ++t) {
      const int64_t o = t / nb, j0 = (t % nb) * BLK, len = inner - j0 < BLK ? inner - j0 : BLK;
      double acc[256];
      float part[256], s[256];
      for (int64_t j = 0; j < len; ++j) acc[j] = 0.0;
      for (int64_t d0 = 0; d0 < D; d0 += 64) {
        const int64_t d1 = d0 + 64 < D ? d0 + 64 : D;
        for (int64_t j = 0; j < len; ++j) part[j] = 0.f;
        for (int64_t d = d0; d < d1; ++d) {
          const float* __restrict p = x + (o * D + d) * inner + j0;
          #pragma omp simd
          for (int64_t j = 0; j < len; ++j) part[j] += term(p[j]);
        }
        for (int64_t j = 0; j < len; ++j) acc[j] += (double)part[j];
      }
      for (int64_t j = 0; j < len; ++j) s[j] = 1.0f / denom(acc[j] / n, ops);
      for (int64_t d = 0; d < D; ++d) {
        const float* __restrict p = x + (o * D + d) * inner + j0;
        float* __restrict q = y + (o * D + d) * inner + j0;
        #pragma omp simd
        for (int64_t j = 0; j < len; ++j) q[j] = p[j] * s[j];
      }
    }
  }
  return 0;
}
"""

RUNTIME = '''
import ctypes
import math

from kopt.sandboxes.native import load_cpp

_RS_LIB = load_cpp(r"""{cpp}""", {flags})
_RS_LIB.kopt_rescale.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 3 + [ctypes.c_void_p]


def _kopt_rescale(x, dim, operands):
    """x divided by g(reduction of f(x) over dim) by the blocked kernel, or None when this
    call is outside it (the task's statements then run)."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() == 0 \\
            or x.numel() == 0 or (torch.is_grad_enabled() and x.requires_grad):
        return None
    if dim is None:
        outer, d, inner = 1, x.numel(), 1
    elif type(dim) is int and -x.dim() <= dim < x.dim():
        k = dim % x.dim()
        outer, d, inner = math.prod(x.shape[:k]), x.shape[k], math.prod(x.shape[k + 1:])
    else:
        return None
    vals = []
    for o in operands:
        if isinstance(o, torch.Tensor) and o.numel() == 1 and not o.requires_grad:
            vals.append(float(o))
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            vals.append(float(o))
        else:
            return None
    x = x.contiguous()
    y = torch.empty_like(x)
    ops = (ctypes.c_float * max(1, len(vals)))(*vals)
    _RS_LIB.kopt_rescale(x.data_ptr(), y.data_ptr(), outer, d, inner, ops)
    return y
'''


def rewrite(task_source: str, flags: tuple[str, ...]) -> tuple[str, Rescale, str] | None:
    """(the task's source, class still `Model`, whose forward tries `_kopt_rescale` first;
    what was found; the helper to paste), or None."""
    done = fast_path_first(task_source, find_rescale,
                           lambda f: f"_kopt_rescale({f.var}, {f.dim}, [{', '.join(f.operands)}])")
    if done is None:
        return None
    found = done[1]
    cpp = CPP.replace("TERM", found.f).replace("DENOM", found.g).replace("MEAN", "true" if found.mean else "false")
    helper = RUNTIME.replace("{cpp}", cpp).replace("{flags}", repr(tuple(flags)))
    return done[0], found, helper
