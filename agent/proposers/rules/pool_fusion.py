"""Rules that pool first and do the rest on the pooled values, in one pass over the large tensor.

`cpu-fuse-batch-norm-pool`: a training-mode BatchNorm followed by poolings (stride = kernel).
The normalisation is a per-channel affine map y = a x + b, and a non-overlapping average
commutes with it (avg(a x + b) = a avg(x) + b); a max does too where a >= 0 (where a < 0
it becomes a min). So one C++ pass per (sample, channel) plane sums the plane for the batch
statistics and pools the raw values (max and min both when a weight is negative); the affine
map then runs on the pooled tensor, 8-64x smaller. Eager PyTorch reads the large tensor
three times and writes it once (upstream level-2 #72: BatchNorm3d, then AvgPool3d(2) twice).

`cpu-fuse-pool-global-mean`: an optional scalar multiply / divide, poolings (stride =
kernel), then the mean (or sum) over all of space: one pass per plane that pools each
window and sums the pooled values, writing one number per plane instead of the pooled
tensor (upstream level-2 #8 and #96: x / d or x * s, MaxPool3d, AdaptiveAvgPool3d(1)).

Both read the statements (the AST); the generated method checks at run time what the
analysis cannot see (module types and settings, a training-mode BatchNorm, number operands,
that the mean covers every spatial dim) and otherwise runs the task's statements as written.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from kopt.agent.proposers.rules.batch_norm_train import RUNNING
from kopt.agent.proposers.rules.build_flags import BASE_FLAGS
from kopt.agent.proposers.rules.conv_mean import _assign, _pointwise_operand, _spatial_reduction, replace_regions
from kopt.agent.proposers.rules.forward_analysis import init_modules
from kopt.agent.proposers.rules.pool_chain import HELPER as POOL_WINDOW
from kopt.agent.proposers.rules.pool_chain import POOLS, self_module_call

BATCH_NORMS = ("BatchNorm2d", "BatchNorm3d")
GLOBAL_POOLS = ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d")


@dataclass(frozen=True)
class PoolRegion:
    start: int
    stop: int  # the statement after the region
    var: str
    pools: tuple[str, ...]  # "self.pool1", ...
    bn: str | None = None  # cpu-fuse-batch-norm-pool: "self.bn"
    op: str | None = None  # cpu-fuse-pool-global-mean: "*" | "/" before pooling, or None
    operand: str | None = None
    reduce: str = ""  # the spatial reduction: a global pooling module, or "('mean', dims, keepdim)"

    def summary(self) -> str:
        pools = " then ".join(self.pools)
        if self.bn:
            return f"{self.bn} (training mode) then {pools}: statistics and pooling in one pass, the affine on " \
                   f"the pooled values"
        pre = f"{self.var} {self.op} {self.operand}, " if self.op else ""
        return f"{pre}{pools} and the mean over space in one pass (one number per plane)"


def _module_call(stmt: ast.stmt, var: str, names) -> str | None:
    """'self.m' when stmt is `var = self.m(var)` for a module m among NAMES."""
    found = self_module_call(stmt, names)
    return f"self.{found[1]}" if found and found[0] == var else None


def _pools_from(body: list[ast.stmt], j: int, var: str, pools: dict) -> list[str]:
    found: list[str] = []
    while j < len(body) and (p := _module_call(body[j], var, pools)):
        found.append(p)
        j += 1
    return found


def _scalar_step(stmt: ast.stmt) -> tuple[str, str, str] | None:
    """(var, '*' or '/', operand) for `x = x * s`, `x = s * x`, `x = x / s` (s a number or self attribute)."""
    a = _assign(stmt)
    if a and isinstance(a[1], ast.BinOp) and isinstance(a[1].op, (ast.Mult, ast.Div)) \
            and (operand := _pointwise_operand(a[1], a[0])):
        return a[0], "*" if isinstance(a[1].op, ast.Mult) else "/", operand
    return None


def _global_mean(stmt: ast.stmt, var: str, globals_: dict) -> str | None:
    """The spatial reduction `stmt` applies to var: a global pooling module's expression, or a
    `('mean' | 'sum', dims, keepdim)` literal for torch.mean / torch.sum / x.mean / x.sum."""
    a = _assign(stmt)
    if a is None or a[0] != var:
        return None
    if module := _module_call(stmt, var, globals_):
        return module
    red = _spatial_reduction(a[1], var)
    if red is None or red[1] == "-1":
        return None
    return f"({red[0]!r}, {red[1]}, {red[2]})"


def find_regions(forward: ast.FunctionDef, cls: ast.ClassDef) -> list[PoolRegion]:
    """BatchNorm-then-pool and [scale]-pool-mean runs of forward's top-level statements."""
    pools = init_modules(cls, POOLS)
    bns = init_modules(cls, BATCH_NORMS)
    globals_ = init_modules(cls, GLOBAL_POOLS)
    body, out, i = forward.body, [], 0
    while i < len(body):
        a = _assign(body[i])
        var = a[0] if a else ""
        if (bn := _module_call(body[i], var, bns)) and (found := _pools_from(body, i + 1, var, pools)):
            out.append(PoolRegion(i, i + 1 + len(found), var, tuple(found), bn=bn))
            i += 1 + len(found)
            continue
        step = _scalar_step(body[i])
        j = i + 1 if step else i
        var = step[0] if step else var
        found = _pools_from(body, j, var, pools) if var else []
        red = _global_mean(body[j + len(found)], var, globals_) if found and j + len(found) < len(body) else None
        if red is not None:
            op, operand = (step[1], step[2]) if step else (None, None)
            out.append(PoolRegion(i, j + len(found) + 1, var, tuple(found), op=op, operand=operand, reduce=red))
            i = j + len(found) + 1
            continue
        i += 1
    return out


def method(region: PoolRegion, k: int, body: list[ast.stmt]) -> tuple[str, str]:
    original = textwrap.indent("\n".join(ast.unparse(s) for s in body[region.start: region.stop]), " " * 4)
    pools = ", ".join(region.pools) + ","
    if region.bn:
        call = f"_kopt_bn_pool({region.bn}, ({pools}), {region.var})"
    else:
        op = {"*": 1, "/": 2}.get(region.op or "", 0)
        call = f"_kopt_pool_mean({region.var}, ({pools}), {region.reduce}, {op}, {region.operand or 1.0})"
    name = f"_kopt_pool_fusion_{k}"
    return name, (f"def {name}(self, {region.var}):\n"
                  f"    _kopt_y = {call}\n"
                  f"    if _kopt_y is not None:\n        return _kopt_y\n"
                  f"{original}\n    return {region.var}\n")


def rewrite(task_source: str, regions: list[PoolRegion]) -> str:
    """The task's source (class still `Model`) with each region a call to a method that runs the
    fused kernel, or the region's statements where it does not apply."""
    return replace_regions(task_source, regions, method)


CPP = r"""
#include <cmath>
#include <cstdint>
#include <vector>

template <int OP> static inline float pre(float v, float s) { return OP == 1 ? v * s : OP == 2 ? v / s : v; }
static inline float vmax(float v, float m) { return ((v > m) | (v != v)) ? v : m; }  // NaN wins, as in PyTorch
static inline float vmin(float v, float m) { return ((v < m) | (v != v)) ? v : m; }

// One volume [D][H][W][C] (C = 1: a plane of a contiguous tensor; C = channels: a sample of a
// channels-last one) pooled by windows kd x kh x kw (stride = kernel, no padding) into
// hi [OD][OH][OW][C] (and the window minima into lo when given). `row` folds one output row's
// windows over D and H first (OW * kw * C values: rows are contiguous, so a straight loop).
template <int OP>
static void pool_volume(const float* p, int64_t H, int64_t W, int64_t C, int64_t OD, int64_t OH, int64_t OW,
                        int64_t kd, int64_t kh, int64_t kw, bool is_max, float s, float* hi, float* lo, float* row,
                        float* rlo) {
  const int64_t L = OW * kw * C;
  const float count = (float)(kd * kh * kw);
  for (int64_t od = 0; od < OD; ++od)
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t i = 0; i < L; ++i) row[i] = is_max ? -INFINITY : 0.f;
      if (lo) for (int64_t i = 0; i < L; ++i) rlo[i] = INFINITY;
      for (int64_t dd = 0; dd < kd; ++dd)
        for (int64_t hh = 0; hh < kh; ++hh) {
          const float* __restrict a = p + ((od * kd + dd) * H + oh * kh + hh) * W * C;
          if (!is_max) {
            for (int64_t i = 0; i < L; ++i) row[i] += pre<OP>(a[i], s);
            continue;
          }
          for (int64_t i = 0; i < L; ++i) row[i] = vmax(pre<OP>(a[i], s), row[i]);
          if (lo) for (int64_t i = 0; i < L; ++i) rlo[i] = vmin(pre<OP>(a[i], s), rlo[i]);
        }
      float* __restrict o = hi + (od * OH + oh) * OW * C;
      float* __restrict ol = lo ? lo + (od * OH + oh) * OW * C : nullptr;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const float* __restrict w0 = row + ow * kw * C;
        for (int64_t c = 0; c < C; ++c) {
          float m = w0[c];
          for (int64_t q = 1; q < kw; ++q) m = is_max ? vmax(w0[q * C + c], m) : m + w0[q * C + c];
          o[ow * C + c] = is_max ? m : m / count;
        }
        if (!ol) continue;
        const float* __restrict l0 = rlo + ow * kw * C;
        for (int64_t c = 0; c < C; ++c) {
          float m = l0[c];
          for (int64_t q = 1; q < kw; ++q) m = vmin(l0[q * C + c], m);
          ol[ow * C + c] = m;
        }
      }
    }
}

template <int OP>
static void pool_any(const float* p, const int64_t* g, bool is_max, float s, float* hi, float* lo, float* row,
                     float* rlo) {
  pool_volume<OP>(p, g[1], g[2], g[3], g[0] / g[4], g[1] / g[5], g[2] / g[6], g[4], g[5], g[6],
                  is_max, s, hi, lo, row, rlo);
}

// geometry g: D, H, W, C (1 for a contiguous tensor), kd, kh, kw. x holds `volumes` volumes
// [D][H][W][C]; means[v * C + c] = the mean of channel c's pooled values of pre(x) (op 0: x,
// 1: x * s, 2: x / s).
extern "C" int kopt_pool_mean(const float* x, float* means, int64_t volumes, const int64_t* g, int is_max, int op,
                              float s) {
  const int64_t C = g[3], OD = g[0] / g[4], OH = g[1] / g[5], OW = g[2] / g[6], P = OD * OH * OW;
  #pragma omp parallel
  {
    std::vector<float> row(OW * g[6] * C), pooled(P * C);
    std::vector<double> acc(C);
    #pragma omp for schedule(dynamic, 1)
    for (int64_t v = 0; v < volumes; ++v) {
      const float* p = x + v * g[0] * g[1] * g[2] * C;
      if (op == 1) pool_any<1>(p, g, is_max, s, pooled.data(), nullptr, row.data(), nullptr);
      else if (op == 2) pool_any<2>(p, g, is_max, s, pooled.data(), nullptr, row.data(), nullptr);
      else pool_any<0>(p, g, is_max, s, pooled.data(), nullptr, row.data(), nullptr);
      for (int64_t c = 0; c < C; ++c) acc[c] = 0.0;
      for (int64_t i = 0; i < P; ++i)
        for (int64_t c = 0; c < C; ++c) acc[c] += pooled[i * C + c];
      for (int64_t c = 0; c < C; ++c) means[v * C + c] = (float)(acc[c] / (double)P);
    }
  }
  return 0;
}

// x holds `volumes` volumes [D][H][W][C] of `channels` channels (C = 1: volume v is channel
// v % channels; C = channels: each volume holds them all). Each is pooled into hi (and lo,
// when given) and summed per channel into sums / sqs (value and square, shifted by the
// channel's first value in x: no cancellation).
extern "C" int kopt_bn_pool(const float* x, float* hi, float* lo, double* sums, double* sqs, int64_t volumes,
                            int64_t channels, const int64_t* g, int is_max) {
  const int64_t C = g[3], S = g[0] * g[1] * g[2], P = (g[0] / g[4]) * (g[1] / g[5]) * (g[2] / g[6]);
  #pragma omp parallel
  {
    std::vector<float> row((g[2] / g[6]) * g[6] * C), rlo(row.size()), fs(C), fq(C), k(C);
    #pragma omp for schedule(dynamic, 1)
    for (int64_t v = 0; v < volumes; ++v) {
      const float* __restrict p = x + v * S * C;
      for (int64_t c = 0; c < C; ++c) {
        k[c] = C == 1 ? x[(v % channels) * S] : x[c];
        sums[v * C + c] = 0.0;
        sqs[v * C + c] = 0.0;
      }
      for (int64_t b0 = 0; b0 < S; b0 += 2048) {
        const int64_t b1 = b0 + 2048 < S ? b0 + 2048 : S;
        for (int64_t c = 0; c < C; ++c) { fs[c] = 0.f; fq[c] = 0.f; }
        if (C == 1) {
          float a = 0.f, q = 0.f;
          const float k0 = k[0];
          #pragma omp simd reduction(+:a, q)
          for (int64_t i = b0; i < b1; ++i) { const float d = p[i] - k0; a += d; q += d * d; }
          fs[0] = a; fq[0] = q;
        } else {
          for (int64_t i = b0; i < b1; ++i) {
            const float* __restrict e = p + i * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; ++c) { const float d = e[c] - k[c]; fs[c] += d; fq[c] += d * d; }
          }
        }
        for (int64_t c = 0; c < C; ++c) { sums[v * C + c] += fs[c]; sqs[v * C + c] += fq[c]; }
      }
      pool_any<0>(p, g, is_max, 1.f, hi + v * P * C, lo ? lo + v * P * C : nullptr, row.data(), rlo.data());
    }
  }
  return 0;
}
"""

HELPER = f'''
import ctypes
import math

from kopt.sandboxes.native import load_cpp
{POOL_WINDOW}{RUNNING}
_PF_LIB = load_cpp(r"""{CPP}""", {tuple(BASE_FLAGS)!r})
_PF_LIB.kopt_pool_mean.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_void_p] + [ctypes.c_int] * 2 + \\
    [ctypes.c_float]
_PF_LIB.kopt_bn_pool.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 2 + [ctypes.c_void_p, ctypes.c_int]
_GLOBAL_POOLS = {{getattr(torch.nn, f"AdaptiveAvgPool{{n}}d"): n for n in (1, 2, 3)}}
_PF_LAST = {{4: torch.channels_last, 5: torch.channels_last_3d}}


def _kopt_pooled_plan(x, pools):
    """How the kernels read a float32 CPU x of shape (N, C, *space) pooled by POOLS (stride =
    kernel): (n, is_max, volumes, geometry: D, H, W, C per volume and the 3-D window as an
    int64 tensor, the pooled shape, channels_last) -- a contiguous x is N * C volumes of one
    channel, a channels-last one N volumes of C (no copy); or None."""
    found = _kopt_pool_window(x, pools)
    if found is None or not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu" \\
            or (torch.is_grad_enabled() and x.requires_grad):
        return None
    n, kind, window = found
    if x.dim() != n + 2 or x.numel() == 0:
        return None
    N, C, space = x.shape[0], x.shape[1], tuple(x.shape[2:])
    out = tuple(s // w for s, w in zip(space, window))
    if min(out) <= 0:
        return None
    last = not x.is_contiguous() and x.dim() in _PF_LAST and x.is_contiguous(memory_format=_PF_LAST[x.dim()])
    pad = (1,) * (3 - n)
    geometry = torch.tensor(pad + space + ((C,) if last else (1,)) + pad + window, dtype=torch.int64)
    return n, kind == "max", N if last else N * C, geometry, (N, C) + out, last


def _kopt_pool_mean(x, pools, reduce, op, operand):
    """The spatial mean (or sum) of pools(x), x multiplied (op 1) or divided (op 2) by a number
    first, in one pass; None (the caller runs its statements) for anything else."""
    plan = _kopt_pooled_plan(x, pools)
    if plan is None or isinstance(operand, bool) or not isinstance(operand, (int, float)):
        return None
    n, is_max, volumes, geometry, shape, last = plan
    if isinstance(reduce, torch.nn.Module):
        out = reduce.output_size if isinstance(reduce.output_size, (tuple, list)) else (reduce.output_size,) * n
        if _GLOBAL_POOLS.get(type(reduce)) != n or len(out) != n or any(o != 1 for o in out):
            return None
        how, keep = "mean", True
    else:
        how, dims, keep = reduce
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        if sorted(d % (n + 2) for d in dims) != list(range(2, n + 2)) or how not in ("mean", "sum"):
            return None
    if not last:
        x = x.contiguous()
    means = torch.empty(shape[:2], dtype=torch.float32)
    _PF_LIB.kopt_pool_mean(x.data_ptr(), means.data_ptr(), volumes, geometry.data_ptr(), int(is_max), op,
                           float(operand))
    if how == "sum":
        means = means * math.prod(shape[2:])
    return means.reshape(shape[:2] + (1,) * n) if keep else means


def _kopt_bn_pool(bn, pools, x):
    """pools(bn(x)) for a training-mode BatchNorm2d/3d: batch statistics and the pooled raw
    values in one pass, the per-channel affine on the pooled tensor (running statistics
    updated as PyTorch does); None (the caller runs its statements) for anything else."""
    plan = _kopt_pooled_plan(x, pools)
    if plan is None or type(bn) not in (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d) or \\
            not (bn.training or bn.running_mean is None) or x.shape[1] != bn.num_features:
        return None
    n, is_max, volumes, geometry, shape, last = plan
    w, b = bn.weight, bn.bias
    if x.dim() != (4 if type(bn) is torch.nn.BatchNorm2d else 5) or any(
            t is not None and (t.requires_grad and torch.is_grad_enabled() or t.dtype != torch.float32)
            for t in (w, b, bn.running_mean, bn.running_var)):
        return None
    N, C = shape[:2]
    S = math.prod(x.shape[2:])
    if N * S < 2:
        return None
    if not last:
        x = x.contiguous()
    pooled = (N,) + shape[2:] + (C,) if last else shape
    order = (0, n + 1) + tuple(range(1, n + 1)) if last else tuple(range(n + 2))
    hi = torch.empty(pooled, dtype=torch.float32)
    lo = torch.empty(pooled, dtype=torch.float32) if is_max and w is not None and bool((w < 0).any()) else None
    sums, sqs = torch.empty(N, C, dtype=torch.float64), torch.empty(N, C, dtype=torch.float64)
    _PF_LIB.kopt_bn_pool(x.data_ptr(), hi.data_ptr(), lo.data_ptr() if lo is not None else None, sums.data_ptr(),
                         sqs.data_ptr(), volumes, C, geometry.data_ptr(), int(is_max))
    m = N * S
    shift = x[(0, slice(None)) + (0,) * n].double()
    mu = sums.sum(0) / m
    var = (sqs.sum(0) / m - mu * mu).clamp_min(0.0)
    mean = shift + mu
    a = torch.rsqrt(var + bn.eps) * (w.detach().double() if w is not None else 1.0)
    c = (b.detach().double() if b is not None else 0.0) - mean * a
    view = (1, C) + (1,) * n
    a32, c32 = a.float().reshape(view), c.float().reshape(view)
    hi = hi.permute(order)
    y = torch.addcmul(c32, hi, a32)
    if lo is not None:
        y = torch.where(a32 >= 0, y, torch.addcmul(c32, lo.permute(order), a32))
    _kopt_bn_running(bn, mean.float(), var.float(), m)
    return y
'''
