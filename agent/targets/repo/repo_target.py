"""A git repository as a search target: `kopt optimize PATH --test CMD --bench CMD`.

A candidate is a patch against the user's HEAD. Each one is checked out in its own work
tree in kopt's workspace (never the user's tree), where the test command must pass and
the bench command is timed against the original, interleaved, in fresh sandboxed
processes (`repo_bench.py`). Models see the hot functions (from a real profile of the bench),
not the whole repository, and answer with SEARCH/REPLACE blocks headed by file paths
(`repo_edits.py`).
"""
from __future__ import annotations

import atexit
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.rules.repo_rules import flags_only
from kopt.agent.targets.option_flags import as_flags
from kopt.agent.targets.repo import guard, patches, test_tally, worktree
from kopt.agent.targets.repo.hotspots import Hotspot, RepoIndex, rank, render
from kopt.agent.targets.repo.profile import Profile, profile_bench
from kopt.agent.targets.repo.repo_bench import failed, measure
from kopt.agent.targets.repo.repo_edits import patch_from_answer
from kopt.agent.targets.repo.shell_commands import TreeShell, parse_metric


def _instructions(rule: str) -> str:
    return (
        "You optimize code in a git repository for speed. You are shown the hottest functions of the "
        "repository's benchmark (with their callers and the tests that cover them); change them (or what they "
        "call) so the benchmark runs faster while the repository's test command still passes. Keep every public "
        "function's name, signature and results; do not edit tests, benchmarks or build scripts that only "
        "measure; do not cache results across runs in files, skip work the benchmark asks for, or special-case "
        "the benchmark's inputs. The code runs with no network.\n"
        + rule + "\n"
        + patches.FORMAT_HELP)


class RepoTarget:
    """A git repository with its test and bench commands; see the module docstring. Candidates
    are measured here (`repo_bench.py`), one at a time, in work trees under the run dir."""

    kind = "repo"
    language = "diff"
    suffix = ".patch"
    # measured in its own work trees, one at a time; a result's `reason` carries what a model can
    # use (the failing test's last lines), its `checks` are for the user
    parallel_eval = cacheable = plannable = checks_in_prompt = profiled = False

    def __init__(self, root: Path, commit: str, test: str, bench: str, bench_metric: str | None = None,
                 higher_is_better: bool = False, focus: str | None = None, branch: bool = False,
                 baseline: str = "", noise_floor: float = 0.1, min_rounds: int = 5, max_rounds: int = 15,
                 timing_budget_s: float = 60.0, quiet: bool = False, subdir: str = "",
                 editable: tuple[str, ...] = ()):
        self.root, self.commit, self.test, self.bench = root, commit, test, bench
        self.bench_metric, self.higher_is_better = bench_metric, higher_is_better
        self.focus, self.branch, self.baseline = focus, branch, baseline
        self.noise_floor, self.min_rounds, self.max_rounds = noise_floor, min_rounds, max_rounds
        self.timing_budget_s, self.quiet = timing_budget_s, quiet
        self.subdir = subdir  # the commands run where the user pointed kopt (a repository's subfolder)
        self.path, self.name = root, root.name
        self.test_timeout = self.bench_timeout = 600.0
        self.bench_s = 1.0
        self.hotspots: list[Hotspot] = []
        self.profile: Profile | None = None
        self.results: dict[str, list[dict]] = {}  # this process's evaluations, by patch
        self.rewrites: set[str] | None = None  # what the original's bench writes on every run
        self.slowed: str | None = None  # how the original's bench ran slowed (repo_bench._slowed_run)
        self.slowed_output: str | None = None  # what it printed there, where it ran
        self.bench_values: set[float] = set()  # the bench's input integers (bench_inputs.input_values)
        self.test_tally = test_tally.Tally()  # what the original's tests reported running
        tmp = Path(tempfile.mkdtemp(prefix="kopt-repo-"))
        atexit.register(shutil.rmtree, tmp, True)
        self.ws = worktree.Workspace(root, commit, tmp)
        self.editable_globs = tuple(editable)
        self.policy = guard.Policy(set(), set(), self.editable_globs, everything=True)
        self._baseline_changes: set[guard.Change] = set()  # the user's own (--include-dirty)
        self.instructions = _instructions(self.policy.describe())
        self.source = ""

    # -- construction and the checks on the original ----------------------------------------
    @classmethod
    def from_options(cls, path: Path, test: str | None = None, bench: str | None = None,
                     bench_metric: str | None = None, higher_is_better: bool = False, focus: str | None = None,
                     branch: bool = False, include_dirty: bool = False, editable: str | list[str] | None = None,
                     **other) -> RepoTarget:
        if other:
            raise UserInputError(f"{as_flags(other)} does not apply to a "
                                 f"repository target; it takes --test, --bench, --bench-metric, --higher-is-better, "
                                 f"--focus, --editable, --branch, --include-dirty")
        if not test or not bench:
            raise UserInputError("a repository target needs --test CMD (must pass on the original) and "
                                 "--bench CMD (prints a number, or is timed as a whole)")
        if bench_metric:
            try:
                re.compile(bench_metric)
            except re.error as e:
                raise UserInputError(f"--bench-metric {bench_metric!r} is not a valid regex: {e}") from None
        if higher_is_better and not bench_metric:
            raise UserInputError("--higher-is-better needs --bench-metric REGEX (the rate the bench prints); "
                                 "a timed command is always lower-is-better")
        if focus and not re.match(r"^[^:]+:[\w.:~]+$", focus):
            raise UserInputError(f"--focus {focus!r} must look like path/to/file.py:function (or Class.method)")
        where = Path(path).resolve()
        root = worktree.repo_root(where)
        baseline = ""
        dirty = worktree.dirty_paths(root)
        if dirty and include_dirty:
            baseline = worktree.dirty_diff(root)
        elif dirty:
            print(f"kopt: warning: {root} has {len(dirty)} uncommitted change(s) (e.g. {dirty[0]}); the run uses "
                  f"HEAD only -- add --include-dirty to start from your working tree", file=sys.stderr)
        subdir = "" if where == root.resolve() else where.relative_to(root.resolve()).as_posix()
        globs = tuple(g for g in ([editable] if isinstance(editable, str) else editable or []) if g)
        target = cls(root, worktree.head_commit(root), test, bench, bench_metric, higher_is_better, focus, branch,
                     baseline, subdir=subdir, editable=globs)
        target.check_original()
        target.find_hotspots()
        return target

    def check_original(self) -> None:
        """The one-line errors of architecture §1: the tests must pass and the bench must give a number."""
        tree = self.ws.tree_for(self.baseline)
        with TreeShell(tree, [], keep=[self.ws.clone], subdir=self.subdir) as sh:
            t = sh.run(self.test, self.test_timeout)
            if not t.ok:
                raise UserInputError(f"--test fails on the original ({t.status}): {t.last_line()}; "
                                     f"fix the tests or the command first")
            self.test_tally = test_tally.tally(t.output)
            b = sh.run(self.bench, self.bench_timeout)
            if not b.ok:
                raise UserInputError(f"--bench fails on the original ({b.status}): {b.last_line()}")
            if self.bench_metric and parse_metric(b.output, self.bench_metric) is None:
                raise UserInputError(f"--bench printed no number matching --bench-metric '{self.bench_metric}' "
                                     f"(last line: '{b.last_line()}')")
        self.test_timeout = max(60.0, 10 * t.wall_s)
        self.bench_timeout = max(30.0, 10 * b.wall_s)
        self.bench_s = b.wall_s

    def find_hotspots(self) -> None:
        tree = self.ws.tree_for(self.baseline)
        index = RepoIndex(tree)
        if self.focus:
            rel, _, name = self.focus.partition(":")
            rel = rel.removeprefix("./")
            fn = index.find(rel, name) or (index.find(f"{self.subdir}/{rel}", name) if self.subdir else None)
            if fn is None:
                raise UserInputError(f"--focus {self.focus}: no function {name!r} in {rel} at HEAD")
            self.hotspots = [Hotspot(fn, 0.0, index.callers(fn), index.tests_touching(fn))]
            self.profile = Profile("focus", note=f"--focus {self.focus}")
        else:
            # the user's original under valgrind (which reads /proc): not confined
            with TreeShell(tree, [], keep=[self.ws.clone], subdir=self.subdir, confine=False) as sh:
                self.profile = profile_bench(sh, tree, self.bench, index, self.bench_timeout, self.bench_s)
            self.hotspots = rank(self.profile.weights, self.profile.total, index)
        self.source = self._overview(index)
        self._set_policy(tree, index.files)

    def _set_policy(self, tree: Path, files: list[str]) -> None:
        """What candidates may change: the hot files (see `guard`), told to the model up front.
        A hot file the commands name (a bench script) stays the bench's: named as a word of a
        command, not as part of one (`sqmod.py` inside `test_sqmod.py` left no hot file at all,
        every file editable, and a new src/sqmod.py stood in for it under the bench, red team 30)."""
        # a hot file a command names stays that command's (a bench script, a test runner script,
        # a module whose doctests --test runs): letting a doctest-run file change was worked round
        # four ways by red teams 35-38 (examples rebinding the name, options the rerun lost, ...)
        commands = [self.test, self.bench]
        words = guard.command_words(commands, self.subdir) | guard.named_files(tree, commands, self.subdir)
        hot = {h.fn.path for h in self.hotspots if h.fn.path not in words}
        named = guard.bench_files(tree, commands, self.subdir)
        roots = guard.import_roots(commands, self.subdir, files)
        packages = guard.sealed_packages(tree, files, named, commands, self.subdir)
        self.policy = guard.Policy(hot, named - hot, self.editable_globs, everything=not hot,
                                   modules=guard.top_level_names(files, roots), roots=roots, packages=packages)
        self.instructions = _instructions(self.policy.describe())
        self._baseline_changes = set(self._changes(tree))

    def _overview(self, index: RepoIndex) -> str:
        p = self.profile
        how = (f"profile of the bench with {p.tool}: {p.covered:.0%} of it in the repository's own functions"
               if p and p.tool not in ("none", "focus") else (p.note if p else ""))
        head = [f"Repository {self.name} at {self.commit[:12]}" + (" plus uncommitted changes" if self.baseline
                                                                   else ""),
                f"test command: {self.test}", f"bench command: {self.bench}"
                + (f" (metric /{self.bench_metric}/, {'higher' if self.higher_is_better else 'lower'} is better)"
                   if self.bench_metric else " (wall time, lower is better)"), how, ""]
        if not self.hotspots:
            head.append("No hot function was found in the repository's own code; source files: "
                        + ", ".join(index.files[:40]))
            return "\n".join(head)
        return "\n".join(head) + render(self.hotspots, index)

    # -- the run dir ------------------------------------------------------------------------
    def use_run_dir(self, run_dir: Path) -> None:
        """Move the work trees under the run dir (`kopt optimize` calls this once it knows it)."""
        space = Path(run_dir).resolve() / "repo"
        stamp = space / "BASE"
        base = f"{self.commit} {worktree.patch_key(self.baseline)}"
        if stamp.exists() and stamp.read_text().strip() != base:
            raise UserInputError(f"{run_dir} was run against another HEAD (or other uncommitted changes) of "
                                 f"{self.root}; its patches do not apply to this one -- start a new run dir")
        self.ws = worktree.Workspace(self.root, self.commit, space)
        stamp.write_text(base + "\n")

    # -- the Target protocol ------------------------------------------------------------------
    def baseline_code(self) -> str:
        return self.baseline

    def _changes(self, tree: Path) -> list[guard.Change]:
        return guard.parse_raw(self.ws.changes(tree))

    def _not_allowed(self, tree: Path) -> str | None:
        """Why the candidate in `tree` changes more than the code under optimization, or None.
        Changes the uncommitted baseline (--include-dirty) already made are the user's."""
        own = [c for c in self._changes(tree) if c not in self._baseline_changes]
        if problem := self.policy.check(own, lambda rel: (texts := self._texts(tree, rel)) is not None
                                        and flags_only(*texts)):
            return problem
        return None

    def _texts(self, tree: Path, rel: str) -> tuple[str, str] | None:
        """REL at HEAD and in the committed candidate in TREE (not the files), or None."""
        try:
            return (worktree.git(self.ws.clone, "show", f"{self.commit}:{rel}"),
                    self.ws.tree_git(tree, "show", f"HEAD:{rel}"))
        except worktree.GitError:
            return None

    def evaluate(self, candidate_file: Path, hidden_paths: list[str]) -> dict:
        patch = Path(candidate_file).read_text()
        base = {"task": str(self.root), "solution": str(candidate_file), "device": "cpu", "kernel": "repo"}
        try:
            new_tree = self.ws.tree_for(patch)
            problem = self._not_allowed(new_tree)
        except worktree.GitError as e:
            return {**base, **failed("compile_error", f"the patch does not apply on HEAD: {e}", compiled=False)}
        if problem:
            return {**base, **failed("rejected", f"the patch changes more than the code under optimization: "
                                                 f"{problem}")}
        if sniff := guard.sniffs_runner(patch, self.baseline):
            return {**base, **failed("rejected", f"the patch reads which command runs it or reaches around the "
                                                 f"process running it ({sniff}): the tests and the bench must run "
                                                 f"the same code and report for themselves")}
        ref_tree = self.ws.tree_for(self.baseline)
        result = {**base, **measure(self, ref_tree, new_tree, patch, hidden_paths)}
        result["checks"]["functions_changed"] = self.functions_changed(patch)
        result["checks"]["files_changed"] = worktree.changed_paths(patch)
        self.results.setdefault(worktree.patch_key(patch), []).append(result)
        return result

    def functions_changed(self, patch: str) -> list[str]:
        if not patch.strip():
            return []
        index = RepoIndex(self.ws.tree_for(patch))
        out: list[str] = []
        for rel, lines in patches.changed_lines(patch).items():
            fns = {f for f in index.functions(rel) for n in lines if f.start <= n <= f.end}
            inner = [f for f in fns if not any(g != f and f.start <= g.start and g.end <= f.end for g in fns)]
            out += [f.label for f in sorted(inner, key=lambda f: f.start)] or [f"{rel} (outside functions)"]
        return out

    def view(self, code: str) -> str:
        try:
            tree = self.ws.tree_for(code)
        except worktree.GitError as e:
            return f"(this candidate's patch no longer applies: {e})"
        if code == self.baseline:
            return "(unchanged: the hot functions above are the current code)"
        index = RepoIndex(tree)
        found = [(h, index.find(h.fn.path, h.fn.qualname)) for h in self.hotspots]
        shown = [Hotspot(fn, h.share) for h, fn in found if fn is not None]
        gone = [h.fn.label for h, fn in found if fn is None]
        labels = {h.fn.label for h in shown}
        for label in self.functions_changed(code):
            rel, _, qual = label.partition(":")
            fn = index.find(rel, qual)
            if fn is not None and fn.label not in labels:
                shown.append(Hotspot(fn, 0.0))
                labels.add(fn.label)
        files = ", ".join(worktree.changed_paths(code)) or "none"
        note = f"No longer defined here: {', '.join(gone)}\n" if gone else ""
        return f"Files changed so far (against HEAD): {files}\n{note}\n" + render(shown, index)

    def apply_answer(self, answer: str, parent_code: str) -> tuple[str, str]:
        hot_files = list(dict.fromkeys(h.fn.path for h in self.hotspots))
        return patch_from_answer(self.ws, answer, parent_code, hot_files, self._not_allowed, self.policy.describe())

    # -- the result ---------------------------------------------------------------------------
    def write_best(self, run_dir: Path, code: str) -> None:
        """best.patch (applies with `git apply` on HEAD), a summary, and the branch with --branch."""
        run_dir = Path(run_dir)
        (run_dir / "best.patch").write_text(code)
        evals = self.results.get(worktree.patch_key(code), [])
        r = evals[-1] if evals else {}
        checks = r.get("checks", {})
        speedups = [e["speedup"] for e in evals if e.get("speedup")]
        median = f"{statistics.median(speedups):.3f}x" if speedups else "not measured in this process"
        lines = [f"# Best patch for {self.name} (HEAD {self.commit[:12]})", "",
                 f"- speedup: {median} (median of {len(speedups)} evaluation(s)); last: {r.get('speedup')}x, 95% CI "
                 f"{r.get('speedup_ci')} ({checks.get('metric', 'wall time')}, {checks.get('rounds')} interleaved "
                 f"rounds), verdict {r.get('verdict')}",
                 f"- tests (`{self.test}`): {checks.get('tests', 'not run in this process')}",
                 f"- functions changed: {', '.join(checks.get('functions_changed', [])) or '-'}",
                 f"- files changed: {', '.join(worktree.changed_paths(code)) or '-'}"]
        if code.strip():
            lines.append(f"- apply it: `git -C {self.root} apply {run_dir.resolve() / 'best.patch'}`")
        if checks.get("warning"):
            lines.append(f"- warning: {checks['warning']}")
        if code == self.baseline:
            lines.insert(2, "- no candidate beat the original: best.patch is the original itself (empty, or your "
                            "uncommitted changes with --include-dirty)")
        if self.branch and code.strip() and code != self.baseline:
            name = f"kopt/{run_dir.name}"
            sha = worktree.publish_branch(self.root, self.ws.clone, self.commit, code, name,
                                          f"kopt: {median} faster bench ({self.bench})")
            lines.append(f"- branch: `{name}` ({sha[:12]}) in {self.root}")
            if not self.quiet:
                print(f"kopt: created branch {name} in {self.root}", file=sys.stderr)
        (run_dir / "best" / "SUMMARY.md").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "best" / "SUMMARY.md").write_text("\n".join(lines) + "\n")

