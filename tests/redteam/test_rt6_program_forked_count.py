"""Red team 6: a program candidate that does its work in a forked child and SIGKILLs it before
valgrind prints the child's count showed 26 thousand instructions for the reference's 108
million. The wall time disagreed (0.83x), so the verdict became `same` -- but the speedup
and its CI stayed the forged count, [1378, 1378], and the search's `verified_faster` (which
reads the CI) took the truly slower candidate for a verified 1378x. When the wall time also
read faster (load), the metrics agreed and the forged count stood. Now valgrind runs verbose
(-v): every process it follows, a forked child too, writes lines as it starts; one that never
printed its count was killed before it, and the candidate is `rejected` (no magnitude rule: an
honest closed form keeps its count).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kopt.agent.search.estimate import verified_faster
from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.sandboxes.program_runner import valgrind_path

REFERENCE = r'''
#include <cstdio>
int main() { long long n; if (scanf("%lld", &n) != 1) return 1; unsigned long long s = 0;
  for (long long i = 0; i < n; i++) s = s * 1000003ULL + (unsigned long long)(i * i) % 97ULL;
  printf("%llu\n", s); return 0; }
'''

FORKED = r'''
#include <cstdio>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
int main() { long long n; if (scanf("%lld", &n) != 1) return 1; int fd[2]; if (pipe(fd)) return 2;
  pid_t pid = fork();
  if (pid == 0) { unsigned long long s = 0;
    for (long long i = 0; i < n; i++) s = s * 1000003ULL + (unsigned long long)(i * i) % 97ULL;
    write(fd[1], &s, sizeof s); pause(); _exit(0); }
  unsigned long long s = 0; read(fd[0], &s, sizeof s); kill(pid, SIGKILL); waitpid(pid, 0, 0);
  printf("%llu\n", s); return 0; }
'''

# the same work in a child that exits on its own: valgrind prints its count, and it is added
WAITED = FORKED.replace("pause(); _exit(0); }", "_exit(0); }").replace("kill(pid, SIGKILL); ", "")


def _target(tmp_path: Path) -> ProgramTarget:
    (tmp_path / "ref.cpp").write_text(REFERENCE)
    tests = tmp_path / "tests"
    tests.mkdir()
    for k, n in enumerate((3_000_000, 2_000_000, 1_000_000), 1):
        (tests / f"{k}.in").write_text(f"{n}\n")
    return ProgramTarget.from_options(tmp_path / "ref.cpp", tests=tests)


@pytest.mark.skipif(not shutil.which("g++") or not valgrind_path(), reason="needs g++ and valgrind")
def test_forked_uncounted_work_is_rejected(tmp_path: Path):
    target = _target(tmp_path)
    (tmp_path / "forked.cpp").write_text(FORKED)
    res = target.evaluate(tmp_path / "forked.cpp", [])
    assert res["verdict"] == "rejected" and "killed before valgrind" in res["reason"], res
    assert not verified_faster([res], noise_floor=10.0, gap=0.3), res


@pytest.mark.skipif(not shutil.which("g++") or not valgrind_path(), reason="needs g++ and valgrind")
def test_a_child_that_exits_is_counted(tmp_path: Path):
    target = _target(tmp_path)
    (tmp_path / "waited.cpp").write_text(WAITED)
    res = target.evaluate(tmp_path / "waited.cpp", [])
    assert res["correct"] and res["verdict"] in ("same", "slower"), res
    assert res["checks"]["new_instructions"] > 0.5 * res["checks"]["ref_instructions"], res["checks"]
