"""Repository targets on two example repos: speedup and evaluations of `kopt optimize REPO`.

The repos are made fresh in a temporary folder (a Python package with a quadratic pair
count and its unit tests; a C++ library with a quadratic loop, its test program and a
-O0 Makefile). Every row is a real `kopt optimize` run: real sandboxed test and bench
runs, real profiles, real timing with interleaved rounds and a bootstrap CI.

The proposer column says where candidates came from:
  rules                  kopt's built-in rules, no model (for a repo: raise a native
                         build's -O level; nothing for pure Python, and it says so).
  scripted (not a model) a loopback OpenAI-compatible server replaying fixed answers
                         (one correct rewrite, one wrong one), to show the loop verifies,
                         rejects and returns a patch; it measures kopt, not a model.

    python benchmarks/studies/repo_targets.py [--budget 6]   (from a source checkout for
                                                          the scripted rows)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: tests/support/chat_server.py imports from the checkout
    sys.path.insert(0, str(REPO))


def git_run(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=env).stdout


def commit_all(root: Path) -> Path:
    git_run(root, "init", "-q")
    git_run(root, "add", "-A")
    git_run(root, "commit", "-q", "-m", "init")
    return root


def python_repo(root: Path, n: int = 1500) -> Path:
    """A package with a quadratic pair count, its unit tests and a bench that prints its answer and ms."""
    (root / "pairs").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pairs" / "__init__.py").write_text("")
    (root / "pairs" / "count.py").write_text(textwrap.dedent('''\
        """Counting pairs."""


        def count_pairs(values, target):
            """Number of index pairs i < j with values[i] + values[j] == target."""
            n = 0
            for i in range(len(values)):
                for j in range(i + 1, len(values)):
                    if values[i] + values[j] == target:
                        n += 1
            return n


        def pair_report(values, target):
            return f"{count_pairs(values, target)} pairs"
        '''))
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_count.py").write_text(textwrap.dedent('''\
        import unittest

        from pairs.count import count_pairs, pair_report


        class CountPairs(unittest.TestCase):
            def test_small(self):
                self.assertEqual(count_pairs([1, 2, 3, 4], 5), 2)

            def test_repeats(self):
                self.assertEqual(count_pairs([1, 1, 1], 2), 3)
                self.assertEqual(count_pairs([2, 2, 3, 1], 4), 2)

            def test_report(self):
                self.assertEqual(pair_report([0, 0], 0), "1 pairs")
        '''))
    (root / "bench.py").write_text(textwrap.dedent(f'''\
        import time

        from pairs.count import count_pairs

        values = [(i * 7919) % 1000 for i in range({n})]
        start = time.perf_counter()
        pairs = count_pairs(values, 1000)
        elapsed = time.perf_counter() - start
        print(f"pairs: {{pairs}}")
        print(f"time_ms: {{elapsed * 1000:.3f}}")
        '''))
    return commit_all(root)


def cpp_repo(root: Path, n: int = 3000) -> Path:
    """A C++ library with a quadratic loop, a test program and a bench, built by a -O0 Makefile."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "stats.cpp").write_text(textwrap.dedent('''\
        #include "stats.h"

        #include <cstddef>

        long count_close(const std::vector<long>& v, long d) {
            long n = 0;
            for (std::size_t i = 0; i < v.size(); i++)
                for (std::size_t j = i + 1; j < v.size(); j++)
                    if (v[i] - v[j] <= d && v[j] - v[i] <= d) n++;
            return n;
        }

        long total(const std::vector<long>& v) {
            long s = 0;
            for (long x : v) s += x;
            return s;
        }
        '''))
    (root / "src" / "stats.h").write_text("#pragma once\n#include <vector>\n"
                                          "long count_close(const std::vector<long>& v, long d);\n"
                                          "long total(const std::vector<long>& v);\n")
    (root / "src" / "bench.cpp").write_text(textwrap.dedent(f'''\
        #include <cstdio>
        #include "stats.h"
        int main() {{
            std::vector<long> v;
            for (long i = 0; i < {n}; i++) v.push_back((i * 7919) % 100000);
            std::printf("%ld %ld\\n", count_close(v, 50), total(v));
        }}
        '''))
    (root / "src" / "test.cpp").write_text(textwrap.dedent('''\
        #include <cstdio>
        #include "stats.h"
        int main() {
            if (count_close({1, 2, 10}, 1) != 1) { std::puts("FAIL count_close"); return 1; }
            if (count_close({5, 5, 5}, 0) != 3) { std::puts("FAIL repeats"); return 1; }
            if (total({1, 2, 3}) != 6) { std::puts("FAIL total"); return 1; }
            std::puts("ok");
        }
        '''))
    (root / "Makefile").write_text(textwrap.dedent('''\
        CXX ?= g++
        CXXFLAGS = -O0 -g -std=c++17

        build/bench: src/bench.cpp src/stats.cpp src/stats.h Makefile
        \tmkdir -p build && $(CXX) $(CXXFLAGS) -o $@ src/bench.cpp src/stats.cpp

        build/test: src/test.cpp src/stats.cpp src/stats.h Makefile
        \tmkdir -p build && $(CXX) $(CXXFLAGS) -o $@ src/test.cpp src/stats.cpp

        test: build/test
        \t./build/test

        bench: build/bench
        \t./build/bench
        '''))
    (root / ".gitignore").write_text("build/\n")
    return commit_all(root)


PY_FAST = '''pairs/count.py
<<<<<<< SEARCH
    n = 0
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if values[i] + values[j] == target:
                n += 1
    return n
=======
    seen = {}
    n = 0
    for v in values:
        n += seen.get(target - v, 0)
        seen[v] = seen.get(v, 0) + 1
    return n
>>>>>>> REPLACE'''
PY_WRONG = '''pairs/count.py
<<<<<<< SEARCH
    n = 0
    for i in range(len(values)):
=======
    return len(values) // 2
    n = 0
    for i in range(len(values)):
>>>>>>> REPLACE'''

CPP_FAST = '''src/stats.cpp
<<<<<<< SEARCH
long count_close(const std::vector<long>& v, long d) {
    long n = 0;
    for (std::size_t i = 0; i < v.size(); i++)
        for (std::size_t j = i + 1; j < v.size(); j++)
            if (v[i] - v[j] <= d && v[j] - v[i] <= d) n++;
    return n;
}
=======
long count_close(const std::vector<long>& v, long d) {
    std::vector<long> s(v);
    std::sort(s.begin(), s.end());
    long n = 0;
    std::size_t j = 0;
    for (std::size_t i = 0; i < s.size(); i++) {
        while (s[i] - s[j] > d) j++;
        n += static_cast<long>(i - j);
    }
    return n;
}
>>>>>>> REPLACE

src/stats.cpp
<<<<<<< SEARCH
#include <cstddef>
=======
#include <algorithm>
#include <cstddef>
>>>>>>> REPLACE'''
CPP_WRONG = '''src/stats.cpp
<<<<<<< SEARCH
            if (v[i] - v[j] <= d && v[j] - v[i] <= d) n++;
=======
            if (v[i] - v[j] <= d) n++;
>>>>>>> REPLACE'''
PLAN = "1. replace the quadratic loop of the hottest function by a near-linear algorithm"


def scripted_server(answers: list[str]):
    """The test suite's loopback chat server, replaying `answers` (None outside a source checkout)."""
    try:
        from tests.support.chat_server import ChatServer
    except ImportError:
        return None
    queue = iter(answers)

    def script(body, n):
        last = body["messages"][-1]["content"]
        return 200, (PLAN if "Plan only" in last else next(queue, "no further idea")), 0

    return ChatServer(script)


def run_row(label: str, repo: Path, opts: dict, proposer: str, budget: int, answers: list[str] | None) -> dict:
    from kopt.agent.runs.store import Store
    from kopt.agent.search.optimize import run_optimize

    run_dir = repo.parent / f"run-{label.replace(' ', '-')}"
    start = time.monotonic()
    kw = {"model": "rules"}
    server = None
    if answers is not None:
        server = scripted_server(answers)
        if server is None:
            return {"repo": label, "proposer": proposer, "note": "skipped: tests/support/chat_server.py not importable"}
        server.__enter__()
        kw = {"model": "openai/scripted", "base_url": server.url}
    try:
        summary = run_optimize(repo, budget=budget, run_dir=run_dir, quiet=True, target_options=opts, **kw)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    store = Store.open_run_dir(run_dir)
    evals = store.evaluations()
    best = summary.get("best")
    last = next((e.result for e in reversed(evals) if e.candidate_id == best), {}) if best else {}
    root = next(c.id for c in store.candidates() if c.proposer.get("model") == "reference")
    verdicts = [e.result["verdict"] for e in evals if e.candidate_id != root]
    source = store.db.execute("SELECT source FROM targets").fetchone()[0]
    hot = next((line.split(" -- ")[1].split(" (")[0] for line in source.splitlines() if line.startswith("### ")),
               "-")
    tool = next((line.split(" with ")[1].split(":")[0] for line in source.splitlines()
                 if line.startswith("profile of the bench with ")), "focus/none")
    return {"repo": label, "proposer": proposer, "evaluations": summary["evaluations"],
            "candidates": summary["candidates"], "speedup": summary.get("best_speedup") if best != root else None,
            "ci": last.get("speedup_ci"), "tests": (last.get("checks") or {}).get("tests", "-"),
            "changed": ", ".join((last.get("checks") or {}).get("functions_changed", [])) or "-",
            "hot": f"{hot} ({tool})", "non-root verdicts": ",".join(verdicts) or "-",
            "patch": (run_dir / "best.patch").exists(), "wall_s": round(time.monotonic() - start, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=int, default=6, help="evaluations per run")
    p.add_argument("--py-n", type=int, default=2500, help="size of the Python bench input")
    p.add_argument("--cpp-n", type=int, default=6000, help="size of the C++ bench input")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kopt-repo-bench-"))
    py_opts = {"test": f"{PY} -m unittest -q", "bench": f"{PY} bench.py", "bench_metric": r"time_ms: ([\d.]+)"}
    cpp_opts = {"test": "make -s test", "bench": "make -s bench"}
    rows = []
    plan = [("python pairs", python_repo, a.py_n, py_opts, "rules", None),
            ("python pairs", python_repo, a.py_n, py_opts, "scripted (not a model)", [PY_FAST, PY_WRONG]),
            ("c++ close pairs", cpp_repo, a.cpp_n, cpp_opts, "rules", None),
            ("c++ close pairs", cpp_repo, a.cpp_n, cpp_opts, "scripted (not a model)", [CPP_FAST, CPP_WRONG])]
    for i, (label, make, n, opts, proposer, answers) in enumerate(plan):
        repo = make(tmp / f"r{i}" / "repo", n=n)
        rows.append(run_row(f"{label} {i}", repo, opts, proposer, a.budget, answers))
    cols = ["repo", "proposer", "evaluations", "candidates", "median speedup", "last 95% CI", "tests",
            "functions changed", "hot function (profiler)", "verdicts of candidates", "best.patch", "wall s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        if "note" in r:
            print(f"| {r['repo']} | {r['proposer']} | {r['note']} |")
            continue
        sp = f"{r['speedup']:.2f}x" if r["speedup"] else "none (the original stays best)"
        patch = "yes" if r["patch"] and r["speedup"] else "empty" if r["patch"] else "no"
        cells = [r["repo"], r["proposer"], str(r["evaluations"]), str(r["candidates"]), sp,
                 str(r["ci"]) if r["speedup"] else "-", str(r["tests"]), r["changed"], r["hot"],
                 r["non-root verdicts"], patch, str(r["wall_s"])]
        print("| " + " | ".join(cells) + " |")
    print(f"\nmachine: {os.cpu_count()} cores; timings are wall time of the bench (C++) or its own metric "
          f"(Python), interleaved rounds, median ratio with a 95% bootstrap CI.")


if __name__ == "__main__":
    main()
