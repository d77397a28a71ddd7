"""Which tasks a `kopt bench SUITE` run covers.

SUITE is a KernelBench checkout, its `KernelBench/` folder (holding `level1/`, `level2/`...),
a flat folder of KernelBench-format task files, or a folder of program targets (one
subfolder each: the source -- `prog.cpp` or its only source --, `tests/`, maybe
`validator.*`). Every way of asking for tasks that finds none is a one-line error that
lists what *was* found, so a typo costs one retry.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import UserInputError

REQUIRED = {"Model", "get_inputs", "get_init_inputs"}


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: where it is and how the user names it."""

    path: Path
    level: int | None
    number: int  # the KernelBench problem number, or the 1-based position in a folder without numbers
    kind: str = "kernelbench"  # or "program": a source with a tests/ folder (and maybe a validator)
    tests: Path | None = None
    validator: Path | None = None

    @property
    def name(self) -> str:
        return self.path.parent.name if self.kind == "program" else self.path.stem

    def record(self) -> dict:
        """What bench.json keeps of the task (enough to rebuild it on --resume)."""
        return {"id": self.id, "name": self.name, "level": self.level, "number": self.number, "path": str(self.path),
                "kind": self.kind, "tests": str(self.tests) if self.tests else None,
                "validator": str(self.validator) if self.validator else None}

    @classmethod
    def from_record(cls, r: dict) -> SuiteTask:
        return cls(Path(r["path"]), r["level"], r["number"], r.get("kind", "kernelbench"),
                   Path(r["tests"]) if r.get("tests") else None, Path(r["validator"]) if r.get("validator") else None)

    @property
    def id(self) -> str:
        """Unique inside a bench run; also its folder name under `tasks/`."""
        return f"level{self.level}-{self.name}" if self.level is not None else self.name


def _is_task(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return REQUIRED <= names


def _level_of(folder: Path) -> int | None:
    m = re.fullmatch(r"level_?(\d+)(?:_.*)?", folder.name)
    return int(m.group(1)) if m else None


def _number_key(path: Path) -> tuple[int, str]:
    m = re.match(r"(\d+)_", path.name)
    return (int(m.group(1)) if m else 10**9, path.name)


def _level_dirs(root: Path) -> dict[int, Path]:
    """level folders of a checkout root, its KernelBench/ folder, or root itself."""
    for base in (root / "KernelBench", root):
        dirs = {_level_of(d): d for d in base.glob("level*") if d.is_dir() and _level_of(d) is not None}
        if dirs:
            return dict(sorted(dirs.items()))
    return {}


def _tasks_in(folder: Path, level: int | None) -> list[SuiteTask]:
    files = sorted((f for f in folder.glob("*.py") if not f.name.startswith("_") and _is_task(f)), key=_number_key)
    numbered = all(re.match(r"\d+_", f.name) for f in files)
    return [SuiteTask(f.resolve(), level, _number_key(f)[0] if numbered else i + 1) for i, f in enumerate(files)]


PROGRAM_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".py")
HELPERS = ("validator", "generator", "gen", "checker", "fast", "wrong", "solution")


def _program_in(folder: Path) -> Path | None:
    """The program of a `NAME/` folder holding `tests/`: `prog.*`, else its one source."""
    if not (folder / "tests").is_dir():
        return None
    sources = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in PROGRAM_SUFFIXES)
    named = [f for f in sources if f.stem == "prog"]
    rest = [f for f in sources if not f.stem.startswith(HELPERS)]
    return named[0] if named else (rest[0] if len(rest) == 1 else None)


def _programs_in(folder: Path) -> list[SuiteTask]:
    """Program targets: one subfolder each, with its source, tests/ and maybe validator.*."""
    out = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        src = _program_in(d)
        if src is not None:
            validator = next((f for f in sorted(d.glob("validator.*")) if f.suffix in PROGRAM_SUFFIXES), None)
            out.append(SuiteTask(src.resolve(), None, len(out) + 1, "program", (d / "tests").resolve(),
                                 validator.resolve() if validator else None))
    return out


def _describe_folder(folder: Path) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        return "it is empty"
    shown = ", ".join(entries[:8]) + (f", ... ({len(entries)} entries)" if len(entries) > 8 else "")
    return f"found {shown}"


def discover(suite: str | Path, level: int | None = None) -> list[SuiteTask]:
    """All tasks of SUITE (of one level if given), ordered by level then problem number."""
    root = Path(suite)
    if not root.exists():
        raise UserInputError(f"suite not found: {root} (give a KernelBench checkout or a folder of task files)")
    if root.is_file():
        raise UserInputError(f"{root} is a file; kopt bench takes a folder (use kopt optimize for one task)")
    levels = _level_dirs(root)
    if levels:
        if level is not None and level not in levels:
            raise UserInputError(f"no level {level} in {root}; found level(s) {', '.join(map(str, levels))}")
        tasks = [t for lv, d in levels.items() if level in (None, lv) for t in _tasks_in(d, lv)]
        if not tasks:
            raise UserInputError(f"no KernelBench tasks in the level folders of {root} "
                                 f"({', '.join(d.name for d in levels.values())})")
        return tasks
    own = _level_of(root)
    if level is not None and level != own:
        found = f"its tasks are level {own}" if own is not None else "it is a folder of tasks without levels " \
                                                                     "(no level1/, level2/... folders); drop --level"
        raise UserInputError(f"no level {level} in {root}: {found}")
    tasks = _tasks_in(root, own) or _programs_in(root)
    if not tasks:
        py = sorted(f.name for f in root.glob("*.py"))
        what = (f"{len(py)} .py file(s) ({', '.join(py[:5])}{', ...' if len(py) > 5 else ''}) but none defines "
                f"Model, get_inputs and get_init_inputs") if py else _describe_folder(root)
        raise UserInputError(f"no KernelBench tasks in {root}: {what}")
    return tasks


def parse_selection(text: str) -> list[int | str]:
    """`1,5,19`, `1-20`, `3,7-9` -> numbers; other items (`relu_chain`) stay names."""
    out: list[int | str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", item)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise UserInputError(f"--tasks range {item!r} is backwards; write {hi}-{lo}")
            out.extend(range(lo, hi + 1))
        elif item.isdigit():
            out.append(int(item))
        else:
            out.append(item)
    if not out:
        raise UserInputError("--tasks is empty; give numbers (1,5,19), ranges (1-20) or task names")
    return out


def _ranges(numbers: list[int]) -> str:
    parts, nums = [], sorted(set(numbers))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ",".join(parts)


def select(tasks: list[SuiteTask], selection: str | None) -> list[SuiteTask]:
    """The tasks named by `--tasks`; an id that matches nothing is an error listing what exists."""
    if not selection:
        return tasks
    wanted = parse_selection(selection)
    chosen, missing = [], []
    for w in wanted:
        hits = [t for t in tasks if (t.number == w if isinstance(w, int) else w in (t.name, t.id))]
        if not hits:
            missing.append(str(w))
        chosen += [t for t in hits if t not in chosen]
    if missing:
        names = ", ".join(t.name for t in tasks[:6]) + (", ..." if len(tasks) > 6 else "")
        raise UserInputError(f"no task {', '.join(missing)} in this suite; it has task number(s) "
                             f"{_ranges([t.number for t in tasks])} ({names})")
    return chosen


def find_tasks(suite: str | Path, level: int | None = None, selection: str | None = None) -> list[SuiteTask]:
    return select(discover(suite, level), selection)
