"""Writes a `ModelNew` whose elementwise runs (and normalisations, see `cpu_norm_codegen`)
are one OpenMP C++ pass over memory.

The class keeps the reference's `__init__` verbatim (so the same seed gives the same
parameters) and replaces each fused run of `forward` with a call into a shared library
built by `kopt.sandboxes.native.load_cpp` (content-addressed, cached).
"""
from __future__ import annotations

import ast
import textwrap

from kopt.agent.proposers.rules.channel_layout import CHANNEL_LAYOUT, or_original
from kopt.agent.proposers.rules.cpu_math import PRELUDE
from kopt.agent.proposers.rules.cpu_norm_analysis import NormRun
from kopt.agent.proposers.rules.cpu_norm_codegen import kernel_source as norm_kernel_source
from kopt.agent.proposers.rules.cpu_norm_codegen import replacement as norm_replacement
from kopt.agent.proposers.rules.cpu_norm_codegen import runtime as norm_runtime
from kopt.agent.proposers.rules.forward_analysis import FusedRun, forward_of, model_class

KERNEL = """
extern "C" void {name}(float* __restrict out, const float* __restrict in, int64_t n, int64_t inner,
                       int64_t channels, const float* const* ptrs, const int64_t* per_channel) {{
  (void)ptrs; (void)per_channel;
  if (channels == 0) {{
{scalar_loads_flat}
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {{
      float v = in[i];
{body_flat}
      out[i] = v;
    }}
    return;
  }}
  if (inner == 1) {{  // channels on the last axis: every operand arrives as a per-channel array
    const int64_t rows = n / channels;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {{
      const float* __restrict src = in + r * channels;
      float* __restrict dst = out + r * channels;
      #pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {{
{loads_last}
        float v = src[c];
{body_last}
        dst[c] = v;
      }}
    }}
    return;
  }}
  const int64_t blocks = n / inner;
  #pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {{
    const int64_t c = b % channels;
{scalar_loads_pc}
    const float* __restrict src = in + b * inner;
    float* __restrict dst = out + b * inner;
    #pragma omp simd
    for (int64_t j = 0; j < inner; ++j) {{
      float v = src[j];
{body_pc}
      dst[j] = v;
    }}
  }}
}}
"""

RUNTIME = '''
_CL_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def _run_fused(fn, x, operands, inplace):
    """Apply a fused elementwise kernel; operands are scalars or per-channel tensors. A
    channels-last x is read in its own layout (the channel is then the innermost axis).
    None (the caller runs the original statements) for anything else: x not a float32 CPU
    tensor, an operand that is not a number or per-channel for x."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu":
        return None
    keep = [torch.as_tensor(o, dtype=torch.float32).detach().contiguous() for o in operands]
    found = _operand_layout(x, keep)
    if found is None:
        return None
    flags, layout = found
    channels, inner = layout or (0, 1)  # 0 channels: the kernel's flat path (numbers only)
    fmt = _CL_FORMATS.get(x.dim())
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt) \\
            and (layout is None or layout == (x.shape[1], int(torch.Size(x.shape[2:]).numel()))):
        src = x
        if layout:
            channels, inner = x.shape[1], 1
    else:
        src = x.contiguous()
    out = src if (inplace or src.data_ptr() != x.data_ptr()) else torch.empty_like(src)
    if layout and inner == 1:  # last-axis layout: the kernel reads every operand per channel
        keep = [t if f else t.reshape(1).expand(channels).contiguous() for t, f in zip(keep, flags)]
    ptrs = (ctypes.c_void_p * max(1, len(keep)))(*[t.data_ptr() for t in keep])
    pcs = (ctypes.c_int64 * max(1, len(flags)))(*flags)
    fn(ctypes.c_void_p(out.data_ptr()), ctypes.c_void_p(src.data_ptr()), ctypes.c_int64(src.numel()),
       ctypes.c_int64(inner), ctypes.c_int64(channels), ptrs, pcs)
    return out
'''


def kernel_source(name: str, run: FusedRun) -> str:
    loads = [f"    const float o{k} = ptrs[{k}][0];" for k in range(len(run.operands))]
    loads_pc = [f"    const float o{k} = ptrs[{k}][per_channel[{k}] ? c : 0];" for k in range(len(run.operands))]
    loads_last = [f"        const float o{k} = ptrs[{k}][c];" for k in range(len(run.operands))]
    body = "\n".join("      " + s for s in run.stmts)
    return KERNEL.format(name=name, scalar_loads_flat="\n".join(loads), body_flat=body,
                         scalar_loads_pc="\n".join(loads_pc), body_pc=body, loads_last="\n".join(loads_last),
                         body_last="\n".join("  " + line for line in body.splitlines()))


def rewrite_forward(task_source: str, runs: list, replace) -> tuple[list[str], ast.ClassDef]:
    """(the task's import lines, class ModelNew) where `replace(run, statements)` gives the
    statements that stand for each run of forward (shared by the CPU and GPU generators)."""
    tree = ast.parse(task_source)
    cls = model_class(tree)
    fwd = forward_of(cls)
    new_body: list[ast.stmt] = []
    for i, stmt in enumerate(fwd.body):
        run = next((r for r in runs if r.start == i), None)
        if run is not None:
            new_body += replace(run, fwd.body[run.start: run.stop])
        elif not any(r.start < i < r.stop for r in runs):
            new_body.append(stmt)
    header = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return header, _rename_class(cls, fwd, new_body)


def generate(task_source: str, runs: list[FusedRun | NormRun], flags: tuple[str, ...]) -> str:
    """The whole solution file for the given runs of the task's forward: elementwise runs
    (`FusedRun`) and normalisations with their elementwise neighbours (`NormRun`)."""
    names = {id(r): (f"norm_{i}" if isinstance(r, NormRun) else f"fused_{i}") for i, r in enumerate(runs)}
    cpp = PRELUDE + "".join(
        (norm_kernel_source if isinstance(r, NormRun) else kernel_source)(names[id(r)], r) for r in runs)

    def replace(run, original: list[ast.stmt]) -> list[ast.stmt]:
        if isinstance(run, NormRun):
            return norm_replacement(run, names[id(run)], original)
        operands = ", ".join(o.python for o in run.operands)
        return or_original(f"_run_fused(_LIB.{names[id(run)]}, {run.var}, [{operands}], inplace={run.fresh})",
                           run.var, original)

    header, new_cls = rewrite_forward(task_source, runs, replace)
    helpers = []
    if any(isinstance(r, FusedRun) for r in runs):
        helpers += [CHANNEL_LAYOUT.strip(), RUNTIME.strip()]
    if any(isinstance(r, NormRun) for r in runs):
        helpers.append(norm_runtime())
    lines = header + ["import ctypes", "import torch", "from kopt.sandboxes.native import load_cpp", "",
                      f"_FLAGS = {tuple(flags)!r}", f"_CPP = r'''{cpp}'''", "_LIB = load_cpp(_CPP, _FLAGS)",
                      "\n\n".join(helpers), "", ast.unparse(new_cls), ""]
    return "\n".join(dict.fromkeys(lines[: len(header) + 3])) + "\n" + "\n".join(lines[len(header) + 3:])


def _rename_class(cls: ast.ClassDef, fwd: ast.FunctionDef, body: list[ast.stmt]) -> ast.ClassDef:
    import copy

    new = copy.deepcopy(cls)
    new.name = "ModelNew"
    for node in ast.walk(new):
        if isinstance(node, ast.Name) and node.id == "Model":
            node.id = "ModelNew"
    for i, item in enumerate(new.body):
        if isinstance(item, ast.FunctionDef) and item.name == "forward":
            f = copy.deepcopy(fwd)
            f.body = body
            new.body[i] = f
    if new.body and isinstance(new.body[0], ast.Expr) and isinstance(getattr(new.body[0], "value", None),
                                                                      ast.Constant):
        new.body[0] = ast.Expr(ast.Constant("Fused elementwise and normalisation runs (kopt rules proposer)."))
    return ast.fix_missing_locations(new)


def describe(runs: list[FusedRun | NormRun]) -> str:
    parts = []
    for r in runs:
        ops = "+".join(dict.fromkeys(r.ops)) or "arith"
        parts.append(f"fuse {ops} ({r.stop - r.start} statements)")
    return "; ".join(parts)


__all__ = ["generate", "kernel_source", "describe", "textwrap"]
