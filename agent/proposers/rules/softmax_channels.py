"""Softmax / log_softmax over the channels (dim 1) of an (N, C, *spatial) tensor, fused with
the elementwise statements around it: the `_csoft` kernel of a softmax `NormRun`.

PyTorch reduces over a strided axis there; level-2 tasks put such a softmax between a
convolution and its elementwise tail (a bias, a scale, a sigmoid), each one more pass over
memory. Here one OpenMP task takes a tile of TILE spatial positions of one sample and makes
three passes over its C channels -- max, exp (stored) and its sum, scale + tail -- while the
tile (C * TILE floats) stays in cache, so memory is read once and written once. Operands
are numbers or per channel; the runtime (`RUNTIME`, pasted after `cpu_norm_runtime`'s)
returns None for anything else and the original statements run.
"""
from __future__ import annotations

CARD = "cpu-fuse-channel-softmax"
TILE = 128  # spatial positions per task: 512 bytes of each channel, C * 512 bytes in cache

CSOFT = """
extern "C" void {name}_csoft(float* out, const float* in, int64_t N, int64_t C, int64_t inner,
                             const float* const* ptrs, const int64_t* per_channel) {{
  (void)ptrs; (void)per_channel;
  const int64_t tiles = (inner + {tile} - 1) / {tile};
  #pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N * tiles; ++r) {{
    const int64_t j0 = (r % tiles) * {tile};
    const int64_t len = inner - j0 < {tile} ? inner - j0 : {tile};
    const float* src = in + (r / tiles) * C * inner + j0;
    float* dst = out + (r / tiles) * C * inner + j0;
    float mx[{tile}], sm[{tile}];
    for (int64_t j = 0; j < len; ++j) {{ mx[j] = -FLT_MAX; sm[j] = 0.f; }}
    for (int64_t ch = 0; ch < C; ++ch) {{
{loads}
      const float* xs = src + ch * inner;
      #pragma omp simd
      for (int64_t j = 0; j < len; ++j) {{
        float v = xs[j];
{pre}
        mx[j] = v > mx[j] ? v : mx[j];
      }}
    }}
    for (int64_t ch = 0; ch < C; ++ch) {{
{loads}
      const float* xs = src + ch * inner;
      float* ys = dst + ch * inner;
      #pragma omp simd
      for (int64_t j = 0; j < len; ++j) {{
        float v = xs[j];
{pre}
        const float e = kexp(v - mx[j]);
        sm[j] += e;
{store}
      }}
    }}
    #pragma omp simd
    for (int64_t j = 0; j < len; ++j) sm[j] = {finish};
    for (int64_t ch = 0; ch < C; ++ch) {{
{loads}
      const float* xs = src + ch * inner;
      float* ys = dst + ch * inner;
      (void)xs;
      #pragma omp simd
      for (int64_t j = 0; j < len; ++j) {{
{value}
{post}
        ys[j] = v;
      }}
    }}
  }}
}}
"""
# softmax keeps exp(v - max) in the output and scales it by 1/sum; log_softmax recomputes v
# (its head included) and subtracts max + log(sum)
FORMS = {
    "softmax": {"store": "ys[j] = e;", "finish": "1.f / sm[j]", "value": ["float v = ys[j] * sm[j];"]},
    "log_softmax": {"store": "", "finish": "mx[j] + logf(sm[j])", "value": ["float v = xs[j];", "PRE",
                                                                              "v = v - sm[j];"]},
}

RUNTIME = '''
_ARGTYPES["_csoft"] = [_P, _P, _I, _I, _I, _P, _P]


def _over_channels(kind, x, mod, dim):
    """True when this softmax call is over dim 1 of an x of three or more dims."""
    if kind not in ("softmax", "log_softmax") or not isinstance(x, torch.Tensor) or x.dim() < 3:
        return False
    d = mod.dim if mod is not None else dim
    return type(d) is int and d in (1, 1 - x.dim())


def _run_csoft(lib, name, x, operands, inplace):
    """The fused softmax over channels and its elementwise neighbours, or None (the original
    statements run): x not a float32 CPU tensor, autograd, an operand not per channel."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() == 0:
        return None
    grad = torch.is_grad_enabled()
    if grad and x.requires_grad:
        return None
    ops = [_channel_operand(o, x, grad) for o in operands]
    if any(o is None for o in ops):
        return None
    src = x.contiguous()
    out = src if (inplace or src.data_ptr() != x.data_ptr()) else torch.empty_like(src)
    ptrs = (ctypes.c_void_p * max(1, len(ops)))(*[t.data_ptr() for t, _ in ops])
    pcs = (ctypes.c_int64 * max(1, len(ops)))(*[f for _, f in ops])
    _kernel(lib, name, "_csoft")(out.data_ptr(), src.data_ptr(), x.shape[0], x.shape[1],
                                 math.prod(x.shape[2:]), ptrs, pcs)
    return out
'''


def channel_softmax_cards(runs: list) -> list[str]:
    """The card of this kernel, for a plan whose runs hold a softmax that may be over
    channels (a module's dim or a functional dim other than -1; read at run time)."""
    maybe = any(getattr(r, "kind", "") in ("softmax", "log_softmax") and r.dim != "-1" for r in runs)
    return [CARD] if maybe else []


def csoft_source(name: str, kind: str, pre: list[str], post: list[str], n_operands: int) -> str:
    """The `_csoft` kernel for a softmax run: `pre` / `post` are its C++ head and tail
    statements on `v`, operands o0.. read per channel `ch` (or as one number)."""
    form = FORMS[kind]
    loads = [f"const float o{i} = ptrs[{i}][per_channel[{i}] ? ch : 0];" for i in range(n_operands)]
    value = [line for s in form["value"] for line in (pre if s == "PRE" else [s])]
    return CSOFT.format(name=name, tile=TILE, loads=_lines(loads, 6), pre=_lines(pre, 8), store=" " * 8 +
                        form["store"], finish=form["finish"], value=_lines(value, 8), post=_lines(post, 8))


def _lines(stmts: list[str], n: int) -> str:
    return "\n".join(" " * n + s for s in stmts)
