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


def _regex_kind(source: str) -> str:
    """The fallback for text that does not parse: patterns over the raw source."""
    if re.search(r"\bcupy\b", source):
        return "cupy"
    if re.search(r"\bimport triton\b|\bfrom triton\b|@triton\.jit", source):
        return "triton"
    if re.search(r"cuda_sources\s*=|__global__|\.cu['\"]", source):
        return "cuda"
    if re.search(r"load_inline|cpp_extension|\bctypes\b|load_cpp|cffi", source):
        return "cpp"
    return "torch"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of string constants that stand alone as statements (docstrings, notes)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def kernel_kind(source: str) -> str:
    """The kernel backend, from the code only: imports, names, attributes, keyword
    arguments and string literals that are not docstrings (a comment saying "no cupy"
    changes nothing)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _regex_kind(source)
    notes = _docstrings(tree)
    names: set[str] = set()
    strings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(part for a in node.names for part in a.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            names.update((node.module or "").split("."))
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in notes:
            strings.append(node.value)
    if "cupy" in names or any(re.fullmatch(r"cupy(\..*)?", s) for s in strings):
        return "cupy"
    if "triton" in names:
        return "triton"
    if "cuda_sources" in names or any("__global__" in s or s.endswith(".cu") for s in strings):
        return "cuda"
    if names & {"load_inline", "cpp_extension", "ctypes", "load_cpp", "cffi"} or \
            any(re.fullmatch(r"(ctypes|cffi|torch\.utils\.cpp_extension)", s) for s in strings):
        return "cpp"
    return "torch"


def scan(source: str) -> ScanResult:
    res = ScanResult(kernel=kernel_kind(source))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return res
    # a class Model of the solution's own (the reference pasted in) may be subclassed; the
    # task's Model loaded from elsewhere is caught by what its code is (reuse.py)
    own_model = any(isinstance(n, ast.ClassDef) and n.name == "Model" for n in ast.walk(tree))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "ModelNew" and not own_model:
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                if name == "Model":
                    res.rejected = "ModelNew subclasses the reference Model (falls back to the reference)"
        if isinstance(node, ast.Try):
            res.warnings.append(f"line {node.lineno}: try/except around code (a silent fallback to PyTorch?)")
        if isinstance(node, ast.Attribute) and node.attr in ("_getframe", "argv", "environ", "get_objects",
                                                             "get_referrers", "settrace", "setprofile"):
            res.warnings.append(f"line {node.lineno}: inspects the interpreter ({node.attr})")
        if isinstance(node, ast.Name) and node.id == "Model" and isinstance(node.ctx, ast.Load) and not own_model:
            res.warnings.append(f"line {node.lineno}: refers to the reference Model")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "pip install" in node.value:
            res.warnings.append(f"line {node.lineno}: installs packages at run time")
    res.warnings = sorted(set(res.warnings))
    return res
