"""Rule `cpu-dim-reduction`: max / min over one dim (values only: `[0]`, `.values`, amax,
amin) and argmax / argmin as one OpenMP C++ pass. The input is read as
[outer][reduced][inner]: with inner rows (a middle dim) each step is a vectorised
max-and-index over a block of 512 contiguous positions kept in cache; over the last dim,
16 lanes per row, combined at the end. Eager PyTorch's argmax over a middle dim and
max(dim) (which also writes the indices) walk the input with strides (upstream level-1
#51 on this CPU: 3.3 ms eager, 0.36 ms in this kernel, one thread; #49: 2.0 ms, 0.21 ms).

    return torch.argmax(x, dim=self.dim)   ->   return _kopt_reduce('argmax', x, dim=self.dim)

PyTorch's answers throughout: the first index of the extreme value, NaN propagates (and
argmax / argmin point at the first NaN). A dim that is not an int, other dtypes or
devices, autograd and empty inputs run the call as written.
"""
from __future__ import annotations

from kopt.agent.proposers.rules import values_reduction
from kopt.agent.proposers.rules.build_flags import BASE_FLAGS

DIRECT = ("argmax", "argmin", "amax", "amin")

CPP = r"""
#include <cstdint>

// better(v, m): v replaces the running extreme m (strictly better, or the first NaN)
#define KOPT_BETTER(v, m) (((is_max ? (v) > (m) : (v) < (m)) | (((v) != (v)) & ((m) == (m)))))

// x: [outer][R][inner] -> vals / idx: [outer][inner] (either may be null)
extern "C" int kopt_dim_reduce(const float* x, float* vals, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
                               int is_max) {
  if (inner == 1) {  // the last dim: 16 lanes per row, each keeps its first extreme
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const float* __restrict row = x + o * R;
      float acc[16];
      int64_t ai[16];
      const int lanes = R < 16 ? (int)R : 16;
      for (int l = 0; l < lanes; ++l) { acc[l] = row[l]; ai[l] = l; }
      int64_t r = lanes;
      for (; r + 16 <= R; r += 16)
        for (int l = 0; l < 16; ++l) {
          const float v = row[r + l], m = acc[l];
          const bool take = KOPT_BETTER(v, m);
          acc[l] = take ? v : m; ai[l] = take ? r + l : ai[l];
        }
      for (; r < R; ++r) {
        const float v = row[r], m = acc[0];
        if (KOPT_BETTER(v, m)) { acc[0] = v; ai[0] = r; }
      }
      int b = 0;
      for (int l = 1; l < lanes; ++l) {  // the better lane, the smaller index on a tie (or among NaNs)
        const bool nan_l = acc[l] != acc[l], nan_b = acc[b] != acc[b];
        const bool tie = (acc[l] == acc[b]) | (nan_l & nan_b);
        if (KOPT_BETTER(acc[l], acc[b]) || (tie && ai[l] < ai[b])) b = l;
      }
      if (vals) vals[o] = acc[b];
      if (idx) idx[o] = ai[b];
    }
    return 0;
  }
  const int64_t blocks = (inner + 511) / 512;
  #pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t o = t / blocks, i0 = (t % blocks) * 512, n = inner - i0 < 512 ? inner - i0 : 512;
    const float* src = x + o * R * inner + i0;
    float best[512];
    int64_t bi[512];
    for (int64_t i = 0; i < n; ++i) { best[i] = src[i]; bi[i] = 0; }
    for (int64_t r = 1; r < R; ++r) {
      const float* __restrict a = src + r * inner;
      if (idx) {
        for (int64_t i = 0; i < n; ++i) {
          const float v = a[i], m = best[i];
          const bool take = KOPT_BETTER(v, m);
          best[i] = take ? v : m; bi[i] = take ? r : bi[i];
        }
      } else {
        for (int64_t i = 0; i < n; ++i) { const float v = a[i], m = best[i]; best[i] = KOPT_BETTER(v, m) ? v : m; }
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      if (vals) vals[o * inner + i0 + i] = best[i];
      if (idx) idx[o * inner + i0 + i] = bi[i];
    }
  }
  return 0;
}
"""

HELPER = f'''
import ctypes
import math

from kopt.sandboxes.native import load_cpp

_REDUCE_LIB = load_cpp(r"""{CPP}""", {{flags}})
_REDUCE_LIB.kopt_dim_reduce.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int]
_KOPT_REDUCE_OPS = {{"max": (True, True, False), "min": (False, True, False), "amax": (True, True, False),
                    "amin": (False, True, False), "argmax": (True, False, True), "argmin": (False, False, True)}}


def _kopt_reduce(op, x, *args, **kwargs):
    """torch.<op>(x, dim, keepdim) by the C++ pass when it covers the call (max / min give
    their values only); anything else as written."""
    is_max, wants_vals, wants_idx = _KOPT_REDUCE_OPS[op]
    dim = kwargs.get("dim", args[0] if args else None)
    keepdim = kwargs.get("keepdim", args[1] if len(args) > 1 else False)
    if not isinstance(x, torch.Tensor) or type(dim) is not int or type(keepdim) is not bool \\
            or len(args) + len(kwargs) > 2 or not set(kwargs) <= {{"dim", "keepdim"}} or x.dim() == 0 \\
            or x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() == 0 \\
            or not -x.dim() <= dim < x.dim() or (wants_vals and torch.is_grad_enabled() and x.requires_grad):
        out = getattr(torch, op)(x, *args, **kwargs)
        return out[0] if op in ("max", "min") else out
    d = dim % x.dim()
    shape = list(x.shape)
    outer, size, inner = math.prod(shape[:d]), shape[d], math.prod(shape[d + 1:])
    kept = shape[:d] + ([1] if keepdim else []) + shape[d + 1:]
    x = x.contiguous()
    vals = torch.empty(kept, dtype=torch.float32) if wants_vals else None
    idx = torch.empty(kept, dtype=torch.int64) if wants_idx else None
    _REDUCE_LIB.kopt_dim_reduce(x.data_ptr(), vals.data_ptr() if vals is not None else None,
                                idx.data_ptr() if idx is not None else None, outer, size, inner, int(is_max))
    return vals if wants_vals else idx
'''


def rewrite(task_source: str) -> tuple[str, list[str], str] | None:
    """(the task's source, class still `Model`, with every values-only max/min and every
    argmax / argmin / amax / amin over a dim of forward through `_kopt_reduce`; the
    expressions rewritten; the helper to paste), or None."""
    found = values_reduction.rewrite(task_source, "_kopt_reduce", DIRECT)
    if found is None:
        return None
    return found[0], found[1], HELPER.replace("{flags}", repr(tuple(BASE_FLAGS)))
