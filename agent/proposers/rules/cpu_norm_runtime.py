"""The Python half of a fused norm run, pasted into every generated solution that has one.

`_run_norm(lib, name, kind, x, module, dim, operands, inplace)` checks that this call is
one the C++ kernels of `cpu_norm_codegen` handle -- float32 CPU tensors, no autograd, the
norm's sizes and the softmax dim as the module / call has them now, operands that are
numbers or broadcast over the normalised region (or per channel for GroupNorm /
InstanceNorm) -- lays out the arguments and calls the kernel; anything else returns None
and the solution runs the task's original statements.
"""

# What any backend's norm glue needs (the Triton one in `kopt.agent.proposers.rules.gpu_codegen` too):
# reading the norm's setup from the module and laying operands out over the region
SHARED = '''
import math

_INSTANCE_DIMS = ((torch.nn.InstanceNorm1d, 3), (torch.nn.InstanceNorm2d, 4), (torch.nn.InstanceNorm3d, 5))
_FILLED = {}


def _usable(t, x, grad):
    return t.dtype == torch.float32 and t.device == x.device and not (grad and t.requires_grad)


def _aligned_shape(t, x):
    \"\"\"t's shape right-aligned to x's, or None if t would broadcast x to a larger shape.\"\"\"
    if t.dim() > x.dim():
        return None
    shape = (1,) * (x.dim() - t.dim()) + tuple(t.shape)
    return shape if all(s == 1 or s == n for s, n in zip(shape, x.shape)) else None


def _filled(value, period, device):
    """`period` copies of a number on `device`, made once per (value, period, device)."""
    key = (value, period, str(device))
    arr = _FILLED.get(key)
    if arr is None:
        if len(_FILLED) > 64:
            _FILLED.clear()
        arr = _FILLED[key] = torch.full((period,), value, device=device)
    return arr


def _region_operand(o, x, first, period, grad):
    """o as one float (a number) or broadcast over x.shape[first:] and flattened to `period`
    floats; None if it varies over the leading dims, would change x's shape or dtype, or
    needs autograd."""
    if not isinstance(o, torch.Tensor):
        return _filled(float(o), 1, x.device)
    if not _usable(o, x, grad):
        return None
    shape = _aligned_shape(o, x)
    if shape is None or any(s != 1 for s in shape[:first]):
        return None
    if o.numel() == 1:
        return o.detach().reshape(1).contiguous()
    region = x.shape[first:]
    t = o.detach()
    if shape[first:] == tuple(region) and t.is_contiguous():
        return t.reshape(-1)  # a view: the common per-column operand
    return t.reshape(shape[first:]).expand(region).reshape(-1).contiguous()


def _channel_operand(o, x, grad):
    \"\"\"(o as a contiguous float tensor, 1 if per channel on axis 1 else 0), or None.\"\"\"
    if not isinstance(o, torch.Tensor):
        return torch.tensor([float(o)]), 0
    if not _usable(o, x, grad):
        return None
    if o.numel() == 1 and o.dim() <= x.dim():
        return o.detach().reshape(1).contiguous(), 0
    shape = _aligned_shape(o, x)
    if shape is None or any(s != 1 for i, s in enumerate(shape) if i != 1):
        return None
    return o.detach().reshape(-1).contiguous(), 1


def _norm_setup(kind, x, mod, dim):
    \"\"\"(first normalised dim, groups, eps, weight, bias) for this call, or None to fall back.\"\"\"
    nd = x.dim()
    if kind in ("softmax", "log_softmax"):
        d = mod.dim if mod is not None else dim
        if type(d) is not int or d not in (-1, nd - 1):
            return None
        return nd - 1, 1, 0.0, None, None
    if kind == "layer_norm":
        if not isinstance(mod, torch.nn.LayerNorm):
            return None
        ns = tuple(mod.normalized_shape)
        if not ns or len(ns) > nd or tuple(x.shape[nd - len(ns):]) != ns:
            return None
        return nd - len(ns), 1, float(mod.eps), mod.weight, mod.bias
    if kind == "group_norm":
        if not isinstance(mod, torch.nn.GroupNorm) or nd < 2:
            return None
        groups = mod.num_groups
    else:
        want = next((d for cls, d in _INSTANCE_DIMS if isinstance(mod, cls)), None)
        if want != nd or mod.track_running_stats:  # running stats: used or updated by torch
            return None
        groups = x.shape[1]
    if groups <= 0 or x.shape[1] % groups:
        return None
    w, b = (mod.weight, mod.bias) if mod.affine else (None, None)
    return 1, groups, float(mod.eps), w, b


def _norm_inputs(kind, x, mod, dim, device_type=None):
    \"\"\"(grad, first normalised dim, groups, eps, weight, bias) when this call is one the fused
    run handles (float32 x, on `device_type` when given, no autograd), else None.\"\"\"
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() == 0 or x.numel() == 0 \\
            or device_type is not None and x.device.type != device_type:
        return None
    grad = torch.is_grad_enabled()
    if grad and x.requires_grad:
        return None
    setup = _norm_setup(kind, x, mod, dim)
    if setup is None or any(p is not None and not _usable(p, x, grad) for p in setup[3:]):
        return None
    return (grad, *setup)


def _affine_rows(kind, w, b, period, inner, device):
    """Weight and bias as `period` floats each (one per element of the normalised region)."""
    reps = 1 if kind == "layer_norm" else inner  # per channel -> per element of a sample
    return [_filled(fill, period, device) if p is None else p.detach().reshape(-1).contiguous() if reps == 1
            else p.detach().reshape(-1).repeat_interleave(reps) for p, fill in ((w, 1.0), (b, 0.0))]
'''

CPU_CALL = '''
_P, _I, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
_ARGTYPES = {"_rows": [_P, _P, _I, _I, _I, _F, _P, _P, _P, _I],
             "_chan": [_P, _P, _I, _I, _I, _I, _F, _P, _P, _P, _P]}
_KERNELS = {}


def _kernel(lib, name, mode):
    fn = _KERNELS.get((name, mode))
    if fn is None:
        fn = getattr(lib, name + mode)
        fn.argtypes, fn.restype = _ARGTYPES[mode], None
        _KERNELS[(name, mode)] = fn
    return fn


def _run_norm(lib, name, kind, x, mod, dim, operands, inplace):
    \"\"\"The fused norm + elementwise run, or None when this call is outside what it handles
    (the caller then runs the original statements).\"\"\"
    if _over_channels(kind, x, mod, dim):  # softmax over dim 1 of (N, C, *spatial): softmax_channels
        return _run_csoft(lib, name, x, operands, inplace)
    got = _norm_inputs(kind, x, mod, dim, "cpu")
    if got is None:
        return None
    grad, first, groups, eps, w, b = got
    src = x.contiguous()
    out = src if (inplace or src.data_ptr() != x.data_ptr()) else torch.empty_like(src)
    inner = math.prod(x.shape[2:])
    if kind in ("group_norm", "instance_norm") and inner >= _CHAN_MIN_INNER:
        ops = [_channel_operand(o, x, grad) for o in operands]
        if any(o is None for o in ops):
            return None
        ptrs = (ctypes.c_void_p * max(1, len(ops)))(*[t.data_ptr() for t, _ in ops])
        pcs = (ctypes.c_int64 * max(1, len(ops)))(*[f for _, f in ops])
        wd = w.detach().contiguous() if w is not None else None
        bd = b.detach().contiguous() if b is not None else None
        _kernel(lib, name, "_chan")(out.data_ptr(), src.data_ptr(), x.shape[0], x.shape[1], groups, inner, eps,
                                    wd.data_ptr() if wd is not None else None,
                                    bd.data_ptr() if bd is not None else None, ptrs, pcs)
        return out
    period = math.prod(x.shape[first:])
    ops = [_region_operand(o, x, first, period, grad) for o in operands]
    if any(o is None for o in ops):
        return None
    scalars = 0
    if len(ops) <= _MAX_SCALAR_OPERANDS:
        scalars = sum(1 << i for i, t in enumerate(ops) if t.numel() == 1)
    else:
        ops = [t.expand(period).contiguous() if t.numel() == 1 else t for t in ops]
    wp = bp = None
    if kind in ("group_norm", "instance_norm", "layer_norm"):
        ws = _affine_rows(kind, w, b, period, inner, x.device)
        ops += ws
        wp, bp = ws[0].data_ptr(), ws[1].data_ptr()
    ptrs = (ctypes.c_void_p * max(1, len(ops)))(*[t.data_ptr() for t in ops])
    length = period // groups
    _kernel(lib, name, "_rows")(out.data_ptr(), src.data_ptr(), x.numel() // length, length, groups, eps, wp, bp,
                                ptrs, scalars)
    return out
'''

RUNTIME = SHARED + CPU_CALL
