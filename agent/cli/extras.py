"""`kopt doctor`'s extras: which optional dependency sets (pip install 'kopt[X]') are installed
here and what each one enables, read from the installed package's own metadata."""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, metadata, requires, version

ENABLES = {
    "torch": "KernelBench tasks: the PyTorch reference and torch/C++ candidates",
    "llm": "--model openai/<name> and litellm/<provider>/<name>",
    "gpu": "Triton and CuPy kernels (--device cuda)",
    "train": "kopt train (GRPO) and --model hf:<path>",
    "dist": "--executor ray and --sandbox docker",
    "report": "training plots (training.png) and bench plots",
    "skills": "tree-sitter views of C/C++/Python for skill mining and program targets",
    "repo": "repository targets: py-spy profiles of the benchmark",
    "dev": "the test suite (pytest, ruff) and the benchmarks' optional paths",
    "all": "everything above",
}
EXTRA = re.compile(r'extra\s*==\s*"([^"]+)"')
NAME = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?")


def extras_status() -> dict[str, dict]:
    """{extra: {"installed": bool, "missing": [packages], "enables": text}} for each declared extra."""
    try:
        declared = metadata("kopt").get_all("Provides-Extra") or []
        reqs = requires("kopt") or []
    except PackageNotFoundError:
        return {}
    needs: dict[str, list[str]] = {e: [] for e in declared}
    for req in reqs:
        m = EXTRA.search(req)
        if m and m.group(1) in needs:
            needs[m.group(1)].append(req.split(";")[0].strip())
    out = {}
    for extra in declared:
        missing = sorted({n for r in needs[extra] for n in _missing(r, needs)})
        out[extra] = {"installed": not missing, "missing": missing, "enables": ENABLES.get(extra, "")}
    return out


def _missing(req: str, needs: dict[str, list[str]], seen: frozenset = frozenset()) -> list[str]:
    """The packages of `req` not installed; kopt[a,b] stands for its extras' packages."""
    m = NAME.match(req)
    name, extras = m.group(1), (m.group(2) or "")[1:-1]
    if name == "kopt":
        return [n for e in extras.split(",") if e and e not in seen for r in needs.get(e, [])
                for n in _missing(r, needs, seen | {e})]
    try:
        version(name)
    except PackageNotFoundError:
        return [name]
    return []


def extras_lines() -> list[str]:
    """One line per extra for the plain `kopt doctor` output."""
    lines = []
    for extra, s in extras_status().items():
        state = "installed" if s["installed"] else f"missing {', '.join(s['missing'][:3])}"
        lines.append(f"kopt[{extra}]".ljust(16) + f"{state:<28} {s['enables']}")
    return lines
