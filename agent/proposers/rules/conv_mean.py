"""Rule `cpu-fold-conv-global-mean`: the mean (or sum) over every spatial position of a
convolution's output, computed without running the convolution.

A convolution is linear, so its spatially averaged output is the weights applied to the
spatially summed input windows: for each kernel offset, the sum of the input over the
positions that offset reads (a strided slice for a convolution, a rectangle for a
transposed one, padding counted as zeros), then one (N, Cin*K) x (Cin*K, Cout) product.
That is Cout times less work than the convolution. Scalar or per-channel multiplies /
adds between the convolution and the mean commute with the mean and are applied after it
(with a sum, only multiplies and divides do).

Reads the forward's statements (the AST) like `affine_analysis`; the generated code checks
at run time everything the analysis cannot see (module types, groups, padding mode, that
the mean covers every spatial dim, that operands are constant over space) and otherwise
runs the task's original statements.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from kopt.agent.proposers.rules.affine_analysis import _attr_chain, _call_name, _kw, _number, _operand

CONV_CLASSES = {f"{p}{k}{n}d" for p in ("nn.", "torch.nn.", "") for k in ("Conv", "ConvTranspose") for n in (1, 2, 3)}


@dataclass
class ConvMeanRegion:
    start: int
    stop: int  # statement after the mean
    var: str
    conv: str  # e.g. "self.conv_transpose"
    between: list[int]  # indices of the scalar / per-channel statements between conv and mean
    operands: list[str]
    op: str  # mean | sum
    dims: str  # Python expression of the reduced dims (an int for adaptive pooling: all spatial)
    keepdim: bool


def conv_modules(cls: ast.ClassDef) -> set[str]:
    return {ast.unparse(n.targets[0]) for n in ast.walk(cls)
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and _attr_chain(n.targets[0])
            and isinstance(n.value, ast.Call) and ast.unparse(n.value.func) in CONV_CLASSES}


def _assign(stmt: ast.stmt) -> tuple[str, ast.AST] | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, ast.BinOp(left=ast.Name(stmt.target.id, ast.Load()), op=stmt.op, right=stmt.value)
    return None


def _pointwise_operand(value: ast.AST, var: str) -> str | None:
    """`var * s`, `s * var`, `var / s`, `var + s`, `s + var`, `var - s`: the operand s."""
    if not isinstance(value, ast.BinOp) or not isinstance(value.op, (ast.Mult, ast.Div, ast.Add, ast.Sub)):
        return None
    if isinstance(value.left, ast.Name) and value.left.id == var:
        return _operand(value.right)
    if isinstance(value.op, (ast.Mult, ast.Add)) and isinstance(value.right, ast.Name) and value.right.id == var:
        return _operand(value.left)
    return None


def _spatial_reduction(value: ast.AST, var: str) -> tuple[str, str, bool] | None:
    """(mean|sum, dims expression, keepdim) for a reduction of `var` over listed dims, or
    adaptive average pooling to size 1 (dims "-1": every spatial dim, keepdim)."""
    if not isinstance(value, ast.Call):
        return None
    name, receiver = _call_name(value)
    first = receiver if receiver is not None else (value.args[0] if value.args else None)
    if not (isinstance(first, ast.Name) and first.id == var):
        return None
    pos = 0 if receiver is not None else 1
    if name.startswith("adaptive_avg_pool") and receiver is None:
        size = _kw(value, "output_size", 1)
        sizes = size.elts if isinstance(size, (ast.Tuple, ast.List)) else [size]
        return ("mean", "-1", True) if size is not None and all(_number(s) == 1.0 for s in sizes) else None
    if name not in ("mean", "sum"):
        return None
    dims = _kw(value, "dim", pos)
    keep = _kw(value, "keepdim", pos + 1)
    if not isinstance(dims, (ast.Tuple, ast.List)) or not all(_number(e) is not None for e in dims.elts):
        return None
    if keep is not None and not (isinstance(keep, ast.Constant) and isinstance(keep.value, bool)):
        return None
    if any(k.arg not in ("dim", "keepdim") for k in value.keywords) or len(value.args) > pos + 2:
        return None
    return name, ast.unparse(dims), bool(keep is not None and keep.value)


def find_conv_means(forward: ast.FunctionDef, cls: ast.ClassDef) -> list[ConvMeanRegion]:
    convs = conv_modules(cls)
    body, out, i = forward.body, [], 0
    while i < len(body):
        a = _assign(body[i])
        call = a[1] if a else None
        if not (isinstance(call, ast.Call) and ast.unparse(call.func) in convs and len(call.args) == 1
                and not call.keywords and isinstance(call.args[0], ast.Name) and call.args[0].id == a[0]):
            i += 1
            continue
        var, j, between, operands = a[0], i + 1, [], []
        while j < len(body) and (b := _assign(body[j])) and b[0] == var and _pointwise_operand(b[1], var):
            between.append(j)
            operands.append(_pointwise_operand(b[1], var))
            j += 1
        red = _spatial_reduction(_assign(body[j])[1], var) if j < len(body) and _assign(body[j]) \
            and _assign(body[j])[0] == var else None
        shifts = any(isinstance(_assign(body[k])[1].op, (ast.Add, ast.Sub)) for k in between)
        if red is None or (red[0] == "sum" and shifts):  # a sum over space scales an added constant
            i += 1
            continue
        out.append(ConvMeanRegion(i, j + 1, var, ast.unparse(call.func), between, operands, *red))
        i = j + 1
    return out


HELPER = '''
import itertools
import math


def _kopt_conv_mean(conv, x, dims, op):
    """op (mean|sum) over every spatial dim of conv(x), keepdim, without the convolution;
    None when this call is outside what the fold covers."""
    transposed = isinstance(conv, (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d))
    if not transposed and not isinstance(conv, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
        return None
    w, b = conv.weight, conv.bias
    sp = w.dim() - 2
    if x.dim() != sp + 2 or x.dtype != torch.float32 or w.dtype != torch.float32 or conv.groups != 1 \\
            or conv.padding_mode != "zeros" or isinstance(conv.padding, str) or x.device != w.device:
        return None
    if dims != -1 and sorted(d % x.dim() for d in dims) != list(range(2, x.dim())):
        return None
    k, s, p, d = w.shape[2:], conv.stride, conv.padding, conv.dilation
    n_in = x.shape[2:]
    if transposed:
        op_ = conv.output_padding
        out = [(n_in[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op_[i] + 1 for i in range(sp)]
    else:
        out = [(n_in[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(sp)]
    if any(o <= 0 for o in out) or x.shape[1] != (w.shape[0] if transposed else w.shape[1]):
        return None
    if not transposed and any(p):
        pad = [q for i in reversed(range(sp)) for q in (p[i], p[i])]
        x = torch.nn.functional.pad(x, pad)
    sums = []
    for offset in itertools.product(*[range(kk) for kk in k]):
        index = [slice(None), slice(None)]
        for i, kk in enumerate(offset):
            if transposed:  # input positions i with 0 <= i*s - p + kk*d < out
                lo = max(0, -(-(p[i] - kk * d[i]) // s[i]))
                hi = min(n_in[i] - 1, (out[i] - 1 + p[i] - kk * d[i]) // s[i])
                index.append(slice(lo, max(lo, hi + 1)))
            else:
                start = kk * d[i]
                index.append(slice(start, start + (out[i] - 1) * s[i] + 1, s[i]))
        sums.append(x[tuple(index)].sum(dim=tuple(range(2, sp + 2))).double())
    window = torch.stack(sums, dim=-1)  # (N, Cin, K)
    wf = w.detach().double().flatten(2)  # conv: (Cout, Cin, K); transposed: (Cin, Cout, K)
    y = torch.einsum("nck,cok->no" if transposed else "nck,ock->no", window, wf)
    count = math.prod(out)
    if b is not None:
        y = y + b.detach().double() * count
    if op == "mean":
        y = y / count
    return y.float().reshape(*y.shape, *([1] * sp))


def _kopt_space_free(values, nd):
    """Every operand is a number or constant over the spatial dims of an nd-dim value."""
    for v in values:
        if isinstance(v, torch.Tensor):
            if v.dim() > nd or any(s != 1 for s in v.shape[max(0, v.dim() - nd + 2):]):
                return False
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
    return True
'''


def method(region: ConvMeanRegion, n: int, original: list[ast.stmt], between: list[ast.stmt]) -> str:
    fallback = "\n".join(ast.unparse(s) for s in original)
    again = "\n".join(ast.unparse(s) for s in between)
    ops = ", ".join(region.operands) + ("," if len(region.operands) == 1 else "")
    squeeze = "" if region.keepdim else f"\n    {region.var} = {region.var}.reshape({region.var}.shape[:2])"
    return f'''
def _kopt_conv_mean_{n}(self, {region.var}):
    """Forward's statements {region.start}-{region.stop - 1}: the {region.op} over space of the
    convolution's output, from window sums of the input (no convolution)."""
    y = None
    if isinstance({region.var}, torch.Tensor) and not torch.is_grad_enabled() \\
            and _kopt_space_free(({ops}), {region.var}.dim()):
        y = _kopt_conv_mean({region.conv}, {region.var}, {region.dims}, {region.op!r})
    if y is None:
{textwrap.indent(fallback, " " * 8)}
        return {region.var}
    {region.var} = y
{textwrap.indent(again, " " * 4)}{squeeze}
    return {region.var}
'''


def replace_regions(task_source: str, regions: list, method_of) -> str:
    """The task's source (class still `Model`) with each region (`start`, `stop`, `var`) of
    forward a call `var = self.<name>(var)`; `method_of(region, k, statements)` gives
    (name, source of the methods added to the class)."""
    tree = ast.parse(task_source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model")
    fwd = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    body, added = [], []
    for i, stmt in enumerate(fwd.body):
        region = next((r for r in regions if r.start == i), None)
        if region is not None:
            name, source = method_of(region, regions.index(region), fwd.body)
            body += ast.parse(f"{region.var} = self.{name}({region.var})").body
            added += ast.parse(source).body
        elif not any(r.start < i < r.stop for r in regions):
            body.append(stmt)
    fwd.body = body
    cls.body += added
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def rewrite(task_source: str, regions: list[ConvMeanRegion]) -> str:
    """The task's source (class still `Model`) with each region a call to its method."""
    return replace_regions(task_source, regions, lambda r, k, body: (
        f"_kopt_conv_mean_{k}", method(r, k, body[r.start: r.stop], [body[j] for j in r.between])))
