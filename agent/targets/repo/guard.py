"""What a repository candidate may change: the code under optimization, nothing else.

A candidate is judged by the repository's own tests and bench, so everything that decides
that judgement stays as it is at HEAD: test files, test and start-up configuration
(conftest.py, pytest.ini, tox.ini, pyproject.toml, setup.cfg, sitecustomize.py,
usercustomize.py, *.pth), build files, and the files the --test/--bench commands name
and the modules a Python bench imports. A patch may change the --focus / hot-spot files,
add new source files next to them, and change what `--editable GLOB` names (which may
also name protected files, on the user's word). Build files may change only in their
optimisation-flag lines (what `--model rules` does). Git decides what a patch changed
(from the applied tree, not from the patch's text), and a file must stay a plain file
(no symlinks, submodules or new executable bits).
"""
from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kopt.agent.targets.repo import safefs
from kopt.agent.targets.repo.hotspots import LANGUAGE_OF, is_test_path

CONFIG_NAMES = {"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "pyproject.toml", "setup.cfg", "noxfile.py",
                "sitecustomize.py", "usercustomize.py", ".coveragerc"}
BUILD_NAMES = {"Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "setup.py", "meson.build", "build.ninja",
               "configure", "SConstruct", "BUILD", "BUILD.bazel", "WORKSPACE"}
BUILD_SUFFIXES = (".mk", ".cmake", ".pth")
# What code reads to learn which command runs it: the tests and the bench run the same code,
# and a candidate that tells them apart is judged by the tests on one path and timed on
# another (red team 8: `if "pytest" not in sys.modules: return <the bench's answer>` was
# faster 2.3x and correct, wrong for every other input). A heuristic on the added lines only.
SYSTEM_INCLUDE = ("/usr/include", "/usr/local/include", "/usr/include/c++")
# And the descriptors a report for the tests' process would be forged on (red team 31 wrote the
# original's `1 passed` to the runner's pipe and called os._exit(0): `faster` 4.07x and correct);
# os.write and os._exit themselves are every forking program's idiom, and test_tally's passed
# ids are what that forgery now lacks.
# The import system's hooks and the interpreter's tracing tell the tests' process too (red team 34
# found pytest's assertion rewriter in sys.meta_path; pytest now runs with --assert=plain besides).
RUNNER_SNIFF = re.compile(r"pytest|unittest|sys\.modules|sys\.argv|_getframe|inspect\.(?:stack|currentframe)"
                          r"|__main__|environ|getenv|/proc/self/(?:cmdline|exe|fd)|PYTEST_"
                          r"|/dev/fd|/dev/std|meta_path|path_hooks|path_importer_cache|gettrace|getprofile"
                          r"|_current_frames|faulthandler", re.I)


@dataclass(frozen=True)
class Change:
    """One path a candidate's tree differs in from HEAD, as `git diff --raw` reports it."""
    path: str
    status: str     # A added, M modified, D deleted, T type changed
    old_mode: str
    new_mode: str
    new_sha: str = ""


def parse_raw(raw: str) -> list[Change]:
    """`git diff --raw -z --no-renames` output as Changes."""
    fields = raw.split("\0")
    out = []
    for i in range(0, len(fields) - 1, 2):
        meta = fields[i].lstrip(":").split()
        if len(meta) >= 5:
            out.append(Change(fields[i + 1], meta[4][0], meta[0], meta[1], meta[3]))
    return out


def protected_kind(rel: str) -> str | None:
    """Why a path is never part of a candidate (unless --editable names it), or None."""
    name = PurePosixPath(rel).name
    if is_test_path(rel):
        return "a test file"
    if name in CONFIG_NAMES or name.endswith(".pth"):
        return "test or start-up configuration"
    if name in BUILD_NAMES or name.endswith(BUILD_SUFFIXES):
        return "a build file"
    return None


def _mode_problem(c: Change) -> str | None:
    if c.status == "D":
        return None
    if c.new_mode == "120000":
        return f"{c.path} would be a symlink"
    if c.new_mode == "160000":
        return f"{c.path} would be a submodule"
    if c.new_mode == "100755" and c.old_mode != "100755":
        return f"{c.path} would gain an executable bit (mode {c.old_mode} -> 100755)"
    if c.new_mode not in ("100644", "100755"):
        return f"{c.path} would have mode {c.new_mode}"
    return None


def command_words(commands: list[str], subdir: str = "") -> set[str]:
    """The paths the commands may name: their words (and each under SUBDIR, where they run)."""
    words = {w.removeprefix("./") for w in re.findall(r"[\w./-]+", " ".join(commands))}
    return words | ({f"{subdir}/{w}" for w in words} if subdir else set())


def named_files(tree: Path, commands: list[str], subdir: str = "") -> set[str]:
    """The tree's files the commands name: as words, through globs, or as the module `-m` runs
    (`python -m lib.work` runs lib/work.py's self-test: red team 38)."""
    modules = [f"{m.replace('.', '/')}{end}" for m in re.findall(r"-m\s+([\w.]+)", " ".join(commands))
               for end in (".py", "/__main__.py")]
    words = command_words(commands, subdir) | set(modules) | ({f"{subdir}/{m}" for m in modules} if subdir else set())
    return {w for w in words if safefs.is_regular(tree, w)} | _globbed(tree, commands, subdir)


def bench_files(tree: Path, commands: list[str], subdir: str = "") -> set[str]:
    """Files the commands name, and the repository modules a named Python script imports."""
    named = named_files(tree, commands, subdir)
    out = set(named)
    for rel in named:
        if rel.endswith(".py"):
            out |= _imports(tree, rel)
    return out


def _globbed(tree: Path, commands: list[str], subdir: str = "") -> set[str]:
    """The files a command's glob words name (`python -m doctest lib/*.py`: the shell expands
    them where the command runs; read as words, `lib/work.py` was never named: red team 37)."""
    out: set[str] = set()
    base = tree / subdir if subdir else tree
    for word in " ".join(commands).split():
        word = word.strip("'\"").removeprefix("./")
        if not set("*?[") & set(word) or word.startswith("/") or ".." in word:
            continue
        try:
            matches = list(itertools.islice(base.glob(word), 1000))
        except (ValueError, OSError):
            continue
        out |= {rel for path in matches if safefs.is_regular(tree, rel := path.relative_to(tree).as_posix())}
    return out


def _imports(tree: Path, rel: str) -> set[str]:
    try:
        mod = ast.parse(safefs.read_text(tree, rel, errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(mod):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    found = set()
    base = str(PurePosixPath(rel).parent)
    for name in names:
        stem = name.replace(".", "/")
        for root in {"", "src/", "" if base == "." else base + "/"}:
            for cand in (f"{root}{stem}.py", f"{root}{stem}/__init__.py"):
                if safefs.is_regular(tree, cand):
                    found.add(cand)
    return found


def sniffs_runner(patch: str, baseline: str = "") -> str | None:
    """The first line a patch adds (and the user's baseline did not) that reads which command
    runs the code, or None."""
    own = set(baseline.splitlines())
    for line in patch.splitlines():
        if line.startswith("+") and not line.startswith("+++") and line not in own \
                and (m := RUNNER_SNIFF.search(line)):
            return f"{m.group(0)!r} in `{line[1:].strip()[:80]}`"
    return None


def shadows(rel: str) -> str | None:
    """What a new file would stand in for: a module Python finds outside the tree (the
    standard library's or an installed one's: a command's folder comes first on sys.path) or a
    system header. Red team 10: a new `unittest.py` beside the hot file holding
    `raise SystemExit(0)` made `python -m unittest discover` pass without running a test, and
    a wrong patch was `faster` 10.8x and correct."""
    path = PurePosixPath(rel)
    if path.suffix.lower() in (".h", ".hpp", ".hh", ".hxx") or path.suffix == "":
        if any(Path(d, path.name).is_file() for d in SYSTEM_INCLUDE):
            return f"the system header <{path.name}>"
        return None
    if not (name := module_name(rel)):
        return None
    if name in sys.stdlib_module_names:
        return f"the standard library's module {name!r}"
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if found or name in _other_pythons_modules():
        return f"the installed module {name!r}"
    return None


def module_name(rel: str) -> str | None:
    """The top name `import` finds the file REL under from its own folder, or None (not Python)."""
    return found[1] if (found := importable_as(rel)) else None


def importable_as(rel: str) -> tuple[str, str] | None:
    """(the folder that must be on sys.path, the name) for `import name` to find REL, or None."""
    path = PurePosixPath(rel)
    if path.suffix not in (".py", ".pyc", ".so", ".pyi") and path.name != "__init__.py":
        return None
    at = path.parent.parent if path.name == "__init__.py" else path.parent
    name = path.parent.name if path.name == "__init__.py" else path.name.split(".")[0]
    return (str(at), name) if name.isidentifier() else None


def import_roots(commands: list[str], subdir: str = "", files: list[str] = ()) -> frozenset[str]:
    """The tree's folders a command's sys.path may hold: its top, `src/`, where the commands
    run, the folders of the scripts they name, and pytest's basedirs (a test file's first
    folder upwards without `__init__.py`, which pytest puts first on the tests' path)."""
    scripts = {str(PurePosixPath(w).parent) for w in command_words(commands, subdir) if w.endswith(".py")}
    have = set(files)
    basedirs = set()
    for f in files:
        if is_test_path(f) and f.endswith(".py"):
            at = PurePosixPath(f).parent
            while at != PurePosixPath(".") and str(at / "__init__.py") in have:
                at = at.parent
            basedirs.add(str(at))
    return frozenset({".", "src", subdir or ".", *scripts, *basedirs})


PATH_EDIT = re.compile(r"sys\.path|pythonpath|addsitedir", re.I)


def sealed_packages(tree: Path, files: list[str], scripts: set[str], commands: list[str] = (),
                    subdir: str = "") -> frozenset[str]:
    """The tree's package folders (an `__init__.py`), where a new module stands in for nothing
    (`Policy._inside_a_package`); none where what the commands run may put a folder on
    sys.path: a command (`PYTHONPATH=lib`), a script they name or what it imports, a test file
    or conftest.py (`sys.path.insert(0, "lib")` in a test file a pytest command's folder
    holds: red team 37), test configuration (pytest's `pythonpath = lib`: a new
    `lib/statistics.py` was what the tests imported, red team 36). Not the tree's other files:
    a Sphinx `docs/conf.py` ended every exemption (red team 38)."""
    if PATH_EDIT.search(" ".join(commands)):
        return frozenset()
    # the test configuration beside the commands (conftest.py, a Python file, is read with the rest)
    configs = {str(PurePosixPath(*([commands_dir] if commands_dir else []), name)) for name in CONFIG_NAMES
               for commands_dir in {"", subdir}}
    loaded = {f for f in files if f.endswith(".py") and (is_test_path(f) or PurePosixPath(f).name in CONFIG_NAMES)}
    for rel in sorted(scripts | configs | loaded):
        try:
            if safefs.is_regular(tree, rel) and PATH_EDIT.search(safefs.read_text(tree, rel, errors="replace")):
                return frozenset()
        except OSError:
            continue
    return frozenset(str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name == "__init__.py")


def top_level_names(files: list[str], roots: frozenset[str]) -> frozenset[str]:
    """The names `import` finds in the tree from ROOTS: its modules there and every folder of
    Python files there, `__init__.py` or not (a namespace package: a new `nspkg/nspkg.py` under
    pytest's basedir `nspkg/` stood in for the package `nspkg` in the tests only, red team 32)."""
    names = {found[1] for f in files if (found := importable_as(f)) and found[0] in roots}
    names |= {folder.name for f in files if f.endswith(".py") for folder in PurePosixPath(f).parents
              if folder != PurePosixPath(".") and str(folder.parent) in roots and folder.name.isidentifier()}
    return frozenset(names)


@functools.cache
def _other_pythons_modules() -> frozenset[str]:
    """Top-level modules the other pythons on PATH (the ones a repository's commands may run:
    `python3` is often /usr/bin/python3, with its own site-packages) can import. Red team 10: a
    new `toml.py` shadowed a module only /usr/bin/python3 had, and the tests ran no case."""
    names: set[str] = set()
    exes = {shutil.which(n) for n in ("python3", "python")} | {"/usr/bin/python3"}
    own = os.path.realpath(sys.executable)
    listing = "import pkgutil\nprint(' '.join(m.name for m in pkgutil.iter_modules()))"
    for exe in sorted(e for e in exes if e and os.path.exists(e) and os.path.realpath(e) != own):
        try:
            out = subprocess.run([exe, "-I", "-c", listing], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        names.update(out.split())
    return frozenset(names)


@dataclass
class Policy:
    editable: set[str]          # the hot-spot / --focus files
    bench: set[str]             # named by the commands, or imported by a Python bench
    globs: tuple[str, ...] = ()  # --editable
    everything: bool = False    # no hot spot known: every source file that is not protected
    modules: frozenset[str] = frozenset()  # the top-level module names of the tree's own files
    roots: frozenset[str] = frozenset()  # the folders a command's sys.path may hold (import_roots)
    packages: frozenset[str] = frozenset()  # the tree's folders holding an __init__.py

    def allowed(self, c: Change, flag_lines_only) -> str | None:
        """None when the candidate may make this change, else why not."""
        if problem := _mode_problem(c):
            return problem
        if any(fnmatch.fnmatchcase(c.path, g) for g in self.globs):
            return None
        kind = protected_kind(c.path)
        if kind == "a build file" and c.status == "M" and flag_lines_only(c.path):
            return None
        if kind:
            return f"{c.path} is {kind}"
        if c.path in self.editable:
            return None
        if c.path in self.bench:
            return f"{c.path} is part of the bench"
        folders = {str(PurePosixPath(p).parent) for p in self.editable}
        source = PurePosixPath(c.path).suffix.lower() in LANGUAGE_OF
        if c.status == "A" and not self._inside_a_package(c.path) and (shadowed := shadows(c.path)):
            return f"{c.path} would be imported in place of {shadowed}"
        if c.status == "A" and (found := importable_as(c.path)) and found[0] in self.roots \
                and found[1] in self.modules:
            # a src/ or bench-folder copy comes first on one command's sys.path and not on the
            # other's: the bench ran the new one, the tests the old (red team 30). A module of
            # the same name inside another package stands in for nothing (red team 31)
            return f"{c.path} would stand in for the repository's own module {found[1]!r} (change that file instead)"
        if c.status == "A" and source and str(PurePosixPath(c.path).parent) in folders:
            return None
        if self.everything and source:
            return None
        return f"{c.path} is not under optimization"

    def _inside_a_package(self, rel: str) -> bool:
        """Whether a new Python file REL lies in a package folder that is no command's import root:
        `import types` there finds the standard library's, the file is only ever `lib.types`
        (a helper `lib/types.py` beside the hot file was refused: red team 34)."""
        found = importable_as(rel)
        return found is not None and found[0] in self.packages and found[0] not in self.roots

    def check(self, changes: list[Change], flag_lines_only) -> str | None:
        problems = [p for c in changes if (p := self.allowed(c, flag_lines_only))]
        if not problems:
            return None
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return "; ".join(problems[:3]) + more

    def describe(self) -> str:
        """The rule as the model reads it."""
        if self.everything:
            where = "the repository's source files"
        else:
            where = ", ".join(sorted(self.editable)) + " (and new source files in their folders)"
        extra = f", and files matching {', '.join(self.globs)}" if self.globs else ""
        return (f"You may change only {where}{extra}. Tests, test configuration, build files (except their "
                f"optimisation flags), the bench and what it imports stay as they are; no symlinks or new "
                f"executable files.")
