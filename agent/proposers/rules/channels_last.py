"""Rule `cpu-conv-channels-last`: convolutions run in the channels-last memory format.

On this CPU PyTorch's oneDNN convolutions measured 1.4-10x faster on channels-last inputs
and weights than on the default (N, C, H, W) layout (ConvTranspose2d 38 -> 10 ms, Conv3d
10 -> 5 ms, one thread), and elementwise ops, norms and pooling keep the format, so only
the input is converted. The weights are converted once at construction (their shapes and
order do not change; the evaluator's in-place re-draws keep the format), each direct call
`self.conv(x)` gets its input converted, and when convolutions sit inside containers
(`nn.Sequential`, level-3 models) the forward's tensor inputs are converted on entry.
"""
from __future__ import annotations

import ast

from kopt.agent.proposers.rules.affine_analysis import _attr_chain

FORMATS = {"Conv2d": "torch.channels_last", "ConvTranspose2d": "torch.channels_last",
           "Conv3d": "torch.channels_last_3d", "ConvTranspose3d": "torch.channels_last_3d"}

HELPERS = '''
_KOPT_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}
_KOPT_CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Conv3d, torch.nn.ConvTranspose3d)


def _kopt_cl(x):
    """x in the channels-last format of its rank (4-D / 5-D tensors; anything else as is)."""
    fmt = _KOPT_FORMATS.get(x.dim()) if isinstance(x, torch.Tensor) else None
    return x.contiguous(memory_format=fmt) if fmt is not None else x


def _kopt_channels_last(model):
    """Every 2-D / 3-D convolution's weight in channels-last (same shapes, same order)."""
    for m in model.modules():
        if isinstance(m, _KOPT_CONVS) and m.weight.dim() in _KOPT_FORMATS:
            m.weight.data = m.weight.data.contiguous(memory_format=_KOPT_FORMATS[m.weight.dim()])
'''


def conv_attrs(cls: ast.ClassDef) -> dict[str, str]:
    """`self.<attr>` -> class name for attributes `__init__` sets to a 2-D / 3-D convolution."""
    out = {}
    for n in ast.walk(cls):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and _attr_chain(n.targets[0]) \
                and isinstance(n.value, ast.Call):
            name = ast.unparse(n.value.func).split(".")[-1]
            if name in FORMATS:
                out[ast.unparse(n.targets[0])] = name
    return out


def has_nested_convs(cls: ast.ClassDef, direct: dict[str, str]) -> bool:
    """Convolutions built inside a call other than a plain attribute assignment (Sequential, lists)."""
    built = sum(1 for n in ast.walk(cls) if isinstance(n, ast.Call)
                and ast.unparse(n.func).split(".")[-1] in FORMATS)
    return built > len(direct)


class _WrapCalls(ast.NodeTransformer):
    def __init__(self, convs: set[str]):
        self.convs, self.wrapped = convs, 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if ast.unparse(node.func) in self.convs and len(node.args) == 1:
            node.args = [ast.Call(ast.Name("_kopt_cl", ast.Load()), [node.args[0]], [])]
            self.wrapped += 1
        return node


def rewrite(task_source: str) -> tuple[str, str] | None:
    """(the task's source with class Model converted, what was done), or None without convolutions."""
    tree = ast.parse(task_source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    if cls is None:
        return None
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    fwd = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)
    direct = conv_attrs(cls)
    nested = has_nested_convs(cls, direct)
    if init is None or fwd is None or not (direct or nested):
        return None
    wrap = _WrapCalls(set(direct))
    fwd.body = [wrap.visit(s) for s in fwd.body]
    done = []
    if wrap.wrapped:
        done.append(f"{wrap.wrapped} convolution call(s) given channels-last inputs")
    if nested and ".view(" not in ast.unparse(fwd):  # view() of a channels-last tensor fails
        args = [a.arg for a in fwd.args.args[1:]]
        fwd.body[0:0] = ast.parse("\n".join(f"{a} = _kopt_cl({a})" for a in args)).body
        done.append("the forward's inputs converted on entry (convolutions inside containers)")
    if not done:
        return None
    init.body += ast.parse("_kopt_channels_last(self)").body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", "; ".join(done)
