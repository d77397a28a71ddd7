"""Rule `cpu-fuse-scan`: a cumulative sum / product of a flipped or masked input as one
C++ scan. Eager PyTorch copies the flipped input, scans it and copies the result flipped
back (three passes, two temporaries), or writes `x * mask` before scanning it; the kernel
scans from the end, or multiplies by the mask, as it reads.

    return torch.cumsum(x.flip(self.dim), dim=self.dim).flip(self.dim)   # reverse cumsum
    return torch.cumsum(x * mask, dim=self.dim)                           # masked cumsum

The accumulator is a double, in the order PyTorch's CPU scan adds (its float accumulator
type is double), so results match to the last bit. Rows along the last dim are scanned one
per thread; a strided dim is scanned for 256 positions at once. Autograd, other dtypes or
devices, a mask that broadcasts or a dim that is not an int run the task's expression.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from kopt.agent.proposers.rules.forward_analysis import fast_path_first

NAMESPACES = ("torch",)


@dataclass
class Scan:
    op: str  # cumsum | cumprod
    x: str
    mask: str | None
    dim: str
    reverse: bool
    original: str


def _args(node: ast.AST, name: str) -> tuple[ast.expr, list[ast.expr], dict[str, ast.expr]] | None:
    """(receiver or first argument, other positional args, keywords) of torch.name(...) / t.name(...)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name):
        return None
    if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    kw = {k.arg: k.value for k in node.keywords}
    if ast.unparse(node.func.value) in NAMESPACES:
        return (node.args[0], list(node.args[1:]), kw) if node.args else None
    return node.func.value, list(node.args), kw


def _one_dim(node: ast.expr) -> str:
    if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) == 1:
        node = node.elts[0]
    return ast.unparse(node)


def _flip(node: ast.AST) -> tuple[ast.expr, str] | None:
    found = _args(node, "flip")
    if found is None:
        return None
    x, args, kw = found
    dims = kw.get("dims", args[0] if len(args) == 1 else None)
    if dims is None or len(args) + len(kw) != 1 or set(kw) - {"dims"}:
        return None
    return x, _one_dim(dims)


def find_scan(forward: ast.FunctionDef) -> Scan | None:
    body = [s for s in forward.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    params = [a.arg for a in forward.args.args[1:]]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    ret = body[0].value
    outer = _flip(ret)
    node = outer[0] if outer else ret
    for op in ("cumsum", "cumprod"):
        found = _args(node, op)
        if found is not None:
            break
    else:
        return None
    arg, args, kw = found
    dim = kw.get("dim", args[0] if len(args) == 1 else None)
    if dim is None or len(args) + len(kw) != 1 or set(kw) - {"dim"}:
        return None
    dim_s = _one_dim(dim)
    inner = _flip(arg)
    if (inner is None) != (outer is None) or inner and not (inner[1] == outer[1] == dim_s):
        return None
    core = inner[0] if inner else arg
    names = lambda n: isinstance(n, ast.Name) and n.id in params  # noqa: E731
    if names(core):
        x, mask = core.id, None
    elif isinstance(core, ast.BinOp) and isinstance(core.op, ast.Mult) and names(core.left) and names(core.right) \
            and core.left.id != core.right.id:
        x, mask = core.left.id, core.right.id
    else:
        return None
    if mask is None and inner is None:
        return None  # a plain scan: the kernel would only match eager's
    return Scan(op, x, mask, dim_s, inner is not None, ast.unparse(ret))


CPP = r"""
#include <cstdint>

template <bool PROD, int MASK, bool REV>
static void scan(const float* x, const void* mv, float* y, int64_t outer, int64_t n, int64_t inner) {
  const unsigned char* mb = (const unsigned char*)mv;
  const float* mf = (const float*)mv;
  auto val = [&](int64_t i) -> double {
    const float v = MASK == 1 ? (mb[i] ? x[i] : 0.f) : MASK == 2 ? x[i] * mf[i] : x[i];
    return (double)v;
  };
  if (inner == 1) {
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      double acc = PROD ? 1.0 : 0.0;
      const int64_t base = o * n;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = base + (REV ? n - 1 - k : k);
        acc = PROD ? acc * val(i) : acc + val(i);
        y[i] = (float)acc;
      }
    }
    return;
  }
  const int64_t BLK = 256, nb = (inner + BLK - 1) / BLK;
  #pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < outer * nb; ++t) {
    const int64_t o = t / nb, j0 = (t % nb) * BLK, len = inner - j0 < BLK ? inner - j0 : BLK;
    double acc[256];
    for (int64_t j = 0; j < len; ++j) acc[j] = PROD ? 1.0 : 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t row = (o * n + (REV ? n - 1 - k : k)) * inner + j0;
      for (int64_t j = 0; j < len; ++j) {
        acc[j] = PROD ? acc[j] * val(row + j) : acc[j] + val(row + j);
        y[row + j] = (float)acc[j];
      }
    }
  }
}

extern "C" int kopt_scan(const float* x, const void* m, float* y, int64_t outer, int64_t n, int64_t inner,
                         int prod, int mask, int rev) {
  const int key = prod * 6 + mask * 2 + rev;
  switch (key) {
#define K(P, M, R) case P * 6 + M * 2 + R: scan<P, M, R>(x, m, y, outer, n, inner); return 0;
    K(0, 0, 0) K(0, 0, 1) K(0, 1, 0) K(0, 1, 1) K(0, 2, 0) K(0, 2, 1)
    K(1, 0, 0) K(1, 0, 1) K(1, 1, 0) K(1, 1, 1) K(1, 2, 0) K(1, 2, 1)
#undef K
  }
  return 1;
}
"""

RUNTIME = '''
import ctypes
import math

from kopt.sandboxes.native import load_cpp

_SCAN_LIB = load_cpp(r"""{cpp}""", {flags})
_SCAN_LIB.kopt_scan.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int] * 3


def _kopt_scan(op, x, mask, dim, reverse):
    """The (reverse, masked) cumsum / cumprod of x along dim by the kernel, or None when
    this call is outside it (the task's expression then runs)."""
    ts = [x] if mask is None else [x, mask]
    if not all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in ts) or x.dtype != torch.float32 \\
            or type(dim) is not int or x.dim() == 0 or not -x.dim() <= dim < x.dim() or x.numel() == 0 \\
            or (torch.is_grad_enabled() and any(t.requires_grad for t in ts)):
        return None
    kind = 0
    if mask is not None:
        if mask.shape != x.shape or mask.dtype not in (torch.bool, torch.float32):
            return None
        kind = 1 if mask.dtype == torch.bool else 2
        mask = mask.contiguous()
    k = dim % x.dim()
    x = x.contiguous()
    y = torch.empty_like(x)
    _SCAN_LIB.kopt_scan(x.data_ptr(), mask.data_ptr() if mask is not None else None, y.data_ptr(),
                        math.prod(x.shape[:k]), x.shape[k], math.prod(x.shape[k + 1:]), int(op == "cumprod"), kind,
                        int(reverse))
    return y
'''


def rewrite(task_source: str, flags: tuple[str, ...]) -> tuple[str, Scan, str] | None:
    """(the task's source, class still `Model`, whose forward tries `_kopt_scan` first; what
    was found; the helper to paste), or None."""
    done = fast_path_first(task_source, find_scan,
                           lambda f: f"_kopt_scan({f.op!r}, {f.x}, {f.mask}, {f.dim}, {f.reverse})")
    if done is None:
        return None
    helper = RUNTIME.replace("{cpp}", CPP).replace("{flags}", repr(tuple(flags)))
    return done[0], done[1], helper
