"""The per-channel operand layout both fused-elementwise runtimes (C++ and CUDA/Triton)
paste into their solutions, and the fall-back-to-the-original statement form every fused
call of forward takes, written once."""
from __future__ import annotations

import ast

CHANNEL_LAYOUT = '''
def _channel_layout(x, t, layout):
    """(channels, inner) of operand t, constant but along one axis of x, checked against
    the layout of the operands before it (`layout`, None when there are none yet); None
    when t is not per-channel for x (it broadcasts x to a larger shape, varies along two
    axes, or disagrees with the operands before it)."""
    dims = [d for d in range(t.dim()) if t.shape[d] != 1]
    axis = x.dim() - t.dim() + dims[0] if len(dims) == 1 else -1
    if axis < 0 or t.dim() > x.dim() or x.shape[axis] != t.shape[dims[0]]:
        return None
    this = (x.shape[axis], int(torch.Size(x.shape[axis + 1:]).numel()))
    return this if layout in (None, this) else None


def _operand_layout(x, tensors):
    """(per operand tensor 0 (one number) or 1 (per channel), the (channels, inner) layout of
    the per-channel ones (None when there are none)); None when an operand is neither, so
    the caller runs the original statements instead of the kernel."""
    flags, layout = [], None
    for t in tensors:
        if t.numel() == 1 and t.dim() <= x.dim():
            flags.append(0)
            continue
        layout = _channel_layout(x, t, layout)
        if layout is None:
            return None
        flags.append(1)
    return flags, layout
'''


def or_original(call: str, var: str, original: list[ast.stmt]) -> list[ast.stmt]:
    """forward's statements for one fused run: `call` (an expression that gives the run's
    result, or None when this call's tensors are outside what the kernel handles) and the
    run's original statements when it gives None: a rule narrows, it never raises."""
    branch = ast.parse(f"if _kopt_y is None:\n    pass\nelse:\n    {var} = _kopt_y").body[0]
    branch.body = list(original)
    return [ast.parse(f"_kopt_y = {call}").body[0], branch]
