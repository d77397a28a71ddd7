"""The `rules` proposer's kernels for `--device cuda`: the same fusions as the CPU
templates (`cpu_codegen`, `cpu_norm_codegen`), written for the GPU.

- `backend="cuda"`: each elementwise run is one grid-stride CUDA kernel built with
  `load_inline`; the CUDA unit carries no torch headers (nvcc compiles it in about a
  second, and `--compile-only` checks it on a machine without a GPU), the torch-facing
  wrapper is in `cpp_sources` and launches on torch's current stream.
- `backend="triton"`: elementwise runs and norms with their elementwise neighbours
  (GroupNorm, InstanceNorm, LayerNorm, last-dim softmax / log_softmax) as Triton kernels,
  one program per row or (sample, group): statistics passes, then normalise + the
  elementwise tail in one write. Triton runs on the CPU under TRITON_INTERPRET=1, so the
  evaluator checks these for correctness without a GPU.

Operands (`self.<attr>` numbers or per-channel tensors) go in as tensors on x's device with
a stride of 0 (one number) or 1 (per channel / per element of the normalised region). The
norm glue reuses the CPU one's module reading (`cpu_norm_runtime.SHARED`) and falls back to
the task's own statements for any call outside what the kernels handle.
"""
from __future__ import annotations

import ast
import hashlib

from kopt.agent.proposers.rules.channel_layout import CHANNEL_LAYOUT, or_original
from kopt.agent.proposers.rules.cpu_codegen import rewrite_forward
from kopt.agent.proposers.rules.cpu_norm_analysis import NormRun
from kopt.agent.proposers.rules.cpu_norm_runtime import SHARED
from kopt.agent.proposers.rules.forward_analysis import (
    TRITON,
    FusedRun,
    Operand,
    compile_statement,
    forward_of,
    model_class,
)

# the inline math of `cpu_math` as device functions (the accurate CUDA library versions)
CUDA_PRELUDE = r"""
#include <cuda_runtime.h>
#include <cfloat>

__device__ __forceinline__ float kexp(float x) { return expf(x); }
__device__ __forceinline__ float ktanh(float x) { return tanhf(x); }
__device__ __forceinline__ float kerf(float x) { return erff(x); }
__device__ __forceinline__ float kmish(float x) {
  const float e = expf(fminf(x, 20.0f));
  const float n = e * (e + 2.0f);
  return x > 20.0f ? x : x * n / (n + 2.0f);
}
"""

CUDA_KERNEL = """
__global__ void {name}_kernel(float* __restrict__ out, const float* __restrict__ in, long long n, long long inner,
                              long long channels{params}) {{
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {{
    const long long c = (i / inner) % channels;
    (void)c;
{loads}
    float v = in[i];
{body}
    out[i] = v;
  }}
}}

void {name}_launch(float* out, const float* in, long long n, long long inner, long long channels{params},
                   cudaStream_t stream) {{
  const int threads = 256;
  long long blocks = (n + threads - 1) / threads;
  blocks = blocks < 1 ? 1 : (blocks > 65535LL * 32 ? 65535LL * 32 : blocks);
  {name}_kernel<<<(unsigned)blocks, threads, 0, stream>>>(out, in, n, inner, channels{args});
}}
"""

CPP_WRAPPER = """
void {name}_launch(float* out, const float* in, long long n, long long inner, long long channels{params},
                   cudaStream_t stream);

torch::Tensor {name}(torch::Tensor out, torch::Tensor in, int64_t inner, int64_t channels,
                     std::vector<torch::Tensor> ops, std::vector<int64_t> strides) {{
  TORCH_CHECK(in.is_cuda() && ops.size() == {k} && strides.size() == {k}, "{name}: bad arguments");
  {name}_launch(out.data_ptr<float>(), in.data_ptr<float>(), in.numel(), inner, channels{call},
                at::cuda::getCurrentCUDAStream());
  return out;
}}
"""

TRITON_HELPERS = '''
@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _mish(x):
    e = tl.exp(tl.minimum(x, 20.0))
    n = e * (e + 2.0)
    return tl.where(x > 20.0, x, x * n / (n + 2.0))
'''

TRITON_FUSED = '''
@triton.jit
def {name}(out_ptr, in_ptr, n, inner, channels{params}, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    c = (i // inner) % channels
{loads}
    v = tl.load(in_ptr + i, mask=m, other=0.0)
{body}
    tl.store(out_ptr + i, v, mask=m)
'''

# one program per row of L floats; operands and the affine parameters are read at
# (r % R) * L + j, so GroupNorm's per-channel values line up with the row's group
_ROW_LOOP = """    for j0 in range(0, L, BLOCK):
        j = j0 + tl.arange(0, BLOCK)
        m = j < L
        v = tl.load(x_ptr + base + j, mask=m, other=0.0)
{loads}
{pre}"""
TRITON_NORM = '''
@triton.jit
def {name}(out_ptr, x_ptr, L, R, eps, w_ptr, b_ptr{params}, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    base = r * L
    off = (r % R) * L
{body}
'''
NORM_BODY = """    acc = tl.zeros([BLOCK], dtype=tl.float32)
{loop}
        acc += tl.where(m, v, 0.0)
    mean = tl.sum(acc, axis=0) / L
    acc = tl.zeros([BLOCK], dtype=tl.float32)
{loop}
        d = tl.where(m, v - mean, 0.0)
        acc += d * d
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / L + eps)
{loop}
        v = (v - mean) * rstd * tl.load(w_ptr + off + j, mask=m, other=1.0) + tl.load(b_ptr + off + j, mask=m,
                                                                                       other=0.0)
{post}
        tl.store(out_ptr + base + j, v, mask=m)"""
SOFTMAX_BODY = """    top = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
{loop}
        top = tl.maximum(top, tl.where(m, v, float("-inf")))
    mx = tl.max(top, axis=0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
{loop}
        acc += tl.where(m, tl.exp(v - mx), 0.0)
    s = tl.sum(acc, axis=0)
{loop}
        v = {last}
{post}
        tl.store(out_ptr + base + j, v, mask=m)"""
SOFTMAX_LAST = {"softmax": "tl.exp(v - mx) / s", "log_softmax": "v - mx - tl.log(s)"}

RUNTIME = '''
def _layout(x, operands):
    """Operands as float32 tensors on x's device with strides (0: one number, 1: per channel),
    and the (channels, inner) layout of the per-channel ones; None when an operand is neither."""
    keep = [o.detach().to(device=x.device, dtype=torch.float32).contiguous() if isinstance(o, torch.Tensor)
            else _filled(float(o), 1, x.device) for o in operands]
    found = _operand_layout(x, keep)
    if found is None:
        return None
    strides, layout = found
    channels, inner = layout or (1, 1)  # numbers only: one channel of any length
    return keep, strides, channels, inner


def _run_fused(launch, kernel, x, operands, inplace):
    """One fused elementwise kernel over x (in place when x is a temporary of forward), or
    None (the caller runs the original statements) when x is not float32 or an operand is
    not a number or per channel."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
        return None
    src = x.contiguous()
    layout = _layout(src, operands)
    if layout is None:
        return None
    out = src if (inplace or src.data_ptr() != x.data_ptr()) else torch.empty_like(src)
    if src.numel():
        launch(kernel, out, src, *layout)
    return out
'''

CUDA_LAUNCH = '''
def _cuda_launch(fn, out, src, ops, strides, channels, inner):
    fn(out, src, inner, channels, ops, strides)
'''

TRITON_LAUNCH = '''
def _triton_launch(kernel, out, src, ops, strides, channels, inner):
    n = src.numel()
    args = [a for pair in zip(ops, strides) for a in pair]
    kernel[(triton.cdiv(n, 1024),)](out, src, n, inner, channels, *args, BLOCK=1024)


def _run_norm(kernel, kind, x, mod, dim, operands, inplace):
    """The fused norm + elementwise run, or None when this call is outside what it handles
    (the caller then runs the original statements)."""
    got = _norm_inputs(kind, x, mod, dim)
    if got is None:
        return None
    grad, first, groups, eps, w, b = got
    period = math.prod(x.shape[first:])
    ops = [_region_operand(o, x, first, period, grad) for o in operands]
    if any(o is None for o in ops):
        return None
    src = x.contiguous()
    out = src if (inplace or src.data_ptr() != x.data_ptr()) else torch.empty_like(src)
    wt, bt = (src, src) if kind in ("softmax", "log_softmax") else \\
        _affine_rows(kind, w, b, period, math.prod(x.shape[2:]), x.device)
    length = period // groups
    args = [a for t in ops for a in (t, 0 if t.numel() == 1 else 1)]
    kernel[(x.numel() // length,)](out, src, length, groups, eps, wt, bt, *args,
                                   BLOCK=min(triton.next_power_of_2(length), 1024))
    return out
'''


def _indent(lines: list[str], n: int) -> str:
    return "\n".join(" " * n + s for s in lines)


def cuda_sources(name: str, run: FusedRun) -> tuple[str, str]:
    """(CUDA unit text, C++ wrapper text) for one elementwise run."""
    k = range(len(run.operands))
    params = "".join(f", const float* __restrict__ p{i}, long long s{i}" for i in k)
    cuda = CUDA_KERNEL.format(name=name, params=params, args="".join(f", p{i}, s{i}" for i in k),
                              loads=_indent([f"const float o{i} = p{i}[c * s{i}];" for i in k], 4),
                              body=_indent(run.stmts, 4))
    cpp = CPP_WRAPPER.format(name=name, params=params.replace(" __restrict__", ""), k=len(run.operands),
                             call="".join(f", ops[{i}].data_ptr<float>(), strides[{i}]" for i in k))
    return cuda, cpp


def _triton_stmts(body: list[ast.stmt], var: str, operands: list[Operand]) -> list[str] | None:
    """The statements again, as Triton; operands come out in the same order as the C++ ones."""
    out = []
    for stmt in body:
        compiled = compile_statement(stmt, var, operands, TRITON)
        if compiled is None:
            return None
        out.append(compiled[0])
    return out


def triton_fused_source(name: str, run: FusedRun, stmts: list[str]) -> str:
    k = range(len(run.operands))
    return TRITON_FUSED.format(name=name, params="".join(f", p{i}, s{i}" for i in k),
                               loads=_indent([f"o{i} = tl.load(p{i} + c * s{i}, mask=m, other=0.0)" for i in k], 4),
                               body=_indent(stmts, 4))


def triton_norm_source(name: str, run: NormRun, pre: list[str], post: list[str]) -> str:
    k = range(len(run.operands))
    loop = _ROW_LOOP.format(loads=_indent([f"o{i} = tl.load(p{i} + (off + j) * s{i}, mask=m, other=0.0)"
                                           for i in k], 8), pre=_indent(pre, 8)).rstrip()
    if run.kind in SOFTMAX_LAST:
        body = SOFTMAX_BODY.format(loop=loop, last=SOFTMAX_LAST[run.kind], post=_indent(post, 8))
    else:
        body = NORM_BODY.format(loop=loop, post=_indent(post, 8))
    return TRITON_NORM.format(name=name, params="".join(f", p{i}, s{i}" for i in k), body=body)


def supports(task_source: str, runs: list[FusedRun | NormRun], backend: str) -> bool:
    """Whether `generate` can write these runs for the backend (CUDA: elementwise runs only)."""
    if backend == "cuda":
        return all(isinstance(r, FusedRun) for r in runs)
    try:
        _triton_kernels(task_source, runs)
    except ValueError:
        return False
    return True


def _triton_kernels(task_source: str, runs: list[FusedRun | NormRun]) -> dict[int, str]:
    body = forward_of(model_class(ast.parse(task_source))).body
    out = {}
    for i, r in enumerate(runs):
        operands: list[Operand] = []
        if isinstance(r, NormRun):
            pre = _triton_stmts(body[r.start:r.norm], r.var, operands)
            post = _triton_stmts(body[r.norm + 1:r.stop], r.var, operands)
            if pre is None or post is None:
                raise ValueError(f"no Triton form for the statements around {r.kind}")
            out[id(r)] = triton_norm_source(f"norm_{i}", r, pre, post)
        else:
            stmts = _triton_stmts(body[r.start:r.stop], r.var, operands)
            if stmts is None:
                raise ValueError("no Triton form for an elementwise run")
            out[id(r)] = triton_fused_source(f"fused_{i}", r, stmts)
        if [o.python for o in operands] != [o.python for o in r.operands]:
            raise ValueError("operands differ between the C++ and Triton forms")
    return out


def generate(task_source: str, runs: list[FusedRun | NormRun], backend: str) -> str:
    """The whole solution file: `backend` "cuda" (elementwise runs only) or "triton"."""
    if not supports(task_source, runs, backend):
        raise ValueError(f"the {backend} templates do not cover these runs")
    names = {id(r): (f"norm_{i}" if isinstance(r, NormRun) else f"fused_{i}") for i, r in enumerate(runs)}

    def replace(run, original: list[ast.stmt]) -> list[ast.stmt]:
        operands = ", ".join(o.python for o in run.operands)
        name = names[id(run)]
        if isinstance(run, NormRun):
            return or_original(f"_run_norm({name}, {run.kind!r}, {run.var}, {run.module or 'None'}, "
                               f"{run.dim or 'None'}, [{operands}], inplace={run.fresh})", run.var, original)
        launch, kernel = ("_cuda_launch", f"_EXT.{name}") if backend == "cuda" else ("_triton_launch", name)
        return or_original(f"_run_fused({launch}, {kernel}, {run.var}, [{operands}], inplace={run.fresh})",
                           run.var, original)

    header, new_cls = rewrite_forward(task_source, runs, replace)
    if backend == "cuda":
        parts = [cuda_sources(names[id(r)], r) for r in runs]
        cuda = CUDA_PRELUDE + "".join(c for c, _ in parts)
        cpp = "#include <torch/extension.h>\n#include <ATen/cuda/CUDAContext.h>\n" + "".join(c for _, c in parts)
        tag = hashlib.sha256((cuda + cpp).encode()).hexdigest()[:12]
        functions = [names[id(r)] for r in runs]
        kernels = [f"_CUDA = r'''{cuda}'''", f"_CPP = r'''{cpp}'''",
                   f"_EXT = load_inline(name='kopt_rules_{tag}', cpp_sources=_CPP, cuda_sources=_CUDA, "
                   f"functions={functions!r}, no_implicit_headers=True, extra_cuda_cflags=['-O3'])"]
        imports = ["import torch", "from torch.utils.cpp_extension import load_inline"]
        glue = [SHARED.strip(), CHANNEL_LAYOUT.strip(), RUNTIME.strip(), CUDA_LAUNCH.strip()]
    else:
        triton = _triton_kernels(task_source, runs)
        kernels = [TRITON_HELPERS.strip()] + [triton[id(r)].strip() for r in runs]
        imports = ["import torch", "import triton", "import triton.language as tl"]
        glue = [SHARED.strip(), CHANNEL_LAYOUT.strip(), RUNTIME.strip(), TRITON_LAUNCH.strip()]
    lines = list(dict.fromkeys(header + imports))
    return "\n".join(lines) + "\n\n" + "\n\n\n".join(kernels + glue + [ast.unparse(new_cls)]) + "\n"
