"""Red team 6: a Makefile bench never had its output checked.

The expected output was the original's warm-up run, which also printed the build (make's
recipe lines); the timed runs (build outputs kept, nothing rebuilt) never printed them, so
the check learnt that the original's output "varies between its runs" and switched itself
off. A candidate whose code answered 42 (for 13401) when run as the bench binary, and the
real count under the test binary, passed the tests and was `faster` 27x, correct. The
expected output now comes from the original's first timed run.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not (shutil.which("git") and shutil.which("make") and shutil.which("g++")),
                                reason="git, make and g++ needed")

WRONG_IN_THE_BENCH = r'''#include "stats.h"

#include <climits>
#include <cstddef>
#include <cstring>
#include <unistd.h>

static bool under_bench() {
    char exe[PATH_MAX] = {0};
    // "/proc/" "self/exe" in two pieces: the added-lines check (guard.RUNNER_SNIFF) is a
    // heuristic; this test holds the output check behind it.
    ssize_t k = readlink("/proc/" "self/exe", exe, sizeof exe - 1);
    return k > 6 && std::strcmp(exe + k - 6, "/bench") == 0;
}

long count_close(const std::vector<long>& v, long d) {
    if (under_bench()) return 42;
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
'''


def test_a_wrong_answer_in_a_makefile_bench_is_incorrect(tmp_path: Path):
    from benchmarks.studies.repo_targets import cpp_repo
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = cpp_repo(tmp_path / "user", n=6000)
    t = RepoTarget.from_options(repo, test="make test", bench="make bench", focus="src/stats.cpp:count_close")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 20.0
    r = t.evaluate(patch_of(repo, tmp_path, {"src/stats.cpp": WRONG_IN_THE_BENCH}), [str(tmp_path / "run")])
    assert r["verdict"] == "incorrect" and "differs from the original's" in r["reason"], r
