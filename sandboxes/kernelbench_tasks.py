"""KernelBench-format task files: a file with `Model`, `get_inputs()` and `get_init_inputs()`.

Here, below the evaluator, because the evaluator loads tasks and solutions with it; the
target built on it is `agent/targets/kernelbench/kernelbench_target.py`.

Validation here is static (an AST read) so that a broken task is reported in one line
before any worker starts, and so that `kopt` needs no torch to say what is wrong.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import UserInputError

REQUIRED = ("Model", "get_inputs", "get_init_inputs")


@dataclass(frozen=True)
class KernelBenchTask:
    path: Path
    source: str
    level: int | None = None
    problem: int | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def load_task(path: str | Path) -> KernelBenchTask:
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"task file not found: {p} (give a KernelBench task .py file)")
    if p.is_dir():
        raise UserInputError(f"{p} is a folder; give a task file, or --suite {p} --level L --problem N")
    try:
        source = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read task file {p}: {e}") from None
    try:
        tree = ast.parse(source, filename=str(p))
    except SyntaxError as e:
        raise UserInputError(f"syntax error in task {p} line {e.lineno}: {e.msg}; fix the task file") from None
    missing = [n for n in REQUIRED if n not in _top_level_names(tree)]
    if missing:
        raise UserInputError(f"task {p} does not define {', '.join(missing)}; a KernelBench task needs "
                             f"class Model, get_inputs() and get_init_inputs()")
    level = re.search(r"level(\d+)", str(p.parent))
    num = re.match(r"(\d+)_", p.name)
    return KernelBenchTask(p.resolve(), source, int(level.group(1)) if level else None,
                           int(num.group(1)) if num else None)


def suite_root(path: str | Path) -> Path:
    """The folder holding level1/, level2/...: a checkout root or its KernelBench/ folder."""
    p = Path(path)
    if not p.is_dir():
        raise UserInputError(f"suite folder not found: {p} (give a KernelBench checkout or a folder of tasks)")
    for cand in (p / "KernelBench", p):
        if any(cand.glob("level*")):
            return cand
    return p


def suite_tasks(path: str | Path, level: int | None = None) -> list[Path]:
    """Task files of a suite, ordered by level then problem number."""
    root = suite_root(path)
    dirs = sorted(root.glob(f"level{level}" if level else "level*")) or [root]
    if level and not (root / f"level{level}").is_dir() and any(root.glob("level*")):
        raise UserInputError(f"{root} has no level{level}/ folder")

    def key(p: Path):
        m = re.match(r"(\d+)_", p.name)
        return (str(p.parent), int(m.group(1)) if m else 10**9, p.name)

    return sorted((f for d in dirs for f in d.glob("*.py") if not f.name.startswith("_")), key=key)


def resolve_problem(suite: str | Path, level: int, problem: int) -> Path:
    for f in suite_tasks(suite, level):
        if re.match(rf"0*{problem}_", f.name):
            return f
    raise UserInputError(f"no problem {problem} in level {level} of {suite_root(suite)}")


def load_solution_source(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"solution file not found: {p} (give a .py file defining ModelNew)")
    if p.is_dir():
        raise UserInputError(f"{p} is a folder; give a solution .py file defining ModelNew")
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read solution file {p}: {e}") from None


def reference_solution(task_source: str) -> str:
    """The task's own Model renamed ModelNew: the baseline every run starts from."""
    return ast.unparse(rename_class(ast.parse(task_source), "Model", "ModelNew")) + "\n"


def rename_class(tree: ast.AST, old: str, new: str) -> ast.AST:
    """`tree` with class `old` and every reference to it by name called `new` (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == old:
            node.name = new
        elif isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return tree
