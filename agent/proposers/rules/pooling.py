"""Rule `cpu-separable-pool`: a MaxPool / AvgPool 1d/2d/3d module called in forward as one
OpenMP C++ kernel that pools one axis at a time (max and sum are separable: a k x k x k
window is a k-window along D, then H, then W), each pass a contiguous loop the compiler
vectorises. Eager PyTorch visits the whole window per output (upstream level-1 #42 on this
CPU: torch.compile 10x over eager; #44: 2.1x).

    return self.maxpool(x)   ->   return _kopt_pool(self.maxpool, x)

The module's kernel, stride, padding, dilation, ceil_mode and (AvgPool) count_include_pad /
divisor_override are read at each call, with PyTorch's output sizes and divisors. NaN
propagates through max as in PyTorch (compiled without -ffast-math for that). return_indices,
autograd, other dtypes or devices, and arguments PyTorch would reject run the module.
"""
from __future__ import annotations

from kopt.agent.proposers.rules.build_flags import BASE_FLAGS
from kopt.agent.proposers.rules.forward_analysis import route_module_calls
from kopt.agent.proposers.rules.pool_chain import POOLS

CPP = r"""
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

// One axis: in is [outer][L][inner], out is [outer][OL][inner]; out[ol] reduces
// in[ol * s - p + kk * d] over kk. Loops run per kk over the outputs it reaches, so each is
// a straight (vectorisable) pass.
static void pool_axis(const float* in, float* out, int64_t outer, int64_t L, int64_t OL, int64_t inner, int64_t k,
                      int64_t s, int64_t p, int64_t d, bool is_max) {
  const float init = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
  for (int64_t o = 0; o < outer; ++o) {
    const float* __restrict src = in + o * L * inner;
    float* __restrict dst = out + o * OL * inner;
    for (int64_t i = 0; i < OL * inner; ++i) dst[i] = init;
    if (inner == 1 && s == 1) {  // contiguous: 64 outputs at a time, held in registers across the window
      for (int64_t b0 = 0; b0 < OL; b0 += 64) {
        const int64_t b1 = b0 + 64 < OL ? b0 + 64 : OL;
        if (b1 == b0 + 64 && b0 - p >= 0 && b1 - 1 + (k - 1) * d - p < L) {
          float acc[64];
          for (int i = 0; i < 64; ++i) acc[i] = init;
          for (int64_t kk = 0; kk < k; ++kk) {
            const float* __restrict a = src + b0 + kk * d - p;
            if (is_max) {
              for (int i = 0; i < 64; ++i) { const float v = a[i], m = acc[i]; acc[i] = ((v > m) | (v != v)) ? v : m; }
            } else {
              for (int i = 0; i < 64; ++i) acc[i] += a[i];
            }
          }
          for (int i = 0; i < 64; ++i) dst[b0 + i] = acc[i];
          continue;
        }
        for (int64_t kk = 0; kk < k; ++kk) {  // a block at an edge: only the taps inside the input
          const int64_t off = kk * d - p;
          const int64_t lo = b0 + off >= 0 ? b0 : -off, hi = L - off < b1 ? L - off : b1;
          const float* __restrict a = src + off;
          if (is_max) {
            for (int64_t ol = lo; ol < hi; ++ol) {
              const float v = a[ol], m = dst[ol];
              dst[ol] = ((v > m) | (v != v)) ? v : m;
            }
          } else {
            for (int64_t ol = lo; ol < hi; ++ol) dst[ol] += a[ol];
          }
        }
      }
      continue;
    }
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t off = kk * d - p;
      const int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
      int64_t hi = L - 1 - off >= 0 ? (L - 1 - off) / s + 1 : 0;
      if (hi > OL) hi = OL;
      if (inner == 1) {
        if (is_max) {
          for (int64_t ol = lo; ol < hi; ++ol) {
            const float v = src[ol * s + off], m = dst[ol];
            dst[ol] = ((v > m) | (v != v)) ? v : m;
          }
        } else {
          for (int64_t ol = lo; ol < hi; ++ol) dst[ol] += src[ol * s + off];
        }
        continue;
      }
      for (int64_t ol = lo; ol < hi; ++ol) {
        const float* __restrict a = src + (ol * s + off) * inner;
        float* __restrict b = dst + ol * inner;
        if (is_max) {
          for (int64_t i = 0; i < inner; ++i) { const float v = a[i], m = b[i]; b[i] = ((v > m) | (v != v)) ? v : m; }
        } else {
          for (int64_t i = 0; i < inner; ++i) b[i] += a[i];
        }
      }
    }
  }
}

// 1 / the divisor's share of one axis for each output position (0 where the window holds no input).
static std::vector<float> axis_scale(int64_t L, int64_t OL, int64_t k, int64_t s, int64_t p, bool include_pad,
                                     bool override_on) {
  std::vector<float> f(OL);
  for (int64_t o = 0; o < OL; ++o) {
    int64_t a = o * s - p, b = a + k < L + p ? a + k : L + p;
    const int64_t pool = b - a;
    a = a > 0 ? a : 0; b = b < L ? b : L;
    f[o] = b <= a ? 0.f : override_on ? 1.f : 1.f / (float)(include_pad ? pool : b - a);
  }
  return f;
}

// x: [planes][D][H][W] -> y: [planes][OD][OH][OW]; per axis (D, H, W): k, s, p, d.
// avg_mode: 0 max, 1 average counting the padding, 2 average of the inputs only;
// divisor > 0 overrides the average's divisor.
extern "C" int kopt_pool(const float* x, float* y, int64_t planes, const int64_t* in, const int64_t* out,
                         const int64_t* k, const int64_t* s, const int64_t* p, const int64_t* d, int avg_mode,
                         int64_t divisor) {
  const bool is_max = avg_mode == 0;
  const int64_t D = in[0], H = in[1], W = in[2], OD = out[0], OH = out[1], OW = out[2];
  bool pass[3];
  for (int a = 0; a < 3; ++a) pass[a] = !(k[a] == 1 && s[a] == 1 && p[a] == 0 && in[a] == out[a]);
  const int last = pass[2] ? 2 : pass[1] ? 1 : pass[0] ? 0 : -1;
  std::vector<float> fd, fh, fw;
  if (!is_max) {
    fd = axis_scale(D, OD, k[0], s[0], p[0], avg_mode == 1, divisor > 0);
    fh = axis_scale(H, OH, k[1], s[1], p[1], avg_mode == 1, divisor > 0);
    fw = axis_scale(W, OW, k[2], s[2], p[2], avg_mode == 1, divisor > 0);
  }
  const float over = divisor > 0 ? 1.f / (float)divisor : 1.f;
  #pragma omp parallel
  {
    std::vector<float> bd(OD * H * W), bh(OD * OH * W);
    #pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < planes; ++n) {
      const float* cur = x + n * D * H * W;
      float* dst = y + n * OD * OH * OW;
      if (last < 0) { std::memcpy(dst, cur, sizeof(float) * D * H * W); }
      // the axes with contiguous rows (D, then H) first, W on what is left
      if (pass[0]) {
        float* o = last == 0 ? dst : bd.data();
        pool_axis(cur, o, 1, D, OD, H * W, k[0], s[0], p[0], d[0], is_max);
        cur = o;
      }
      if (pass[1]) {
        float* o = last == 1 ? dst : bh.data();
        pool_axis(cur, o, OD, H, OH, W, k[1], s[1], p[1], d[1], is_max);
        cur = o;
      }
      if (pass[2]) pool_axis(cur, dst, OD * OH, W, OW, 1, k[2], s[2], p[2], d[2], is_max);
      if (!is_max) {
        for (int64_t a = 0; a < OD; ++a)
          for (int64_t b = 0; b < OH; ++b) {
            const float f = fd[a] * fh[b] * over;
            float* __restrict row = dst + (a * OH + b) * OW;
            for (int64_t c = 0; c < OW; ++c) row[c] *= f * fw[c];
          }
      }
    }
  }
  return 0;
}
"""

HELPER = f'''
import ctypes
import math

from kopt.sandboxes.native import load_cpp

_POOL_LIB = load_cpp(r"""{CPP}""", {{flags}})
_POOL_LIB.kopt_pool.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] + [ctypes.c_void_p] * 6 + [ctypes.c_int,
                                                                                                 ctypes.c_int64]
_POOL_KINDS = {{getattr(torch.nn, f"{{kind}}Pool{{n}}d"): (n, kind == "Max")
               for kind in ("Max", "Avg") for n in (1, 2, 3)}}


def _kopt_pool_size(length, k, s, p, d, ceil):
    """PyTorch's output size of one pooled axis."""
    out = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= length + p:
        out -= 1
    return out


def _kopt_pool(mod, x):
    """mod(x) for a MaxPool / AvgPool module by the separable kernel when it covers the call."""
    kind = _POOL_KINDS.get(type(mod))
    if kind is None or not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu" \\
            or (torch.is_grad_enabled() and x.requires_grad):
        return mod(x)
    nd, is_max = kind

    def axes(v):
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd
        return v if len(v) == nd and all(type(e) is int for e in v) else None

    k = axes(mod.kernel_size)
    s = axes(mod.stride if mod.stride is not None and mod.stride != [] and mod.stride != () else mod.kernel_size)
    p, d = axes(mod.padding), axes(mod.dilation) if is_max else (1,) * nd
    override = None if is_max else getattr(mod, "divisor_override", None)
    if None in (k, s, p, d) or x.dim() not in (nd + 1, nd + 2) or x.numel() == 0 or type(mod.ceil_mode) is not bool \\
            or (is_max and mod.return_indices) \\
            or (override is not None and (type(override) is not int or override <= 0)) \\
            or any(a <= 0 for a in k + s + d) or any(b < 0 or b > ((a - 1) * e + 1) // 2 for a, b, e in zip(k, p, d)):
        return mod(x)
    size = tuple(x.shape[-nd:])
    out = tuple(_kopt_pool_size(n, a, b, c, e, mod.ceil_mode) for n, a, b, c, e in zip(size, k, s, p, d))
    if any(o <= 0 for o in out):
        return mod(x)
    one, zero = (1,) * (3 - nd), (0,) * (3 - nd)  # a 1-D / 2-D pooling is a 3-D one with unit leading axes
    arrays = [torch.tensor(v, dtype=torch.int64) for v in
              (one + size, one + out, one + k, one + s, zero + p, one + d)]
    x = x.contiguous()
    y = torch.empty(tuple(x.shape[:-nd]) + out, dtype=torch.float32)
    mode = 0 if is_max else (1 if mod.count_include_pad else 2)
    _POOL_LIB.kopt_pool(x.data_ptr(), y.data_ptr(), x.numel() // math.prod(size), *(a.data_ptr() for a in arrays),
                        mode, override or 0)
    return y
'''


def rewrite(task_source: str) -> tuple[str, list[str], str] | None:
    """(the task's source, class still `Model`, with every call in forward of a pooling
    module through `_kopt_pool`; the calls routed; the helper to paste), or None."""
    routed = route_module_calls(task_source, set(POOLS), 1, "_kopt_pool")
    if routed is None:
        return None
    return routed[0], routed[2], HELPER.replace("{flags}", repr(tuple(BASE_FLAGS)))
