"""Rule `cpu-fuse-cross-entropy`: F.cross_entropy(logits, targets) over class indices as
one C++ pass per row -- max, sum of exp(x - max) and the target's logit while the row is
in cache -- where eager PyTorch writes the whole log_softmax and then gathers from it.

    return torch.nn.functional.cross_entropy(predictions, targets)    # reduction mean / sum

Only 2-D float32 logits with int64 targets take the kernel; class weights, label
smoothing, probabilities as targets, a target outside [0, classes) (ignore_index among
them), autograd, other dtypes or devices run the task's call.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from kopt.agent.proposers.rules.forward_analysis import fast_path_first

NAMESPACES = ("F", "torch.nn.functional", "nn.functional")


@dataclass
class CrossEntropy:
    logits: str
    targets: str
    reduction: str


def find_cross_entropy(forward: ast.FunctionDef) -> CrossEntropy | None:
    body = [s for s in forward.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    params = [a.arg for a in forward.args.args[1:]]
    if len(body) == 2 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1 \
            and isinstance(body[1], ast.Return) and ast.unparse(body[1].value or ast.Constant(None)) \
            == ast.unparse(body[0].targets[0]):
        body = [ast.Return(body[0].value)]  # the named form: `v = F.cross_entropy(...); return v`
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return None
    call = body[0].value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "cross_entropy"
            and ast.unparse(call.func.value) in NAMESPACES and len(call.args) == 2):
        return None
    if not all(isinstance(a, ast.Name) and a.id in params for a in call.args):
        return None
    kw = {k.arg: k.value for k in call.keywords}
    if None in kw or set(kw) - {"reduction"}:
        return None
    red = kw.get("reduction", ast.Constant("mean"))
    if not (isinstance(red, ast.Constant) and red.value in ("mean", "sum")):
        return None
    return CrossEntropy(call.args[0].id, call.args[1].id, red.value)


CPP = r"""
#include <cfloat>
#include <cmath>
#include <cstdint>

extern "C" double kopt_cross_entropy(const float* x, const int64_t* t, int64_t n, int64_t c, int* bad) {
  double total = 0.0;
  int outside = 0;
  #pragma omp parallel for reduction(+:total) reduction(|:outside) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t k = t[r];
    if (k < 0 || k >= c) { outside = 1; continue; }
    const float* __restrict p = x + r * c;
    float m = -FLT_MAX;
    #pragma omp simd reduction(max:m)
    for (int64_t i = 0; i < c; ++i) m = p[i] > m ? p[i] : m;
    float s = 0.f;
    #pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < c; ++i) s += expf(p[i] - m);
    total += (double)(logf(s) + m - p[k]);
  }
  *bad = outside;
  return total;
}
"""

RUNTIME = '''
import ctypes

from kopt.sandboxes.native import load_cpp

_CE_LIB = load_cpp(r"""{cpp}""", {flags})
_CE_LIB.kopt_cross_entropy.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 2 + [ctypes.c_void_p]
_CE_LIB.kopt_cross_entropy.restype = ctypes.c_double


def _kopt_cross_entropy(x, t, reduction):
    """The mean / sum cross entropy of 2-D logits against class indices by the kernel, or
    None when this call is outside it (the task's call then runs)."""
    if not (isinstance(x, torch.Tensor) and isinstance(t, torch.Tensor)) or x.dtype != torch.float32 \\
            or t.dtype != torch.int64 or x.device.type != "cpu" or t.device.type != "cpu" or x.dim() != 2 \\
            or t.shape != x.shape[:1] or x.shape[0] == 0 or x.shape[1] == 0 \\
            or (torch.is_grad_enabled() and x.requires_grad):
        return None
    x, t = x.contiguous(), t.contiguous()
    bad = ctypes.c_int(0)
    total = _CE_LIB.kopt_cross_entropy(x.data_ptr(), t.data_ptr(), x.shape[0], x.shape[1], ctypes.byref(bad))
    if bad.value:
        return None
    return torch.tensor(total / x.shape[0] if reduction == "mean" else total, dtype=torch.float32)
'''


def rewrite(task_source: str, flags: tuple[str, ...]) -> tuple[str, CrossEntropy, str] | None:
    """(the task's source, class still `Model`, whose forward tries the kernel first; what
    was found; the helper to paste), or None."""
    done = fast_path_first(task_source, find_cross_entropy,
                           lambda f: f"_kopt_cross_entropy({f.logits}, {f.targets}, {f.reduction!r})")
    if done is None:
        return None
    return done[0], done[1], RUNTIME.replace("{cpp}", CPP).replace("{flags}", repr(tuple(flags)))
