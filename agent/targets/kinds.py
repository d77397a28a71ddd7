"""Targets: what `kopt optimize` works on. `load_target` tells the kind from the path
(a KernelBench task file, a program source, a git repository) unless `--kind` says."""
from __future__ import annotations

import ast
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.targets.kernelbench.kernelbench_target import KernelBenchTarget
from kopt.agent.targets.option_flags import as_flags
from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.agent.targets.repo.repo_target import RepoTarget

KINDS = ("kernelbench", "program", "repo")
PROGRAM_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++", ".py")


def detect_kind(path: Path) -> str:
    if path.is_dir():
        return "repo"
    if path.suffix == ".py":
        try:
            names = {n.name for n in ast.parse(path.read_text()).body
                     if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        except (SyntaxError, OSError, UnicodeDecodeError):
            return "kernelbench"  # load_task reports the problem in one line
        return "kernelbench" if {"Model", "get_inputs"} & names else "program"
    if path.suffix in PROGRAM_SUFFIXES:
        return "program"
    return "kernelbench"


def load_target(path: str | Path, kind: str | None = None, eval_cfg=None, options: dict | None = None):
    """The Target for PATH. `options` are the kind-specific flags (program: tests, validator,
    checker, std; repo: test, bench, ...); a flag that does not fit the kind is an error."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"target not found: {p} (give a KernelBench task file, a program source, "
                             f"or a git repository folder)")
    kind = kind or detect_kind(p)
    options = {k: v for k, v in (options or {}).items() if v not in (None, False, [], ())}
    if kind not in KINDS:
        raise UserInputError(f"unknown --kind {kind!r}; use one of: {', '.join(KINDS)}")
    if kind == "kernelbench":
        if options:
            raise UserInputError(f"{as_flags(options)} does not apply to a "
                                 f"KernelBench task; it is for program or repository targets")

        return KernelBenchTarget.from_path(p, eval_cfg)
    if kind == "program":
        return ProgramTarget.from_options(p, **options)

    return RepoTarget.from_options(p, **options)
