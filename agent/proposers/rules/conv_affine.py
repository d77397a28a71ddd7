"""Rule `cpu-fold-conv-affine`: a convolution and the per-channel affine statements after
it (scalar or per-channel multiply, divide, add, subtract; an inference-mode BatchNorm) as
one convolution with weights and bias folded from the task's own parameters.

A convolution is linear in its weights: conv(x) * s + t is the convolution with weights
scaled per output channel by s and bias b * s + t, and an eval-mode BatchNorm is such an
(s, t) from its running statistics. The fold removes one full pass over the convolution's
output per folded statement. A training-mode BatchNorm normalises with the batch's own
statistics (and updates its running ones), so it is no fold: such a call, and any other the
fold does not cover (autograd on, another dtype or device, an operand that is not constant
over every dim but the channels), runs the task's original statements.

Reads the forward's statements (the AST) like `conv_mean` and `affine_analysis`: the
analysis never runs the task's code in kopt's process (torch.fx tracing would); the
generated code checks at run time what the AST cannot show (module types, shapes).
The fold is cached until a parameter, buffer or operand it read changes (identity and
version counter, as `affine_codegen` does).
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from kopt.agent.proposers.rules.affine_analysis import _attr_chain
from kopt.agent.proposers.rules.conv_mean import _assign, _pointwise_operand, conv_modules, replace_regions

BN_CLASSES = {f"{p}BatchNorm{n}d" for p in ("nn.", "torch.nn.", "") for n in (1, 2, 3)}
_OPS = {ast.Mult: "mul", ast.Div: "div", ast.Add: "add", ast.Sub: "sub"}


@dataclass
class ConvAffineRegion:
    start: int
    stop: int
    var: str
    conv: str  # e.g. "self.conv"
    steps: list[tuple[str, str]]  # (mul|div|add|sub|bn, operand expression)

    @property
    def has_bn(self) -> bool:
        return any(kind == "bn" for kind, _ in self.steps)

    def summary(self) -> str:
        return " -> ".join(["conv", *(kind for kind, _ in self.steps)])


def batchnorm_modules(cls: ast.ClassDef) -> set[str]:
    return {ast.unparse(n.targets[0]) for n in ast.walk(cls)
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and _attr_chain(n.targets[0])
            and isinstance(n.value, ast.Call) and ast.unparse(n.value.func) in BN_CLASSES}


def _module_call(value: ast.AST, var: str, modules: set[str]) -> str | None:
    if isinstance(value, ast.Call) and ast.unparse(value.func) in modules and len(value.args) == 1 \
            and not value.keywords and isinstance(value.args[0], ast.Name) and value.args[0].id == var:
        return ast.unparse(value.func)
    return None


def _step(stmt: ast.stmt, var: str, bns: set[str]) -> tuple[str, str] | None:
    a = _assign(stmt)
    if a is None or a[0] != var:
        return None
    if bn := _module_call(a[1], var, bns):
        return "bn", bn
    operand = _pointwise_operand(a[1], var)
    return (_OPS[type(a[1].op)], operand) if operand is not None else None


def find_conv_affine(forward: ast.FunctionDef, cls: ast.ClassDef) -> list[ConvAffineRegion]:
    """`x = self.conv(x)` followed by at least one `x = x <op> s` / `x = self.bn(x)` on the
    same name."""
    convs, bns = conv_modules(cls), batchnorm_modules(cls)
    body, out, i = forward.body, [], 0
    while i < len(body):
        a = _assign(body[i])
        conv = _module_call(a[1], a[0], convs) if a else None
        if conv is None:
            i += 1
            continue
        j, steps = i + 1, []
        while j < len(body) and (s := _step(body[j], a[0], bns)):
            steps.append(s)
            j += 1
        if steps:
            out.append(ConvAffineRegion(i, j, a[0], conv, steps))
        i = j
    return out


HELPER = '''
import itertools

_KOPT_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_KOPT_TCONVS = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
_KOPT_BNS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def _kopt_state(v):
    """What a fold read from v, to know when to refold."""
    if isinstance(v, torch.nn.Module):
        own = itertools.chain(v.parameters(recurse=False), v.buffers(recurse=False))
        return (id(v), v.training) + tuple((id(t), t._version) for t in own)
    if isinstance(v, torch.Tensor):
        return (id(v), v._version, v.device, v.dtype)
    return v


def _kopt_channel_vec(v, c, nd, device):
    """A number, or a tensor constant over every dim of an nd-dim conv output but its c
    channels (dim 1), as c float64 values; None when broadcasting would do anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return torch.full((c,), float(v), dtype=torch.float64, device=device)
    if not isinstance(v, torch.Tensor) or v.dtype != torch.float32 or v.device != device or v.dim() > nd:
        return None
    shape = [1] * (nd - v.dim()) + list(v.shape)
    if any(s != 1 for i, s in enumerate(shape) if i != 1) or shape[1] not in (1, c):
        return None
    return v.detach().double().reshape(-1).expand(c)


def _kopt_conv_fold(conv, steps, x):
    """(weights, bias) of conv with the steps folded in, or None when this call is not covered."""
    transposed = isinstance(conv, _KOPT_TCONVS)
    if not transposed and not isinstance(conv, _KOPT_CONVS):
        return None
    w, b = conv.weight, conv.bias
    nd = w.dim()
    if x.dim() != nd or x.dtype != torch.float32 or w.dtype != torch.float32 or x.device != w.device \\
            or conv.padding_mode != "zeros":
        return None
    c = w.shape[1] * conv.groups if transposed else w.shape[0]
    dev = w.device
    scale = torch.ones(c, dtype=torch.float64, device=dev)
    shift = b.detach().double() if b is not None else torch.zeros(c, dtype=torch.float64, device=dev)
    for kind, v in steps:
        if kind == "bn":
            if not isinstance(v, _KOPT_BNS) or v.training or v.running_mean is None or v.num_features != c:
                return None  # batch statistics: no fold
            s = (v.running_var.double() + v.eps).rsqrt()
            s = s * v.weight.double() if v.weight is not None else s
            t = v.bias.double() if v.bias is not None else torch.zeros_like(s)
            scale, shift = scale * s, shift * s + t - v.running_mean.double() * s
            continue
        u = _kopt_channel_vec(v, c, nd, dev)
        if u is None:
            return None
        if kind == "mul":
            scale, shift = scale * u, shift * u
        elif kind == "div":
            scale, shift = scale / u, shift / u
        else:
            shift = shift + u if kind == "add" else shift - u
    wd = w.detach().double()
    if transposed:  # (Cin, Cout/groups, k...): output channel o of group g is [g * Cin/g : ..., o % (Cout/g)]
        g = conv.groups
        wd = (wd.reshape(g, w.shape[0] // g, *w.shape[1:]) * scale.reshape(g, 1, w.shape[1], *[1] * (nd - 2)))
        wd = wd.reshape(w.shape)
    else:
        wd = wd * scale.reshape(c, *[1] * (nd - 1))
    return wd.float().contiguous(), shift.float().contiguous()


def _kopt_conv_apply(conv, x, w, b):
    if isinstance(conv, _KOPT_TCONVS):
        f = getattr(torch.nn.functional, f"conv_transpose{w.dim() - 2}d")
        return f(x, w, b, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation)
    return conv._conv_forward(x, w, b)
'''


def method(region: ConvAffineRegion, n: int, original: list[ast.stmt]) -> str:
    fallback = "\n".join(ast.unparse(s) for s in original)
    steps = ", ".join(f"({kind!r}, {expr})" for kind, expr in region.steps)
    v = region.var
    return f'''
def _kopt_conv_affine_{n}(self, {v}):
    """Forward's statements {region.start}-{region.stop - 1} ({region.summary()}) as one
    convolution with folded weights; the original statements when the fold does not apply."""
    fold = None
    if isinstance({v}, torch.Tensor) and not torch.is_grad_enabled():
        fold = self._kopt_conv_fold_{n}({v})
    if fold is None:
{textwrap.indent(fallback, " " * 8)}
        return {v}
    return _kopt_conv_apply({region.conv}, {v}, *fold)

def _kopt_conv_fold_{n}(self, x):
    steps = [{steps}]
    key = (x.dim(), x.dtype, x.device, _kopt_state({region.conv})) + tuple(_kopt_state(v) for _, v in steps)
    hit = self.__dict__.get("_kopt_conv_cache_{n}")
    if hit is None or hit[0] != key:
        with torch.no_grad():
            hit = (key, _kopt_conv_fold({region.conv}, steps, x))
        self.__dict__["_kopt_conv_cache_{n}"] = hit
    return hit[1]
'''


def rewrite(task_source: str, regions: list[ConvAffineRegion]) -> str:
    """The task's source (class still `Model`) with each region a call to its method."""
    return replace_regions(task_source, regions, lambda r, k, body: (
        f"_kopt_conv_affine_{k}", method(r, k, body[r.start: r.stop])))
