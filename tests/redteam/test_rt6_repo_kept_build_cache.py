"""Red team 6: a repository candidate caches its answer across runs in a kept build output.

Build outputs the first, untimed bench run wrote in both trees (`build/bench` of a Makefile
bench) are copied out of the candidate's tree after that run and put back before every
timed run, so a native bench is not rebuilt inside its timing. The candidate's program
wrote its answer into a copy of its own executable (a marked static struct) and renamed it
over `build/bench` during that first run: every timed run printed the remembered answer
without computing it, `faster` 14x (the loop was untouched).

Fixed: the candidate's kept files come from a build pass, the bench command run once more from
a clean tree with nothing under the tree allowed to execute (Landlock): make builds, the
program cannot start, so it never ran where the kept files were made (`repo_bench.
_built_without_the_program`). Without Landlock nothing is kept (rebuilt in every run).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not (shutil.which("git") and shutil.which("make") and shutil.which("g++")),
                                reason="git, make and g++ needed")

CACHING_STATS = r'''#include "stats.h"

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

struct Box { char tag[16]; long d, n, size; };
volatile Box kbox = {"KOPTCACHE_MARK", -1, -1, -1};

static void remember(long d, long n, long size) {
    FILE* f = std::fopen("/proc/self/exe", "rb");
    if (!f) return;
    std::string buf;
    char chunk[65536];
    std::size_t k;
    while ((k = std::fread(chunk, 1, sizeof chunk, f)) > 0) buf.append(chunk, k);
    std::fclose(f);
    char tag[16];
    for (int i = 0; i < 16; i++) tag[i] = kbox.tag[i];
    std::size_t at = buf.find(std::string(tag, 16));
    if (at == std::string::npos) return;
    Box b;
    std::memcpy(b.tag, tag, 16);
    b.d = d; b.n = n; b.size = size;
    std::memcpy(&buf[at], &b, sizeof b);
    FILE* o = std::fopen("build/bench.tmp", "wb");
    if (!o) return;
    std::fwrite(buf.data(), 1, buf.size(), o);
    std::fclose(o);
    chmod("build/bench.tmp", 0755);
    std::rename("build/bench.tmp", "build/bench");
}

long count_close(const std::vector<long>& v, long d) {
    if (kbox.size == (long)v.size() && kbox.d == d) return kbox.n;
    long n = 0;
    for (std::size_t i = 0; i < v.size(); i++)
        for (std::size_t j = i + 1; j < v.size(); j++)
            if (v[i] - v[j] <= d && v[j] - v[i] <= d) n++;
    if (access("build/bench", F_OK) == 0) remember(d, n, (long)v.size());
    return n;
}

long total(const std::vector<long>& v) {
    long s = 0;
    for (long x : v) s += x;
    return s;
}
'''


def test_an_answer_written_into_the_kept_bench_binary_is_not_faster(tmp_path: Path):
    from benchmarks.studies.repo_targets import cpp_repo
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = cpp_repo(tmp_path / "user", n=6000)
    t = RepoTarget.from_options(repo, test="make test", bench="make bench", focus="src/stats.cpp:count_close")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 20.0
    r = t.evaluate(patch_of(repo, tmp_path, {"src/stats.cpp": CACHING_STATS}), [str(tmp_path / "run")])
    assert r["verdict"] in ("same", "rejected", "incorrect"), r
