"""C++ kernels and their Python glue for a `NormRun`: a normalisation (GroupNorm,
InstanceNorm, LayerNorm, softmax, log_softmax) fused with the elementwise statements
around it, in one OpenMP pass per row.

Two kernels per run:
- `<name>_rows`: rows of `L` contiguous floats (LayerNorm / softmax over the trailing dims;
  GroupNorm / InstanceNorm when the spatial size is small). Affine parameters arrive as
  per-element arrays of `R * L` floats, row `r` using the slice `(r % R) * L`; each operand
  is either such an array or one number (a template instance per combination).
- `<name>_chan` (GroupNorm / InstanceNorm only): one (sample, group) per task, `cpg`
  channels of `inner` floats each; affine parameters and operands are per channel.
- `<name>_csoft` (softmax / log_softmax only): over dim 1 of an (N, C, *spatial) tensor
  (`softmax_channels`).

Norms: one pass for the statistics (values shifted by the row's first value, summed in
float blocks that are added up in double), a second that normalises, applies the affine
and the elementwise tail and writes once. Softmax: max, exp (+ sum), scale + tail. The
elementwise head (cheap ops only) is recomputed in each pass rather than stored. The
Python side (`cpu_norm_runtime`) reads sizes, eps and affine parameters from the module at
call time and returns None -- the original statements run -- for anything else.
"""
from __future__ import annotations

import ast

from kopt.agent.proposers.rules.channel_layout import or_original
from kopt.agent.proposers.rules.cpu_norm_analysis import NormRun
from kopt.agent.proposers.rules.cpu_norm_runtime import RUNTIME
from kopt.agent.proposers.rules.softmax_channels import RUNTIME as CSOFT_RUNTIME
from kopt.agent.proposers.rules.softmax_channels import csoft_source

# S: bit k set when operand k is one number (hoisted out of the loops) rather than an array
# of R * L floats; every combination of up to MAX_SCALAR_OPERANDS operands is instantiated
ROWS = """
template <int S>
static void {name}_rows_impl(float* out, const float* in, int64_t rows, int64_t L, int64_t R, float eps,
                             const float* w, const float* b, const float* const* ptrs) {{
  (void)eps; (void)w; (void)b; (void)ptrs;
  #pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {{
    const int64_t off = (r % R) * L;
    const float* src = in + r * L;
    float* dst = out + r * L;
{pointers}
{body}
  }}
}}

extern "C" void {name}_rows(float* out, const float* in, int64_t rows, int64_t L, int64_t R, float eps,
                            const float* w, const float* b, const float* const* ptrs, int64_t scalars) {{
  switch (scalars) {{
{cases}
  }}
}}
"""
MAX_SCALAR_OPERANDS = 4

# Mean and variance of one row or group, shifted by its first value (no cancellation when
# the mean is far from 0) and summed in float blocks of BLOCK (vectorised; no
# loop-carried double reduction, which costs more than a short row) added up in double.
# Reduction loops carry no `omp simd` pragma: -ffast-math vectorises them in registers,
# where an `omp simd reduction` goes through the stack once per row.
BLOCK = 512
STATS = """
    float pivot;
    {{
{pivot_setup}
      float v = {read0};
{pre_pivot}
      pivot = v;
    }}
    double s = 0.0, ss = 0.0;
{loops_open}
        float bs = 0.f, bss = 0.f;
        for (int64_t j = j0; j < j1; ++j) {{
{loads}
          float v = {read};
{pre_loop}
          v -= pivot;
          bs += v;
          bss += v * v;
        }}
        s += bs;
        ss += bss;
{loops_close}
    const double ms = s / (double)({count});
    const double var = ss / (double)({count}) - ms * ms;
    const float m = (float)ms + pivot;
    const float rstd = 1.0f / sqrtf((float)(var > 0.0 ? var : 0.0) + eps);"""
ROW_LOOPS = ("""    for (int64_t j0 = 0; j0 < L; j0 += {block}) {{
      const int64_t j1 = j0 + {block} < L ? j0 + {block} : L;
      {{""", "      }\n    }")
CHAN_LOOPS = ("""    for (int64_t c = 0; c < cpg; ++c) {{
      const int64_t ch = g * cpg + c;
      (void)ch;
{chan_loads}
      const float* xs = src + c * inner;
      for (int64_t j0 = 0; j0 < inner; j0 += {block}) {{
        const int64_t j1 = j0 + {block} < inner ? j0 + {block} : inner;""", "      }\n    }")

NORM_ROWS = """{stats}
    const float* __restrict wr = w + off;
    const float* __restrict br = b + off;
    #pragma omp simd
    for (int64_t j = 0; j < L; ++j) {{
{loads}
      float v = src[j];
{pre}
      v = (v - m) * rstd * wr[j] + br[j];
{post}
      dst[j] = v;
    }}"""

SOFTMAX_ROWS = """
    float mx = -FLT_MAX;
    for (int64_t j = 0; j < L; ++j) {{
{loads}
      float v = src[j];
{pre}
      mx = v > mx ? v : mx;
    }}
{middle}
    #pragma omp simd
    for (int64_t j = 0; j < L; ++j) {{
{loads}
      float v = {value};
{post}
      dst[j] = v;
    }}"""
# softmax stores exp(v - max) and sums what it stored; log_softmax sums exp(v - max) and
# recomputes v in the last pass
SOFTMAX_MIDDLE = {
    "softmax": """    #pragma omp simd
    for (int64_t j = 0; j < L; ++j) {{
{loads}
      float v = src[j];
{pre}
      dst[j] = kexp(v - mx);
    }}
    double s = 0.0;
    for (int64_t j0 = 0; j0 < L; j0 += {block}) {{
      const int64_t j1 = j0 + {block} < L ? j0 + {block} : L;
      float bs = 0.f;
      for (int64_t j = j0; j < j1; ++j) bs += dst[j];
      s += bs;
    }}
    const float inv = (float)(1.0 / s);""",
    "log_softmax": """    double s = 0.0;
    for (int64_t j0 = 0; j0 < L; j0 += {block}) {{
      const int64_t j1 = j0 + {block} < L ? j0 + {block} : L;
      float bs = 0.f;
      for (int64_t j = j0; j < j1; ++j) {{
{loads}
        float v = src[j];
{pre}
        bs += kexp(v - mx);
      }}
      s += bs;
    }}
    const float lse = mx + (float)std::log(s);""",
}
SOFTMAX_VALUE = {"softmax": "dst[j] * inv", "log_softmax": "src[j]"}

CHAN = """
extern "C" void {name}_chan(float* out, const float* in, int64_t N, int64_t C, int64_t G, int64_t inner,
                            float eps, const float* w, const float* b, const float* const* ptrs,
                            const int64_t* per_channel) {{
  (void)ptrs; (void)per_channel;
  const int64_t cpg = C / G;
  #pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N * G; ++r) {{
    const int64_t g = r % G;
    const float* src = in + r * cpg * inner;
    float* dst = out + r * cpg * inner;
{stats}
    for (int64_t c = 0; c < cpg; ++c) {{
      const int64_t ch = g * cpg + c;
{loads}
      const float sc = rstd * (w ? w[ch] : 1.f);
      const float sh = (b ? b[ch] : 0.f) - m * sc;
      const float* xs = src + c * inner;
      float* ys = dst + c * inner;
      #pragma omp simd
      for (int64_t j = 0; j < inner; ++j) {{
        float v = xs[j];
{pre}
        v = v * sc + sh;
{post}
        ys[j] = v;
      }}
    }}
  }}
}}
"""

CHAN_MIN_INNER = 16  # below this a channel's inner loop is too short to vectorise well


def kernel_source(name: str, run: NormRun) -> str:
    k = range(len(run.operands))
    row_loads = [f"const float o{i} = (S & {1 << i}) ? s{i} : p{i}[j];" for i in k]
    pre, post = _lines(run.pre, 6), _lines(run.post, 6)
    if run.kind in ("softmax", "log_softmax"):
        middle = SOFTMAX_MIDDLE[run.kind].format(loads=_lines(row_loads, 6), pre=pre, block=BLOCK)
        tail = (["v = v - lse;"] if run.kind == "log_softmax" else []) + run.post
        recompute = pre + "\n" if run.kind == "log_softmax" and run.pre else ""
        body = SOFTMAX_ROWS.format(loads=_lines(row_loads, 6), pre=pre, middle=middle,
                                   value=SOFTMAX_VALUE[run.kind], post=recompute + _lines(tail, 6))
        channels = csoft_source(name, run.kind, run.pre, run.post, len(run.operands))
    else:
        opened, closed = ROW_LOOPS
        stats = STATS.format(pivot_setup=_lines(["const int64_t j = 0;", *row_loads], 6), read0="src[0]",
                             pre_pivot=pre, loads=_lines(row_loads, 10), read="src[j]", pre_loop=_lines(run.pre, 10),
                             loops_open=opened.format(block=BLOCK), loops_close=closed, count="L")
        body = NORM_ROWS.format(stats=stats, loads=_lines(row_loads, 6), pre=pre, post=post)
    pointers = _lines([line for i in k for line in (
        f"const float* __restrict p{i} = (S & {1 << i}) ? ptrs[{i}] : ptrs[{i}] + off;",
        f"const float s{i} = ptrs[{i}][0];")], 4)
    masks = range(1 << len(run.operands)) if len(run.operands) <= MAX_SCALAR_OPERANDS else [0]
    cases = _lines([f"case {m}: {name}_rows_impl<{m}>(out, in, rows, L, R, eps, w, b, ptrs); return;"
                    for m in masks], 4)
    src = ROWS.format(name=name, pointers=pointers, body=body, cases=cases)
    if run.kind in ("softmax", "log_softmax"):
        src += channels
    if run.kind in ("group_norm", "instance_norm"):
        chan_loads = [f"const float o{i} = ptrs[{i}][per_channel[{i}] ? ch : 0];" for i in k]
        opened, closed = CHAN_LOOPS
        stats = STATS.format(pivot_setup=_lines(["const int64_t ch = g * cpg;", *chan_loads], 6), read0="src[0]",
                             pre_pivot=pre, loads="", read="xs[j]", pre_loop=_lines(run.pre, 10),
                             loops_open=opened.format(block=BLOCK, chan_loads=_lines(chan_loads, 6)),
                             loops_close=closed, count="cpg * inner")
        src += CHAN.format(name=name, stats=stats, loads=_lines(chan_loads, 6), pre=_lines(run.pre, 8),
                           post=_lines(run.post, 8))
    return src


def _lines(stmts: list[str], n: int) -> str:
    return "\n".join(" " * n + s for s in stmts)


def runtime() -> str:
    return (f"_CHAN_MIN_INNER = {CHAN_MIN_INNER}\n_MAX_SCALAR_OPERANDS = {MAX_SCALAR_OPERANDS}\n"
            + RUNTIME.strip() + "\n\n" + CSOFT_RUNTIME.strip())


def replacement(run: NormRun, name: str, original: list[ast.stmt]) -> list[ast.stmt]:
    """forward's statements for the run: the fused call, and the original statements when
    the call falls back (returns None)."""
    operands = ", ".join(o.python for o in run.operands)
    call = (f"_run_norm(_LIB, {name!r}, {run.kind!r}, {run.var}, {run.module or 'None'}, "
            f"{run.dim or 'None'}, [{operands}], inplace={run.fresh})")
    return or_original(call, run.var, original)
