"""A git repository as a search target: `kopt optimize PATH --test CMD --bench CMD`.

A candidate is a patch against the user's HEAD. Each one is checked out in its own work
tree in kopt's workspace (never the user's tree), where the test command must pass and
the bench command is timed against the original, interleaved, in fresh sandboxed
processes. Models see the hot functions (from a real profile of the bench), not the
whole repository, and answer with SEARCH/REPLACE blocks headed by file paths.
"""
from __future__ import annotations

import atexit
import re
import shutil
import sys
import tempfile
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.prompting.edits import EditError
from kopt.agent.proposers.rules.repo_rules import flags_only
from kopt.agent.targets.repo import guard, patches, safefs, worktree
from kopt.agent.targets.repo.fresh import FreshRuns
from kopt.agent.targets.repo.hotspots import Hotspot, RepoIndex, rank, render
from kopt.agent.targets.repo.outputs import OutputCheck
from kopt.agent.targets.repo.profile import Profile, profile_bench
from kopt.agent.targets.repo.shell_commands import RunResult, TreeShell, parse_metric
from kopt.sandboxes.timing import estimate_speedup, speed_verdict

BASELINE_ROUNDS = 3
AGREEMENT_FACTOR = 3.0  # metric speedup / wall-time speedup above which the clock must say `faster` too
SUSPICIOUS_SPEEDUP = 100.0


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
    kind = "repo"
    language = "diff"
    suffix = ".patch"

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
            raise UserInputError(f"{', '.join('--' + k.replace('_', '-') for k in other)} does not apply to a "
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
                raise UserInputError(f"--test fails on the original ({_status(t)}): {_last_line(t)}; "
                                     f"fix the tests or the command first")
            b = sh.run(self.bench, self.bench_timeout)
            if not b.ok:
                raise UserInputError(f"--bench fails on the original ({_status(b)}): {_last_line(b)}")
            if self.bench_metric and parse_metric(b.output, self.bench_metric) is None:
                raise UserInputError(f"--bench printed no number matching --bench-metric '{self.bench_metric}' "
                                     f"(last line: '{_last_line(b)}')")
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
            with TreeShell(tree, [], keep=[self.ws.clone], subdir=self.subdir) as sh:
                self.profile = profile_bench(sh, tree, self.bench, index, self.bench_timeout, self.bench_s)
            self.hotspots = rank(self.profile.weights, self.profile.total, index)
        self.source = self._overview(index)
        self._set_policy(tree)

    def _set_policy(self, tree: Path) -> None:
        """What candidates may change: the hot files (see `guard`), told to the model up front."""
        named = guard.bench_files(tree, [self.test, self.bench], self.subdir)
        hot = {h.fn.path for h in self.hotspots if h.fn.path not in f"{self.test} {self.bench}"}
        self.policy = guard.Policy(hot, named - hot, self.editable_globs, everything=not hot)
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
        return self.policy.check(own, lambda rel: self._flag_lines_only(tree, rel))

    def _flag_lines_only(self, tree: Path, rel: str) -> bool:
        try:
            old = worktree.git(self.ws.clone, "show", f"{self.commit}:{rel}")
            new = self.ws.tree_git(tree, "show", f"HEAD:{rel}")  # the committed candidate, not the files
        except worktree.GitError:
            return False
        return flags_only(old, new)

    def evaluate(self, candidate_file: Path, hidden_paths: list[str]) -> dict:
        patch = Path(candidate_file).read_text()
        base = {"task": str(self.root), "solution": str(candidate_file), "device": "cpu", "kernel": "repo"}
        try:
            new_tree = self.ws.tree_for(patch)
            problem = self._not_allowed(new_tree)
        except worktree.GitError as e:
            return {**base, **_fail("compile_error", f"the patch does not apply on HEAD: {e}", compiled=False)}
        if problem:
            return {**base, **_fail("rejected", f"the patch changes more than the code under optimization: "
                                                f"{problem}")}
        ref_tree = self.ws.tree_for(self.baseline)
        result = {**base, **self._measure(ref_tree, new_tree, patch, hidden_paths)}
        result["checks"]["functions_changed"] = self.functions_changed(patch)
        result["checks"]["files_changed"] = worktree.changed_paths(patch)
        self.results.setdefault(worktree.patch_key(patch), []).append(result)
        return result

    def _measure(self, ref_tree: Path, new_tree: Path, patch: str, hidden: list[str]) -> dict:
        with self.ws.locked(ref_tree, new_tree):
            new = FreshRuns(self.ws, new_tree, hidden, self.subdir)
            ref = FreshRuns(self.ws, ref_tree, hidden, self.subdir)
            try:
                return self._measure_runs(ref, new, patch)
            except worktree.GitError as e:
                return _fail("runtime_error", f"a tree could not be brought back to its candidate between runs: {e}")
            finally:
                new.close()
                ref.close()

    def _measure_runs(self, ref: FreshRuns, new: FreshRuns, patch: str) -> dict:
        """Tests, then the bench on both sides, every run from a clean tree in a new sandbox;
        every bench output checked against the original's, every cost cross-checked with
        kopt's own clock."""
        t = new.run(self.test, self.test_timeout)
        checks = {"tests": "passed" if t.ok else "failed", "test_s": round(t.wall_s, 3)}
        if t.timed_out:
            return _fail("timeout", f"--test did not finish in {self.test_timeout:.0f}s", checks=checks)
        if not t.ok:
            return _fail("incorrect", f"--test fails (exit {t.rc}): {_tail(t)}", checks=checks)
        warm_new = new.run(self.bench, self.bench_timeout)  # builds, fills caches
        if not warm_new.ok:
            verdict = "timeout" if warm_new.timed_out else "runtime_error"
            return _fail(verdict, f"--bench fails ({_status(warm_new)}): {_last_line(warm_new)}", checks=checks)
        if self.bench_metric and parse_metric(warm_new.output, self.bench_metric) is None:
            return _fail("runtime_error", f"--bench printed no number (a positive finite one) matching "
                                          f"{self.bench_metric!r}", checks=checks)
        warm_ref = ref.run(self.bench, self.bench_timeout)
        if not warm_ref.ok:
            return _fail("runtime_error", f"the original's bench failed this time: {_last_line(warm_ref)}",
                         checks=checks)
        if self.rewrites is None:  # learnt once: the original is the same in every evaluation
            again, rewrites = ref.rewrites(self.bench, self.bench_timeout)
            if not again.ok:
                return _fail("runtime_error", f"the original's bench failed this time: {_last_line(again)}",
                             checks=checks)
            self.rewrites = rewrites
        # the same build outputs on both sides, kept between runs; never a file the original
        # rewrites on every run (a result: kept, its contents would be the candidate's cache)
        built = (new.written & ref.written) - self.rewrites
        new.keep(built)
        ref.keep(built)
        expect = OutputCheck(self.bench_metric, warm_ref.output)
        per_round = max(1e-3, warm_new.wall_s + warm_ref.wall_s)
        rounds = int(min(self.max_rounds, max(self.min_rounds, self.timing_budget_s // per_round)))
        cost: dict[str, list[float]] = {"ref": [], "new": []}
        wall: dict[str, list[float]] = {"ref": [], "new": []}
        writes: dict[str, set[str]] = {"ref": set(), "new": set()}
        for i in range(rounds):
            order = [("ref", ref), ("new", new)] if i % 2 == 0 else [("new", new), ("ref", ref)]
            if ref.tree != new.tree:  # both workers come up together, before either is timed
                for _, runs in order:
                    runs.start()
                for _, runs in order:
                    runs.ready()
            for side, runs in order:
                r = runs.run(self.bench, self.bench_timeout)
                who = "--bench" if side == "new" else "the original's bench"
                if not r.ok:
                    return _fail("timeout" if r.timed_out else "runtime_error",
                                 f"{who} failed in round {i + 1} ({_status(r)}): {_last_line(r)}", checks=checks)
                if side == "ref":
                    expect.learn(r.output)
                elif wrong := expect.differs(r.output) or (i == 0 and expect.differs(warm_new.output)):
                    return _fail("incorrect", f"--bench's output in round {i + 1} differs from the original's: "
                                              f"{wrong}", checks=checks)
                c = self._cost(r)
                if c is None:
                    return _fail("runtime_error", f"{who} printed no number (a positive finite one) in round "
                                                  f"{i + 1}", checks=checks)
                cost[side].append(c)
                wall[side].append(r.wall_s * 1000)
                writes[side].update(runs.written)
            if extra := sorted(writes["new"] - writes["ref"]):
                return _fail("rejected", f"the bench wrote {', '.join(extra[:3])} in the tree during timed runs "
                                         f"(state kept between runs can fake speed)", checks=checks)
            if patch == self.baseline and i + 1 >= BASELINE_ROUNDS:
                rounds = i + 1  # the original against itself: only the noise is measured
                break
            if i + 1 >= self.min_rounds and self._decided(cost["ref"], cost["new"]):
                rounds = i + 1
                break
        checks["output"] = expect.describe()
        est = estimate_speedup(cost["ref"], cost["new"])
        checks.update(rounds=rounds, metric=self.bench_metric or "wall time", higher_is_better=self.higher_is_better)
        verdict = "same" if patch == self.baseline else speed_verdict(est, self.noise_floor)
        if self.bench_metric:
            vals = (lambda c: [1 / x for x in c]) if self.higher_is_better else (lambda c: c)
            checks.update(ref_metric=_median(vals(cost["ref"])), new_metric=_median(vals(cost["new"])))
            clock = estimate_speedup(wall["ref"], wall["new"])
            checks["wall_speedup"] = round(clock.speedup, 4)
            if verdict == "faster" and (problem := _disagrees(est, clock, self.noise_floor)):
                return _fail("rejected", f"behaves differently when measured: {problem}", checks=checks)
        if est.speedup > SUSPICIOUS_SPEEDUP:
            checks["warning"] = (f"speedup above {SUSPICIOUS_SPEEDUP:.0f}x: an algorithmic change, or the bench no "
                                 f"longer does its work -- read the patch")
        return {"compiled": True, "correct": True, "speedup": round(est.speedup, 4),
                "speedup_ci": [round(est.ci[0], 4), round(est.ci[1], 4)],
                "ref_ms": round(est.ref_ms, 3), "new_ms": round(est.new_ms, 3), "checks": checks,
                "verdict": verdict}

    def _decided(self, ref_cost: list[float], new_cost: list[float]) -> bool:
        """Stop timing once the CI clears the noise floor either way; an unclear
        result gets more rounds (up to the budget)."""
        return speed_verdict(estimate_speedup(ref_cost, new_cost, resamples=500), self.noise_floor) != "same"

    def _cost(self, r: RunResult) -> float | None:
        """What one run cost, lower is better: wall ms, the metric, or 1/metric for a rate."""
        if not self.bench_metric:
            return r.wall_s * 1000
        value = parse_metric(r.output, self.bench_metric)
        if value is None:
            return None
        return 1.0 / value if self.higher_is_better else value

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
        edits = patches.parse_edits(answer)
        diff = None if edits else patches.parse_diff(answer)
        if not edits and diff is None:
            edits = [patches.FileEdit(path, "", text, whole=True) for path, text in patches.parse_whole_files(answer)]
        if not edits and diff is None:
            raise EditError("no edit found. " + patches.FORMAT_HELP)
        kind = "diff" if diff is not None else "whole file" if edits[0].whole else "search/replace"
        hot_files = list(dict.fromkeys(h.fn.path for h in self.hotspots))

        def write(tree: Path) -> None:
            if edits:
                patches.apply_edits(tree, edits, lambda search, i: self._resolve(tree, hot_files, search, i))
                return
            try:
                worktree.apply_patch(tree, diff, recount=True)
            except worktree.GitError as e:
                raise EditError(f"the diff does not apply to the current files: {e}") from None

        try:
            new = self.ws.derive(parent_code, write)
        except worktree.GitError as e:
            raise EditError(f"the parent candidate could not be checked out: {e}") from None
        if new == parent_code:
            raise EditError("the answer changes nothing")
        if problem := self._not_allowed(self.ws.tree_for(new)):
            raise EditError(f"not applied: {problem}. {self.policy.describe()}")
        return new, kind

    def _resolve(self, tree: Path, hot_files: list[str], search: str, i: int) -> str:
        """The file a path-less block edits: the one file (hot files first) that holds its text once."""
        text = search if search.endswith("\n") else search + "\n"
        for group in (hot_files, RepoIndex(tree).files):
            hits = [f for f in group if safefs.is_regular(tree, f)
                    and safefs.read_text(tree, f, errors="replace").count(text) == 1]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                break
        raise EditError(f"block {i} names no file and its SEARCH text does not identify one; put the file's path "
                        f"on the line before <<<<<<< SEARCH")

    # -- the result ---------------------------------------------------------------------------
    def write_best(self, run_dir: Path, code: str) -> None:
        """best.patch (applies with `git apply` on HEAD), a summary, and the branch with --branch."""
        run_dir = Path(run_dir)
        (run_dir / "best.patch").write_text(code)
        evals = self.results.get(worktree.patch_key(code), [])
        r = evals[-1] if evals else {}
        checks = r.get("checks", {})
        speedups = [e["speedup"] for e in evals if e.get("speedup")]
        median = f"{_median(speedups):.3f}x" if speedups else "not measured in this process"
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


def _disagrees(metric, clock, noise_floor: float) -> str | None:
    """Why a metric's `faster` is not believed, or None. The metric is what the bench
    prints (code under optimization can fake it: a patched clock, a skipped loop);
    kopt's own clock around the whole command cannot be. The metric may say more than the
    clock (a bench's fixed start-up dilutes the wall-time ratio), but not more than
    AGREEMENT_FACTOR times more unless the clock, too, says `faster`; and never `faster`
    when the clock says `slower`."""
    said = speed_verdict(clock, noise_floor)
    if said == "slower":
        return f"the metric says {metric.speedup:.2f}x faster, kopt's clock says {clock.speedup:.2f}x (slower)"
    if said != "faster" and metric.speedup > AGREEMENT_FACTOR * clock.speedup:
        return (f"the metric says {metric.speedup:.2f}x faster, kopt's clock around the bench {clock.speedup:.2f}x "
                f"(more than {AGREEMENT_FACTOR:.0f}x apart); if the speedup is real, the measured part is too small a "
                f"share of the bench's run time to show -- make the bench do more of it, or drop --bench-metric")
    return None


def _fail(verdict: str, reason: str, compiled: bool = True, checks: dict | None = None) -> dict:
    return {"compiled": compiled, "correct": False, "speedup": None, "speedup_ci": None, "ref_ms": None,
            "new_ms": None, "checks": checks or {}, "verdict": verdict, "reason": reason}


def _status(r: RunResult) -> str:
    return "timed out" if r.timed_out else f"exit {r.rc}"


def _last_line(r: RunResult) -> str:
    lines = [x for x in r.output.strip().splitlines() if x.strip()]
    return lines[-1].strip()[:200] if lines else "(no output)"


def _tail(r: RunResult, lines: int = 6, chars: int = 500) -> str:
    """The end of a failing command's output on one line: what a model needs to fix it."""
    kept = [x.strip() for x in r.output.strip().splitlines() if x.strip()][-lines:]
    return " / ".join(kept)[-chars:] or "(no output)"


def _median(xs: list[float]) -> float:
    import statistics

    return statistics.median(xs)

