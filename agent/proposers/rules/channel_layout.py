"""The per-channel operand layout both fused-elementwise runtimes (C++ and CUDA/Triton)
paste into their solutions, written once."""
from __future__ import annotations

CHANNEL_LAYOUT = '''
def _channel_layout(x, t, layout):
    """(channels, inner) of operand t, constant but along one axis of x, checked against
    the layout of the operands before it (`layout`, None when there are none yet)."""
    dims = [d for d in range(t.dim()) if t.shape[d] != 1]
    axis = x.dim() - t.dim() + dims[0] if len(dims) == 1 else -1
    if axis < 0 or x.shape[axis] != t.shape[dims[0]]:
        raise ValueError(f"operand of shape {tuple(t.shape)} is not per-channel for {tuple(x.shape)}")
    this = (x.shape[axis], int(torch.Size(x.shape[axis + 1:]).numel()))
    if layout not in (None, this):
        raise ValueError("per-channel operands disagree on their axis")
    return this


def _operand_layout(x, tensors):
    """Per operand tensor 0 (one number) or 1 (per channel), and the (channels, inner) layout
    of the per-channel ones (None when there are none)."""
    flags, layout = [], None
    for t in tensors:
        if t.numel() == 1:
            flags.append(0)
            continue
        layout = _channel_layout(x, t, layout)
        flags.append(1)
    return flags, layout
'''
