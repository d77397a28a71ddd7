"""A KernelBench task's size constants: which module-level integers set tensor sizes, how each
is classified (batch, input-only "spatial", model width, structural) and the next smaller sizes
to try. Pure functions of the source; `fit.py` measures each step with `size_probe.py`."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

BATCH = re.compile(r"(^|_)batch|^bs$|^b$|^n_?samples$|^num_samples$", re.I)
STRUCTURAL = re.compile(r"chan|kernel|group|stride|pad|dilat|head|class|layer(?!_?sizes?$)|vocab|expert|pool|^num_|"
                        r"rank|order|axis|reduce|topk", re.I)
WIDTH = re.compile(r"feature|hidden|embed|width|size|dim|length|units", re.I)
# batch 2, not 1: a training-mode BatchNorm followed by a per-sample mean is exactly zero
# at batch 1 (upstream level 2 #77 turned degenerate when fitted to one sample)
MIN_SIZE = {"batch": 2, "spatial": 8, "width": 16}
TIERS = ("batch", "spatial", "width")


@dataclass
class SizeConstant:
    """An integer literal assigned at module level that may set a tensor size."""

    name: str
    value: int
    kind: str  # batch | spatial | width | structural
    span: tuple[int, int, int, int]  # lineno, col, end_lineno, end_col of the value expression


def _int_value(node: ast.AST) -> int | None:
    """The value of an integer literal or literal arithmetic (`1024 * 4`, `2 ** 14`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Pow,
                                                            ast.LShift)):
        a, b = _int_value(node.left), _int_value(node.right)
        if a is None or b is None or (isinstance(node.op, (ast.Pow, ast.LShift)) and b > 64):
            return None
        ops = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.FloorDiv: int.__floordiv__,
               ast.Pow: int.__pow__, ast.LShift: int.__lshift__}
        try:
            return ops[type(node.op)](a, b)
        except ZeroDivisionError:
            return None
    return None


def _names_in(tree: ast.Module, func: str) -> set[str]:
    """Names `func` reads, directly or through module-level assignments (`shape = (b, n)`)."""
    assigned = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        assigned.setdefault(n.id, set()).update(used)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    todo = list(names)
    while todo:
        for used in assigned.get(todo.pop(), ()):
            if used not in names:
                names.add(used)
                todo.append(used)
    return names


def _model_reads(tree: ast.Module) -> set[str]:
    """Module-level names the Model class reads itself (its methods' parameters and locals aside)."""
    reads: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            names = [n for n in ast.walk(node) if isinstance(n, ast.Name)]
            local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
            local |= {n.id for n in names if isinstance(n.ctx, ast.Store)}
            reads |= {n.id for n in names if isinstance(n.ctx, ast.Load)} - local
    return reads


def classify(name: str, in_inputs: bool, in_init: bool) -> str:
    """batch | spatial (shapes inputs only) | width (a model size) | structural (never scaled)."""
    if not in_init:
        if BATCH.search(name):
            return "batch"
        if in_inputs and not STRUCTURAL.search(name):
            return "spatial"
        return "structural"
    if STRUCTURAL.search(name) or name.lower() in ("dim", "k") or BATCH.search(name):
        return "structural"
    if WIDTH.search(name) or re.fullmatch(r"[MNLDHW]", name):
        return "width"
    return "structural"


KIND_ORDER = ("structural", "width", "spatial", "batch")  # most careful first


def _kind(name: str, in_inputs: set[str], in_init: set[str]) -> str:
    if name not in in_inputs | in_init:
        return "structural"  # not a size of anything we can see
    return classify(name, name in in_inputs, name in in_init)


def size_constants(source: str) -> list[SizeConstant]:
    """Module-level integer constants, each with its kind (pure: an AST read)."""
    tree = ast.parse(source)
    in_inputs, in_init = _names_in(tree, "get_inputs"), _names_in(tree, "get_init_inputs")
    # read by the Model class itself (`self.hidden = torch.randn(batch_size, ...)`): a solution's
    # own copy of the constant would not follow a fitted value, so it is never scaled
    in_model = _model_reads(tree)

    def kind_of(name: str) -> str:
        return "structural" if name in in_model else _kind(name, in_inputs, in_init)

    out = []
    seq = (ast.Tuple, ast.List)
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        value = node.value
        if len(node.targets) > 1:  # `height = width = 256`: one literal, every name's kind counts
            if not all(isinstance(t, ast.Name) for t in node.targets):
                continue
            ids = [t.id for t in node.targets]
            kinds = [kind_of(i) for i in ids]
            pairs = [("=".join(ids), min(kinds, key=KIND_ORDER.index), value)]
        elif isinstance(node.targets[0], ast.Tuple):
            target = node.targets[0]
            if not isinstance(value, ast.Tuple) or len(target.elts) != len(value.elts):
                continue
            pairs = [(t.id, kind_of(t.id), v) for t, v in zip(target.elts, value.elts)
                     if isinstance(t, ast.Name)]
        elif isinstance(node.targets[0], ast.Name):
            pairs = [(node.targets[0].id, kind_of(node.targets[0].id), value)]
        else:
            continue
        for base, kind, v in pairs:
            # `input_shape = (4096, 128)`, `layer_sizes = [400, 800]`: each element is a size of its own
            items = [(f"{base}[{i}]", e) for i, e in enumerate(v.elts)] if isinstance(v, seq) else [(base, v)]
            for name, e in items:
                n = _int_value(e)
                if n is not None and n >= 1:
                    out.append(SizeConstant(name, n, kind, (e.lineno, e.col_offset, e.end_lineno, e.end_col_offset)))
    return out


def rewrite(source: str, constants: list[SizeConstant], sizes: dict[str, int]) -> str:
    """The source with the named constants' value expressions replaced by new integers."""
    lines = source.splitlines(keepends=True)
    todo = sorted((c for c in constants if c.name in sizes and sizes[c.name] != c.value),
                  key=lambda c: c.span, reverse=True)
    for c in todo:
        l0, c0, l1, c1 = c.span
        head = lines[l0 - 1][:c0]
        tail = lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [f"{head}{sizes[c.name]}{tail}"]
    return "".join(lines)


def next_step(constants: list[SizeConstant], sizes: dict[str, int], frozen: set[str],
              kinds: tuple[str, ...] = TIERS) -> dict[str, int] | None:
    """The next smaller sizes: halve the batch while it is above 8, then the input-only
    sizes together, then the batch down to 2, then model widths (only those of `kinds`).
    None when nothing is left."""
    def shrinkable(kind: str, floor: int) -> list[SizeConstant]:
        return [c for c in constants if c.kind == kind and c.name not in frozen and sizes[c.name] // 2 >= floor]

    for kind, floor in (("batch", 8), ("spatial", MIN_SIZE["spatial"]), ("batch", MIN_SIZE["batch"]),
                        ("width", MIN_SIZE["width"])):
        if kind not in kinds:
            continue
        group = shrinkable(kind, floor)
        if group:
            return {**sizes, **{c.name: sizes[c.name] // 2 for c in group}}
    return None
