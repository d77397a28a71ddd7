"""Repository targets end to end: small real repos made here (builders shared with the
benchmark), real sandboxed test/bench runs, real profiles, a real loopback chat server whose
scripted answers are patches."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import PY_FAST as FAST
from benchmarks.studies.repo_targets import PY_WRONG as WRONG
from benchmarks.studies.repo_targets import cpp_repo, git_run, python_repo
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.prompting.edits import EditError
from kopt.agent.targets.repo import patches
from kopt.agent.targets.repo.hotspots import RepoIndex, parse_functions, rank
from kopt.agent.targets.repo.profile import profile_bench, symbol_name
from kopt.agent.targets.repo.repo_target import RepoTarget
from kopt.agent.targets.repo.shell_commands import TreeShell, hide_around
from kopt.agent.targets.repo.worktree import Workspace, head_commit

PY = sys.executable
PY_OPTS = {"test": f"{PY} -m unittest -q", "bench": f"{PY} bench.py", "bench_metric": r"time_ms: ([\d.]+)"}
needs_git = pytest.mark.skipif(not shutil.which("git"), reason="git missing")


def tree_state(root: Path) -> tuple[str, dict[str, str]]:
    """`git status --porcelain` and a hash of every file outside .git: the user's tree, exactly."""
    # (computed before and after a run, so the index's stat cache must not be refreshed here either)
    hashes = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".git" not in p.relative_to(root).parts:
            hashes[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    for name in ("index", "HEAD"):  # and the index and HEAD, which `git status` could rewrite
        hashes[f".git/{name}"] = hashlib.sha256((root / ".git" / name).read_bytes()).hexdigest()
    return git_run(root, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all"), hashes


@pytest.fixture
def light_search(monkeypatch):
    """Keep the run's heavy optional imports (torch for the machine fingerprint, the
    embedding model, litellm's price table) out of these tests: none is what they check."""
    import kopt.agent.proposers.backends.pricing as pricing
    import kopt.agent.search.loop as search
    import kopt.agent.search.novelty as novelty

    monkeypatch.setattr(novelty, "make_embedder", lambda: None)
    monkeypatch.setattr(pricing, "_table", lambda: {})
    monkeypatch.setattr(search, "fingerprint", lambda: {"cpu": "test"})


@needs_git
def test_llm_patches_give_a_verified_best_patch_and_leave_the_user_tree_alone(tmp_path, light_search):
    pytest.importorskip("openai")
    from kopt.agent.runs.store import Store
    from kopt.agent.search.optimize import run_optimize
    from tests.support.chat_server import ChatServer

    repo = python_repo(tmp_path / "user", n=1500)  # the loop, not start-up, is most of the bench: the clock sees it
    before = tree_state(repo)
    codes = iter([FAST, WRONG])

    def script(body, n):
        last = body["messages"][-1]["content"]
        if "Plan only" in last:
            return 200, "1. replace the double loop in count_pairs by one pass with a dict of counts", 0
        return 200, next(codes, "no more ideas"), 0

    run_dir = tmp_path / "run"
    with ChatServer(script) as srv:
        summary = run_optimize(repo, model="openai/tiny", base_url=srv.url, budget=4, run_dir=run_dir, quiet=True,
                               target_options={**PY_OPTS, "branch": True})
        prompts = [m["content"] for r in srv.requests for m in r["messages"]]
    # the model was shown the profiled hot function, with its tests
    assert any("pairs/count.py -- count_pairs" in p and "of the bench's profile" in p for p in prompts), prompts[:2]
    assert any("tests/test_count.py:CountPairs.test_repeats" in p for p in prompts)

    store = Store.open_run_dir(run_dir)
    verdicts = {c.completion: [e.result for e in store.evaluations() if e.candidate_id == c.id]
                for c in store.candidates()}
    assert verdicts[WRONG] and all(r["verdict"] == "incorrect" for r in verdicts[WRONG])
    # the patch is ~2x on a quiet machine (1.7-2.2x measured beside other test runs): the point is
    # that it is verified faster, by a margin no noise gives
    assert all(r["verdict"] == "faster" and r["speedup"] > 1.3 for r in verdicts[FAST]), \
        [(r["verdict"], r.get("speedup"), r.get("reason")) for r in verdicts[FAST]]
    assert summary["best_speedup"] > 1.3  # the same margin: 1.75 on a busy CI machine
    best = (run_dir / "best.patch").read_text()
    assert "seen.get(target - v, 0)" in best and "len(values) // 2" not in best
    assert "pairs/count.py:count_pairs" in (run_dir / "best" / "SUMMARY.md").read_text()

    # the user's tree is byte for byte what it was; the branch is the only thing added
    assert tree_state(repo) == before
    assert git_run(repo, "worktree", "list").count("\n") == 1
    branch = f"kopt/{run_dir.name}"
    assert "seen.get" in git_run(repo, "show", f"{branch}:pairs/count.py")

    # best.patch applies on a fresh checkout of HEAD and its tests pass there
    fresh = tmp_path / "fresh"
    git_run(tmp_path, "clone", "-q", str(repo), str(fresh))
    git_run(fresh, "apply", str(run_dir / "best.patch"))
    subprocess.run([PY, "-m", "unittest", "-q"], cwd=fresh, check=True, capture_output=True)


@needs_git
@pytest.mark.skipif(not shutil.which("g++") or not shutil.which("make"), reason="no g++/make")
def test_rules_raise_the_optimisation_level_of_a_cpp_repo(tmp_path, light_search):
    from kopt.agent.search.optimize import run_optimize

    repo = cpp_repo(tmp_path / "user")
    before = tree_state(repo)
    summary = run_optimize(repo, model="rules", budget=4, run_dir=tmp_path / "run", quiet=True,
                           target_options={"test": "make -s test", "bench": "make -s bench",
                                           "focus": "src/stats.cpp:count_close"})
    assert summary["best_speedup"] and summary["best_speedup"] > 1.5, summary
    best = (tmp_path / "run" / "best.patch").read_text()
    assert "-CXXFLAGS = -O0 -g -std=c++17" in best and "+CXXFLAGS = -O" in best
    assert tree_state(repo) == before


@needs_git
@pytest.mark.skipif(not shutil.which("valgrind") or not shutil.which("g++"), reason="no valgrind/g++")
def test_callgrind_names_the_slow_cpp_function(tmp_path):
    repo = cpp_repo(tmp_path / "user", n=200)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    tree = ws.tree_for("")
    index = RepoIndex(tree)
    with TreeShell(tree, [], keep=[ws.clone], confine=False) as sh:  # valgrind reads /proc, as repo_target does
        prof = profile_bench(sh, tree, "make -s bench", index, 60)
    hot = rank(prof.weights, prof.total, index)
    assert prof.tool == "callgrind" and hot[0].fn.label == "src/stats.cpp:count_close"
    assert any("bench.cpp:main" in c for c in hot[0].callers) and any("test.cpp" in t for t in hot[0].tests)


@needs_git
def test_bad_inputs_are_one_line_errors(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UserInputError, match="is not a git repository"):
        RepoTarget.from_options(plain, **PY_OPTS)
    with pytest.raises(UserInputError, match="needs --test CMD"):
        RepoTarget.from_options(plain, bench="true")

    repo = python_repo(tmp_path / "user", n=200)
    with pytest.raises(UserInputError, match="--test fails on the original") as e:
        RepoTarget.from_options(repo, **{**PY_OPTS, "test": f"{PY} -c 'raise SystemExit(3)'"})
    assert "\n" not in str(e.value)
    with pytest.raises(UserInputError, match="printed no number matching"):
        RepoTarget.from_options(repo, **{**PY_OPTS, "bench_metric": r"throughput: (\d+)"})
    with pytest.raises(UserInputError, match="no function 'nope'"):
        RepoTarget.from_options(repo, **PY_OPTS, focus="pairs/count.py:nope")


@needs_git
def test_a_dirty_tree_is_used_only_with_include_dirty(tmp_path, capsys):
    repo = python_repo(tmp_path / "user", n=200)
    (repo / "pairs" / "extra.py").write_text("X = 1\n")
    t = RepoTarget.from_options(repo, **PY_OPTS, focus="pairs/count.py:count_pairs")
    assert t.baseline_code() == "" and "uncommitted change" in capsys.readouterr().err
    t = RepoTarget.from_options(repo, **PY_OPTS, focus="pairs/count.py:count_pairs", include_dirty=True)
    assert "pairs/extra.py" in t.baseline_code()
    assert (t.ws.tree_for(t.baseline_code()) / "pairs" / "extra.py").read_text() == "X = 1\n"


@needs_git
def test_a_subfolder_runs_its_commands_there(tmp_path):
    repo = python_repo(tmp_path / "user", n=100)
    here = f"{PY} -c 'import os, sys; sys.exit(os.path.basename(os.getcwd()) != \"tests\")'"
    t = RepoTarget.from_options(repo / "tests", test=here, bench=f"cd .. && {PY} bench.py",
                                bench_metric=PY_OPTS["bench_metric"], focus="pairs/count.py:count_pairs")
    assert t.root == repo.resolve() and t.subdir == "tests"


CHEAT = """pairs/count.py
<<<<<<< SEARCH
    n = 0
    for i in range(len(values)):
=======
    with open(__file__ + ".calls", "a") as log:
        log.write("x")
    n = 0
    for i in range(len(values)):
>>>>>>> REPLACE"""


@needs_git
def test_state_kept_in_the_tree_and_edited_tests_are_rejected(tmp_path):
    repo = python_repo(tmp_path / "user", n=100)
    t = RepoTarget.from_options(repo, **PY_OPTS, focus="pairs/count.py:count_pairs")
    with pytest.raises(EditError, match="tests/test_count.py is a test file"):
        t.apply_answer("tests/test_count.py\n<<<<<<< SEARCH\n        self.assertEqual(count_pairs([1, 1, 1], 2), 3)\n"
                       "=======\n        pass\n>>>>>>> REPLACE", "")
    code, kind = t.apply_answer(CHEAT, "")
    assert kind == "search/replace" and t.functions_changed(code) == ["pairs/count.py:count_pairs"]
    (tmp_path / "c.patch").write_text(code)
    r = t.evaluate(tmp_path / "c.patch", [str(tmp_path / "run")])
    assert r["verdict"] == "rejected" and "pairs/count.py.calls" in r["reason"], r


@needs_git
def test_a_candidate_sees_only_its_own_tree(tmp_path):
    repo = python_repo(tmp_path / "user", n=10)
    run = tmp_path / "run"
    ws = Workspace(repo, head_commit(repo), run / "repo")
    (run / "run.sqlite").write_text("the store")
    mine, other = ws.tree_for(""), ws.tree_for(patches_add_file())
    probe = (f"cat {run}/run.sqlite; cat {other}/NEW.txt; echo x > {repo}/pwned; echo built > out.txt; "
             f"cat out.txt")
    with TreeShell(mine, [str(run)], keep=[ws.clone]) as sh:
        r = sh.run(probe, 30)
    assert "the store" not in r.output and "new file" not in r.output and "built" in r.output
    assert not (repo / "pwned").exists() and (mine / "out.txt").exists()


def patches_add_file() -> str:
    return ("diff --git a/NEW.txt b/NEW.txt\nnew file mode 100644\n--- /dev/null\n+++ b/NEW.txt\n"
            "@@ -0,0 +1 @@\n+new file\n")


def test_answers_parse_into_file_edits_and_fail_loudly(tmp_path):
    answer = ("Here you go.\n\n`src/a.py`\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n"
              "File: lib/b.c\n<<<<<<< SEARCH\nint y;\n=======\nlong y;\n>>>>>>> REPLACE\n")
    edits = patches.parse_edits(answer)
    assert [(e.path, e.search, e.replace) for e in edits] == [("src/a.py", "x = 1\n", "x = 2\n"),
                                                              ("lib/b.c", "int y;\n", "long y;\n")]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\nz = 3\n")
    with pytest.raises(EditError, match="does not match lib/b.c|lib/b.c does not exist"):
        patches.apply_edits(tmp_path, edits, lambda s, i: "")
    with pytest.raises(EditError, match="must be relative"):
        patches.apply_edits(tmp_path, [patches.FileEdit("../etc/passwd", "", "x")], lambda s, i: "")
    with pytest.raises(EditError, match="syntax error"):
        patches.apply_edits(tmp_path, [patches.FileEdit("src/a.py", "x = 1\n", "x = (\n")], lambda s, i: "")
    assert patches.apply_edits(tmp_path, edits[:1], lambda s, i: "") == ["src/a.py"]
    assert (tmp_path / "src" / "a.py").read_text() == "x = 2\nz = 3\n"
    whole = "New version:\n\nsrc/a.py\n```python\nx = 5\n```\nand\n```diff\n-x\n+y\n```\nNo path:\n```\nq = 1\n```"
    assert patches.parse_whole_files(whole) == [("src/a.py", "x = 5\n")]


def test_changed_lines_and_functions_of_a_patch():
    patch = ("diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -3,3 +3,4 @@ def f():\n"
             "     a = 1\n-    b = 2\n+    b = 3\n+    c = 4\n     return a\n")
    assert patches.changed_lines(patch) == {"m.py": {4, 5}}
    src = ("import os\n\ndef f():\n    a = 1\n    b = 3\n    c = 4\n    return a\n\n"
           "class K:\n    def g(self):\n        pass\n")
    fns = {f.qualname: (f.start, f.end) for f in parse_functions("m.py", src)}
    assert fns == {"f": (3, 7), "K.g": (10, 11)}
    cpp = "namespace ns { struct S { int get() const { return 1; } };\nint S::put(int x) { return x; } }\n" \
          "__global__ void kern(float* p) { p[0] = 1; }\n"
    assert [(f.name, f.qualname) for f in parse_functions("k.cu", cpp)] == [
        ("get", "ns::S::get"), ("put", "ns::S::put"), ("kern", "kern")]
    assert symbol_name("ns::S::put(int) const") == "put" and symbol_name("slow<int>(std::vector<int> const&)") == "slow"


def test_hide_around_keeps_one_tree_visible(tmp_path):
    for p in ("run/run.sqlite", "run/repo/trees/a/f", "run/repo/trees/b/f", "run/repo/clone/x", "other/y"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("")
    hidden = hide_around([str(tmp_path / "run"), str(tmp_path / "other")],
                         [tmp_path / "run/repo/trees/a", tmp_path / "run/repo/clone"])
    assert sorted(Path(h).relative_to(tmp_path).as_posix() for h in hidden) == [
        "other", "run/repo/trees/b", "run/run.sqlite"]


def test_rules_raise_only_low_optimisation_levels():
    from kopt.agent.proposers.rules.repo_rules import flag_edits

    make = "CXX ?= g++\nCXXFLAGS = -O0 -g -std=c++17\nCFLAGS += -Wall\nNVCCFLAGS := -O3 -march=native\n"
    assert flag_edits("Makefile", make, "-O2") == [("CXXFLAGS = -O0 -g -std=c++17", "CXXFLAGS = -O2 -g -std=c++17")]
    assert flag_edits("Makefile", make, "-O3 -march=native") == [
        ("CXXFLAGS = -O0 -g -std=c++17", "CXXFLAGS = -O3 -march=native -g -std=c++17")]
    cmake = 'set(CMAKE_BUILD_TYPE Debug)\nset(CMAKE_CXX_FLAGS "-Og -Wall")\n'
    assert flag_edits("CMakeLists.txt", cmake, "-O2") == [
        ('set(CMAKE_CXX_FLAGS "-Og -Wall")', 'set(CMAKE_CXX_FLAGS "-O2 -Wall")'),
        ("set(CMAKE_BUILD_TYPE Debug)", "set(CMAKE_BUILD_TYPE Release)")]
    assert flag_edits("Makefile", "CFLAGS = -O2 -Wall\n", "-O2") == []


@needs_git
def test_a_tree_of_many_files_is_kept_and_a_reset_sets_metadata_back(tmp_path):
    """A repository of 25,000 files (past a KernelBench build folder's 20,000) keeps its tree
    after a run: the tree holds the candidate (it was removed with the build-folder rule, and
    the next reset crashed). A reset wipes what a run may keep outside file contents: xattrs,
    modes and times (red team 15 kept a bench's answer in an xattr of the tree's top folder)."""
    import os

    repo = python_repo(tmp_path / "user", n=10)
    for d in range(25):
        (repo / "data" / str(d)).mkdir(parents=True)
        for f in range(1000):
            (repo / "data" / str(d) / str(f)).write_text("")
    git_run(repo, "add", "-A")
    git_run(repo, "commit", "-qm", "many files")
    ws = Workspace(repo, head_commit(repo), tmp_path / "run" / "repo")
    tree = ws.tree_for("")
    probe = (f"{PY} -c \"import os; os.setxattr('.', 'user.k', b'42'); os.chmod('bench.py', 0o600); "
             f"os.utime('pairs', ns=(42, 42)); print('stored')\"")
    with TreeShell(tree, [], keep=[ws.clone]) as sh:
        r = sh.run(probe, 60)
    assert "stored" in r.output or "Operation not supported" in r.output, r.output
    assert (tree / "data" / "24" / "999").exists()
    ws.reset(tree)
    assert os.listxattr(tree) == [] and (tree / "bench.py").stat().st_mode & 0o777 == 0o644
    assert (tree / "pairs").stat().st_mtime_ns != 42 and git_run(tree, "status", "--porcelain") == ""
