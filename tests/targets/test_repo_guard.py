"""The rules that keep a repository candidate honest, without a sandbox run: what a patch may
change (git's own view of the applied tree), build-file flag lines, reads and writes of a
candidate's tree that refuse symlinks and FIFOs, resetting a tree, and the bench-output
comparison."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import git_run, python_repo
from kopt.agent.proposers.rules.repo_rules import flags_only
from kopt.agent.targets.repo import guard, safefs
from kopt.agent.targets.repo.hotspots import RepoIndex
from kopt.agent.targets.repo.outputs import OutputCheck
from kopt.agent.targets.repo.worktree import Workspace, head_commit

needs_git = pytest.mark.skipif(not shutil.which("git"), reason="git missing")


def change(path: str, status: str = "M", old: str = "100644", new: str = "100644") -> guard.Change:
    return guard.Change(path, status, old, new)


def test_a_patch_may_change_the_code_under_optimization_and_nothing_else():
    p = guard.Policy({"pairs/count.py"}, {"bench.py", "benchutil.py"}, ("docs/*.md",))
    never = lambda rel: False  # noqa: E731 -- no build file changes only flags here
    ok = [change("pairs/count.py"), change("pairs/fast.py", "A"), change("docs/x.md", "A"),
          change("pairs/count.py", "D", new="000000")]
    assert [p.allowed(c, never) for c in ok] == [None] * 4
    refused = {"tests/conftest.py": change("tests/conftest.py", "A"), "conftest.py": change("conftest.py", "A"),
               "sitecustomize.py": change("pairs/sitecustomize.py", "A"), ".pth": change("x.pth", "A"),
               "pyproject.toml": change("pyproject.toml"), "Makefile": change("Makefile"),
               "part of the bench": change("benchutil.py"), "not under optimization": change("other/mod.py"),
               "not under optimization ": change("lib/new.py", "A"), "symlink": change("pairs/l.py", "A", new="120000"),
               "submodule": change("vendor", "A", new="160000"),
               "executable": change("pairs/count.py", old="100644", new="100755")}
    for word, c in refused.items():
        reason = p.allowed(c, never)
        assert reason and word.strip() in reason, (word, reason)
    assert p.allowed(change("run.sh", old="100755", new="100755"), never) == "run.sh is not under optimization"
    assert p.allowed(change("Makefile"), lambda rel: True) is None  # its flag lines only
    assert guard.Policy(set(), {"bench.py"}, everything=True).allowed(change("lib/new.py", "A"), never) is None


def test_git_raw_diff_is_read_as_changes():
    raw = ":100644 120000 abc def T\0pairs/x.py\0:000000 100644 000 fed A\0tests/conftest.py\0"
    assert guard.parse_raw(raw) == [guard.Change("pairs/x.py", "T", "100644", "120000", "def"),
                                    guard.Change("tests/conftest.py", "A", "000000", "100644", "fed")]


def test_build_files_may_change_only_in_optimisation_flags():
    make = "CXXFLAGS = -O0 -g -std=c++17\n\nbench: build/bench\n\t./build/bench\n"
    assert flags_only(make, make.replace("-O0", "-O3 -march=native"))
    assert not flags_only(make, make.replace("\t./build/bench", "\t@echo 42"))
    assert not flags_only(make, make.replace("-O0", "-O2 -DBENCH_SKIP"))
    assert not flags_only(make, make.replace("-O0", "-O2 -fplugin=./evil.so"))
    assert not flags_only(make, make + "\nall: bench\n")
    cmake = "set(CMAKE_BUILD_TYPE Debug)\n"
    assert flags_only(cmake, "set(CMAKE_BUILD_TYPE Release)\n")


def test_reads_and_writes_refuse_symlinks_fifos_and_escapes(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir()
    outside.mkdir()
    (outside / "secret.py").write_text("secret = 1\n")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "fifo", tree / "fifo.py")
    os.symlink("/proc/self/fd/0", tree / "stdin.py")
    os.symlink(outside / "secret.py", tree / "link.py")
    os.symlink(outside, tree / "pkg")
    (tree / "ok.py").write_text("x = 1\n")
    done = []

    def reads():
        for rel in ("fifo.py", "stdin.py", "link.py", "pkg/secret.py", "../outside/secret.py"):
            with pytest.raises(OSError):
                safefs.read_text(tree, rel)
        done.append(True)

    th = threading.Thread(target=reads, daemon=True)
    th.start()
    th.join(20)
    if not done:
        os.close(os.open(tmp_path / "fifo", os.O_WRONLY | os.O_NONBLOCK))
    assert done, "a read in the tree blocked"
    assert safefs.read_text(tree, "ok.py") == "x = 1\n" and safefs.read_text(tree, "ok.py", cap=3) == "x ="
    for rel in ("link.py", "pkg/new.py", "pkg/secret.py"):
        with pytest.raises(safefs.UnsafePath):
            safefs.write_text(tree, rel, "pwned\n")
    safefs.write_text(tree, "a/b/new.py", "y = 2\n")
    assert (tree / "a" / "b" / "new.py").read_text() == "y = 2\n"
    assert (outside / "secret.py").read_text() == "secret = 1\n" and not (outside / "new.py").exists()
    assert not safefs.is_regular(tree, "link.py") and safefs.is_regular(tree, "ok.py")


@needs_git
def test_reset_brings_a_tree_back_to_its_candidate(tmp_path):
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    patch = ("diff --git a/NEW.py b/NEW.py\nnew file mode 100644\n--- /dev/null\n+++ b/NEW.py\n"
             "@@ -0,0 +1 @@\n+x = 1\n")
    tree = ws.tree_for(patch)
    (tree / "pairs" / ".git").mkdir()
    (tree / "pairs" / ".git" / "cache").write_text("42")
    (tree / "bench.py").write_text("print('changed')\n")
    (tree / "NEW.py").unlink()
    (tree / "tests" / "conftest.py").write_text("raise SystemExit\n")
    os.symlink("/proc/self/fd/0", tree / "pairs" / "stdin.py")
    (tree / ".git").unlink()
    (tree / ".git").mkdir()  # a forged git dir: kopt must not use it
    (tree / ".git" / "config").write_text("[core]\n\tfsmonitor = touch " + str(tmp_path / "ran") + "\n")
    ws.reset(tree)
    assert (tree / "NEW.py").read_text() == "x = 1\n" and "changed" not in (tree / "bench.py").read_text()
    assert not (tree / "pairs" / ".git").exists() and not (tree / "tests" / "conftest.py").exists()
    assert not os.path.lexists(tree / "pairs" / "stdin.py") and (tree / ".git").is_file()
    assert git_run(tree, "status", "--porcelain") == "" and not (tmp_path / "ran").exists()
    assert [c.path for c in guard.parse_raw(ws.changes(tree))] == ["NEW.py"]
    assert "NEW.py" in RepoIndex(tree).files


@needs_git
def test_reset_undoes_an_in_place_rewrite_that_kept_size_and_mtime(tmp_path):
    """Git trusts its stat data; a run can keep a file's size, inode and mtime but not its
    ctime, which `tree_metadata.unsettled` reads (red team 16)."""
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    tree = ws.tree_for("")
    ws.reset(tree)
    target, reader, chmodded = tree / "bench.py", tree / "tests" / "test_count.py", tree / "pairs" / "count.py"
    committed = target.read_bytes()
    st = os.stat(target)
    with open(target, "r+b") as f:
        f.write(b"#" * 8)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(target)[1:9] == st[1:9] and target.read_bytes() != committed  # the same to git's stat check
    os.chmod(chmodded, 0o644)  # the same mode: only its ctime moves
    reader.read_bytes()
    ws.reset(tree)
    assert target.read_bytes() == committed
    ctimes = {p: os.stat(p).st_ctime_ns for p in (target, reader, chmodded, tree / "pairs" / "__init__.py")}
    assert max(ctimes.values()) - min(ctimes.values()) < 10**9  # every ctime moved alike in the reset


@needs_git
def test_reset_renumbers_every_file_once_a_run_deleted_one(tmp_path):
    """A file git brings back gets a new inode number; which ones did was a message (red team 17)."""
    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    tree = ws.tree_for("")
    ws.reset(tree)
    files = [tree / "bench.py", tree / "pairs" / "count.py", tree / "tests" / "test_count.py"]
    content, inodes = {p: p.read_bytes() for p in files}, {p: os.stat(p).st_ino for p in files}
    ws.reset(tree)  # nothing deleted: nothing renumbered
    assert inodes == {p: os.stat(p).st_ino for p in files}
    (tree / "pairs" / "count.py").unlink()
    ws.reset(tree)
    assert all(os.stat(p).st_ino != inodes[p] for p in files)
    assert {p: p.read_bytes() for p in files} == content and git_run(tree, "status", "--porcelain") == ""


def test_bench_output_must_match_the_original_apart_from_the_metric():
    metric = r"time_ms: ([\d.]+)"
    check = OutputCheck(metric, "pairs: 1123\ntime_ms: 220.1\n")
    assert check.differs("pairs: 1123\ntime_ms: 0.3\n") is None
    assert "'pairs: 1499'" in check.differs("pairs: 1499\ntime_ms: 0.3\n")
    assert check.differs("time_ms: 0.3\n")
    check.learn("pairs: 1123\ntime_ms: 219.0\n")  # the original is stable: the check stays strict
    assert not check.floats and not check.off
    loose = OutputCheck(metric, "pairs: 7 in 1.5 s\ntime_ms: 3\n")
    loose.learn("pairs: 7 in 1.7 s\ntime_ms: 3\n")  # the original prints its own timings too
    assert loose.floats and loose.differs("pairs: 7 in 0.1 s\ntime_ms: 1\n") is None
    assert loose.differs("pairs: 8 in 0.1 s\ntime_ms: 1\n")
    off = OutputCheck(None, "seed 1\n")
    off.learn("a random seed\n")  # more than its numbers varies
    assert off.off and off.differs("anything") is None and "not checked" in off.describe()
    whole = OutputCheck(None, "result: 42\ntook 120 us\n")
    whole.learn("result: 42\ntook 98 us\n")  # an integer timing varies: masked, the answer still checked
    assert not whole.off and whole.differs("result: 42\ntook 7 us\n") is None
    assert "'result: 41'" in whole.differs("result: 41\ntook 7 us\n")


def test_a_warm_up_laid_out_alike_counts_as_a_run_of_the_original_and_one_with_build_lines_does_not():
    """Two timed runs of the original printed the same import time (red team 9's honest patch
    was `incorrect` in CI); its warm-up, laid out alike, shows the number varies."""
    check = OutputCheck(None, "import: 0.001611 s\nresult: 298.1\n")
    assert check.learn("import: 0.001611 s\nresult: 298.1\n")
    assert check.differs("import: 0.000950 s\nresult: 298.1\n")  # two runs alike: still compared
    assert check.learn("import: 0.002185 s\nresult: 298.1\n", alike_only=True)
    assert check.differs("import: 0.000950 s\nresult: 298.1\n") is None
    assert check.differs("import: 0.000950 s\nresult: 298.2\n")
    built = OutputCheck(None, "result: 298.1\n")
    assert not built.learn("g++ -O2 -c work.cc\nresult: 298.1\n", alike_only=True)
    assert not built.off and built.differs("result: 298.2\n")  # the build's lines did not switch it off


def test_bench_files_are_the_named_script_and_what_it_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    for rel in ("bench.py", "benchutil.py", "pkg/__init__.py", "pkg/core.py", "other.py"):
        (tmp_path / rel).write_text("")
    (tmp_path / "bench.py").write_text("import benchutil\nfrom pkg import core\nimport os\n")
    assert guard.bench_files(Path(tmp_path), ["python -m pytest -q", "python bench.py"]) == {
        "bench.py", "benchutil.py", "pkg/__init__.py", "pkg/core.py"}


@needs_git
def test_two_evaluations_never_measure_in_one_tree_at_once(tmp_path):
    """Runs reset their tree, so --jobs threads sharing the original's tree take turns."""
    import time

    repo = python_repo(tmp_path / "user", n=10)
    ws = Workspace(repo, head_commit(repo), tmp_path / "ws")
    ref, other = ws.tree_for(""), ws.tree_for(
        "diff --git a/N.py b/N.py\nnew file mode 100644\n--- /dev/null\n+++ b/N.py\n@@ -0,0 +1 @@\n+x = 1\n")
    events = []

    def measure(name, trees):
        with ws.locked(*trees):
            events.append(f"{name}+")
            time.sleep(0.3)
            events.append(f"{name}-")

    threads = [threading.Thread(target=measure, args=(n, t)) for n, t in
               (("a", (ref, other)), ("b", (other, ref)), ("c", (ref, ref)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(events) == 6 and all(events[i][0] == events[i + 1][0] for i in range(0, 6, 2)), events


@pytest.mark.parametrize("path, shadowed", [
    ("src/unittest.py", "standard library"), ("pkg/json/__init__.py", "standard library"),
    ("numpy.py", "installed module"), ("include/math.h", "system header"),
    ("src/fast_work.py", None), ("include/kopt_work.h", None), ("src/work.cpp", None)])
def test_a_new_file_may_not_stand_in_for_a_module_or_header_from_outside(path, shadowed):
    from kopt.agent.targets.repo.guard import shadows

    got = shadows(path)
    assert (got is None) if shadowed is None else (got and shadowed in got), got


def test_a_patch_that_writes_down_the_printed_answer_is_caught_and_an_honest_one_is_not():
    check = OutputCheck(None, "import: 0.0123\nresult: 5999999\nsteps: 1000\nelapsed: 0.25\n")
    check.learn("import: 0.0131\nresult: 5999999\nsteps: 1000\nelapsed: 0.27\n")  # its timings vary
    assert check.answers() == {"5999999"}  # 1000 is too common a number; the timings are not answers
    assert "5999999" in check.memorised("+++ b/lib.py\n+    if n == 3_000_000:\n+        return 5_999_999\n")
    assert check.memorised("+++ b/lib.py\n+    return 2 * n - 1\n+    # 1000 steps\n") is None
    kept = "-    total = 5999999 - 1\n+    total = 5999999 - 1  # unchanged constant\n"
    assert check.memorised(kept) is None  # a constant the original had already


def test_a_package_folder_is_sealed_unless_something_edits_the_path(tmp_path):
    from kopt.agent.targets.repo.guard import sealed_packages

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "bench.py").write_text("from lib import work\n")
    files = ["lib/__init__.py", "bench.py"]
    assert sealed_packages(tmp_path, files, set()) == {"lib"}
    (tmp_path / "test_x.py").write_text("import sys\nsys.path.insert(0, 'lib')\n")  # any file of the tree
    assert sealed_packages(tmp_path, [*files, "test_x.py"], set()) == frozenset()  # lib/types.py would shadow
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = lib\n")
    assert sealed_packages(tmp_path, files, set()) == frozenset()  # pytest puts lib/ first on the tests' path
    (tmp_path / "pytest.ini").unlink()
    assert sealed_packages(tmp_path, files, set(), ["PYTHONPATH=lib python -m pytest"]) == frozenset()
    (tmp_path / "conf.py").write_text("import sys\nsys.path.insert(0, '..')\n")  # a docs build's, run by neither
    assert sealed_packages(tmp_path, [*files, "conf.py"], set()) == {"lib"}


def test_a_module_a_command_runs_with_dash_m_is_named(tmp_path):
    from kopt.agent.targets.repo.guard import named_files

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "work.py").write_text("")
    assert named_files(tmp_path, ["python -m pytest -q && python -m lib.work"]) == {"lib/work.py"}
