"""What a solution's source says about itself before it runs: which kernel backend it
uses, rules it breaks outright, and patterns worth a warning."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field


@dataclass
class ScanResult:
    kernel: str = "torch"
    rejected: str | None = None
    warnings: list[str] = field(default_factory=list)


def kernel_kind(source: str) -> str:
    if re.search(r"\bcupy\b", source):
        return "cupy"
    if re.search(r"\bimport triton\b|\bfrom triton\b|@triton\.jit", source):
        return "triton"
    if re.search(r"cuda_sources\s*=|__global__|\.cu['\"]", source):
        return "cuda"
    if re.search(r"load_inline|cpp_extension|\bctypes\b|load_cpp|cffi", source):
        return "cpp"
    return "torch"


def scan(source: str) -> ScanResult:
    res = ScanResult(kernel=kernel_kind(source))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return res
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "ModelNew":
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                if name == "Model":
                    res.rejected = "ModelNew subclasses the reference Model (falls back to the reference)"
        if isinstance(node, ast.Try):
            res.warnings.append(f"line {node.lineno}: try/except around code (a silent fallback to PyTorch?)")
        if isinstance(node, ast.Attribute) and node.attr in ("_getframe", "argv", "environ", "get_objects",
                                                             "get_referrers", "settrace", "setprofile"):
            res.warnings.append(f"line {node.lineno}: inspects the interpreter ({node.attr})")
        if isinstance(node, ast.Name) and node.id == "Model" and isinstance(node.ctx, ast.Load):
            res.warnings.append(f"line {node.lineno}: refers to the reference Model")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "pip install" in node.value:
            res.warnings.append(f"line {node.lineno}: installs packages at run time")
    res.warnings = sorted(set(res.warnings))
    return res
