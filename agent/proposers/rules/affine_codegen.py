"""Writes a `ModelNew` whose affine regions (`affine_analysis`) are one matrix product
with weights folded from the task's own parameters.

The fold is made once and kept until a parameter it reads changes (the key is each
tensor's identity and version counter, so the evaluator re-drawing the weights in place
refolds): ModelNew keeps the reference's `__init__` and parameters unchanged. The folded
weights are computed in float64 and stored in float32. A call the fold does not cover --
autograd on, another dtype or device, a weight or operand whose shape does not broadcast
as the fold assumes -- runs the task's original statements instead.
"""
from __future__ import annotations

import ast
import textwrap

from kopt.agent.proposers.rules.affine_analysis import AffineRegion, Step

HELPERS = '''
def _kopt_matrix(w, device):
    """A float32 2-D weight as float64, or None (the fold covers nothing else)."""
    if not isinstance(w, torch.Tensor) or w.dtype != torch.float32 or w.dim() != 2 or w.device != device:
        return None
    return w.detach().double()


def _kopt_vec(v, n, nd, device):
    """A number or tensor that broadcasts over the last dim of an nd-dim value of width n,
    as n float64 values; None when broadcasting would change the value's shape or dtype."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return torch.full((n,), float(v), dtype=torch.float64, device=device)
    if not isinstance(v, torch.Tensor) or v.dtype != torch.float32 or v.device != device or v.dim() > nd:
        return None
    if v.dim() == 0:
        return v.detach().double().reshape(1).expand(n)
    if any(s != 1 for s in v.shape[:-1]) or v.shape[-1] not in (1, n):
        return None
    return v.detach().double().reshape(-1).expand(n)


def _kopt_key(values):
    return tuple((id(v), v._version, v.device) if isinstance(v, torch.Tensor) else v for v in values)
'''


def _step_code(s: Step, region: AffineRegion) -> list[str]:
    """Python lines updating `env` for one step; `return None` where the fold does not apply."""
    if s.kind in ("linear", "linear_t"):
        lines = [f"w = _kopt_matrix({s.operand}, dev)", "if w is None:", "    return None"]
        if s.module:
            lines = [f"if not isinstance({s.module}, torch.nn.Linear):", "    return None"] + lines
        if s.kind == "linear_t":
            lines.append("w = w.t()")
        lines.append("b = torch.zeros(w.shape[0], dtype=torch.float64, device=dev)")
        if s.bias:
            lines += [f"if {s.bias} is not None:", f"    b = _kopt_vec({s.bias}, w.shape[0], 1, dev)",
                      "if b is None:", "    return None"]
        if s.src not in {t.dst for t in region.steps[: region.steps.index(s)]}:
            lines += ["if w.shape[1] != k:", "    return None", f"env[{s.dst!r}] = [w, b, nd]"]
        else:
            lines += [f"a, c, d = env[{s.src!r}]", "if w.shape[1] != a.shape[0]:", "    return None",
                      f"env[{s.dst!r}] = [w @ a, w @ c + b, d]"]
        return lines
    src = f"env[{s.src!r}]"
    if s.kind == "scale":
        return [f"a, c, d = {src}", f"v = _kopt_vec({s.operand}, a.shape[0], d, dev)", "if v is None:",
                "    return None", f"env[{s.dst!r}] = [a {'*' if s.op == 'mul' else '/'} v[:, None], "
                f"c {'*' if s.op == 'mul' else '/'} v, d]"]
    if s.kind == "shift":
        return [f"a, c, d = {src}", f"v = _kopt_vec({s.operand}, a.shape[0], d, dev)", "if v is None:",
                "    return None", f"env[{s.dst!r}] = [a, c {'+' if s.op == 'add' else '-'} v, d]"]
    if s.kind == "neg":
        return [f"a, c, d = {src}", f"env[{s.dst!r}] = [-a, -c, d]"]
    if s.kind == "copy":
        return [f"env[{s.dst!r}] = list({src})"]
    if s.kind == "add2":
        sign = "+" if s.op == "add" else "-"
        return [f"a, c, d = {src}", f"a2, c2, d2 = env[{s.other!r}]", "if a.shape != a2.shape or d != d2:",
                "    return None", f"env[{s.dst!r}] = [a {sign} a2, c {sign} c2, d]"]
    # reduce / identity over the features: the last dim of the value
    lines = [f"a, c, d = {src}", f"if {s.dim} not in (-1, d - 1):", "    return None"]
    if s.kind == "identity":
        return lines + ["if a.shape[0] != 1:", "    return None", f"env[{s.dst!r}] = [a, c, d]"]
    div = " / a.shape[0]" if s.op == "mean" else ""
    return lines + [f"env[{s.dst!r}] = [a.sum(0, keepdim=True){div}, c.sum(0, keepdim=True){div}, "
                    f"{'d' if s.keepdim else 'd - 1'}]"]


def _operands(region: AffineRegion) -> list[str]:
    """The module values the fold reads (its cache key)."""
    out: list[str] = []
    for s in region.steps:
        for text in (s.operand, s.bias, s.module):
            if text and text.startswith("self") and text not in out:
                out.append(text)
    return out


def methods(region: AffineRegion, n: int, original: list[ast.stmt]) -> str:
    """Source of the region's three methods: the call, its cached fold, and the fold."""
    body = "\n".join(line for s in region.steps for line in _step_code(s, region))
    fallback = "\n".join(ast.unparse(st) for st in original)
    keys = ", ".join(_operands(region)) + ("," if len(_operands(region)) == 1 else "")
    return f'''
def _kopt_affine_{n}(self, {region.input}):
    """Forward's statements {region.start}-{region.stop - 1} ({region.summary()}) as one matrix
    product with folded weights; the original statements when the fold does not apply."""
    fold = None
    if isinstance({region.input}, torch.Tensor) and {region.input}.dtype == torch.float32 \\
            and {region.input}.dim() >= 2 and not torch.is_grad_enabled():
        fold = self._kopt_fold_{n}({region.input})
    if fold is None:
{textwrap.indent(fallback, " " * 8)}
        return {region.output}
    a, c, squeeze = fold
    flat = {region.input}.reshape(-1, {region.input}.shape[-1])
    y = torch.addmm(c, flat, a.t()).reshape(*{region.input}.shape[:-1], a.shape[0])
    return y.squeeze(-1) if squeeze else y

def _kopt_fold_{n}(self, x):
    """(weights, bias, squeeze) folded for this parameter version, or None."""
    key = (x.dim(), x.shape[-1], x.device) + _kopt_key(({keys}))
    hit = self.__dict__.get("_kopt_cache_{n}")
    if hit is None or hit[0] != key:
        with torch.no_grad():
            hit = (key, self._kopt_build_{n}(x))
        self.__dict__["_kopt_cache_{n}"] = hit
    return hit[1]

def _kopt_build_{n}(self, x):
    k, nd, dev = x.shape[-1], x.dim(), x.device
    env = {{}}
{textwrap.indent(body, " " * 4)}
    a, c, d = env[{region.output!r}]
    return a.float().contiguous(), c.float().contiguous(), d == nd - 1
'''


def rewrite(task_source: str, cls: ast.ClassDef, forward: ast.FunctionDef,
            regions: list[AffineRegion]) -> str:
    """The task's source with each region replaced by a call to its folding method (the
    class is still `Model`; the caller renames it and may fuse what follows)."""
    tree = ast.parse(task_source)
    cls_new = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.name)
    fwd_new = next(n for n in cls_new.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    body: list[ast.stmt] = []
    added: list[ast.stmt] = []
    for i, stmt in enumerate(fwd_new.body):
        region = next((r for r in regions if r.start == i), None)
        if region is not None:
            n = regions.index(region)
            body += ast.parse(f"{region.output} = self._kopt_affine_{n}({region.input})").body
            added += ast.parse(methods(region, n, fwd_new.body[region.start: region.stop])).body
        elif not any(r.start < i < r.stop for r in regions):
            body.append(stmt)
    fwd_new.body = body
    cls_new.body += added
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def with_helpers(solution: str, helpers: str = HELPERS) -> str:
    """Insert a rule's module-level helpers right before `class ModelNew`."""
    head, sep, tail = solution.partition("\nclass ModelNew")
    if not sep:
        raise ValueError("generated solution has no class ModelNew")
    return head + "\n" + helpers + "\n" + sep + tail
