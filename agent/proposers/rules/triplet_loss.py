"""Rule `cpu-fuse-triplet-loss`: an nn.TripletMarginLoss module call as one C++ pass per
row over anchor, positive and negative -- both squared distances, the roots and the hinge
in registers -- where eager PyTorch writes a - p + eps and a - n + eps, their norms and the
hinge as separate tensors.

    return self.loss_fn(anchor, positive, negative)   ->   _kopt_triplet(self.loss_fn, anchor, positive, negative)

The module's margin, eps, p, swap and reduction are read at each call: p = 2, no swap,
reduction mean / sum and 2-D float32 inputs of one shape take the kernel; anything else,
and autograd, run the module.
"""
from __future__ import annotations

from kopt.agent.proposers.rules.forward_analysis import route_module_calls

CPP = r"""
#include <cmath>
#include <cstdint>

extern "C" double kopt_triplet(const float* a, const float* p, const float* n, int64_t rows, int64_t d, float margin,
                               float eps) {
  double total = 0.0;
  #pragma omp parallel for reduction(+:total) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict pa = a + r * d;
    const float* __restrict pp = p + r * d;
    const float* __restrict pn = n + r * d;
    double sp = 0.0, sn = 0.0;
    for (int64_t b = 0; b < d; b += 2048) {
      const int64_t e = b + 2048 < d ? b + 2048 : d;
      float fp = 0.f, fn = 0.f;
      #pragma omp simd reduction(+:fp, fn)
      for (int64_t i = b; i < e; ++i) {
        const float u = pa[i] - pp[i] + eps, v = pa[i] - pn[i] + eps;
        fp += u * u; fn += v * v;
      }
      sp += fp; sn += fn;
    }
    const double h = std::sqrt(sp) - std::sqrt(sn) + (double)margin;
    total += h > 0.0 ? h : 0.0;
  }
  return total;
}
"""

RUNTIME = '''
import ctypes

from kopt.sandboxes.native import load_cpp

_TRIPLET_LIB = load_cpp(r"""{cpp}""", {flags})
_TRIPLET_LIB.kopt_triplet.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2 + [ctypes.c_float] * 2
_TRIPLET_LIB.kopt_triplet.restype = ctypes.c_double


def _kopt_triplet(mod, a, p, n):
    """mod(a, p, n) for a TripletMarginLoss by the fused kernel when it covers the call."""
    ts = (a, p, n)
    if type(mod) is not torch.nn.TripletMarginLoss or mod.p != 2 or mod.swap or mod.reduction not in ("mean", "sum") \\
            or not all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
                       and t.dim() == 2 and t.shape == a.shape for t in ts) or a.numel() == 0 \\
            or (torch.is_grad_enabled() and any(t.requires_grad for t in ts)):
        return mod(a, p, n)
    a, p, n = (t.contiguous() for t in ts)
    total = _TRIPLET_LIB.kopt_triplet(a.data_ptr(), p.data_ptr(), n.data_ptr(), a.shape[0], a.shape[1],
                                      float(mod.margin), float(mod.eps))
    return torch.tensor(total / a.shape[0] if mod.reduction == "mean" else total, dtype=torch.float32)
'''


def rewrite(task_source: str, flags: tuple[str, ...]) -> tuple[str, list[str], str] | None:
    """(the task's source, class still `Model`, with every TripletMarginLoss call of forward
    through `_kopt_triplet`; the modules; the helper to paste), or None."""
    routed = route_module_calls(task_source, {"TripletMarginLoss"}, 3, "_kopt_triplet")
    if routed is None:
        return None
    helper = RUNTIME.replace("{cpp}", CPP).replace("{flags}", repr(tuple(flags)))
    return routed[0], routed[2], helper
