"""Red team 7: round 6's forked-count attack on short runs. A child does all the work, prints,
tells its parent over a pipe and waits; the parent SIGKILLs it, so valgrind never printed the
child's count. With the reference's own work under 20 ms (not measurable on the wall clock)
the count decided alone: `faster` 99.7x, CI [99.7, 99.7], wall 1.45x. valgrind -v (5f13497)
now shows the child, and a child that never printed its count is rejected."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.sandboxes.program_runner import valgrind_path

REFERENCE = r'''
#include <stdio.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1; unsigned long s = 0;
  for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
  printf("%lu\n", s); return 0; }
'''

KILLED_CHILD = r'''
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1; int fds[2]; if (pipe(fds)) return 2;
  pid_t p = fork();
  if (p == 0) { unsigned long s = 0;
    for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
    printf("%lu\n", s); fflush(stdout); if (write(fds[1], "x", 1) != 1) _exit(3); for (;;) pause(); }
  char c; if (read(fds[0], &c, 1) != 1) return 4; kill(p, SIGKILL); waitpid(p, 0, 0); return 0; }
'''


@pytest.mark.skipif(not shutil.which("gcc") or not valgrind_path(), reason="needs gcc and valgrind")
def test_a_killed_child_on_short_runs_is_not_faster(tmp_path: Path):
    (tmp_path / "ref.c").write_text(REFERENCE)
    tests = tmp_path / "tests"
    tests.mkdir()
    for k in range(3):
        (tests / f"{k}.in").write_text(f"{300_000 + 1000 * k}\n")
    target = ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)
    (tmp_path / "killed.c").write_text(KILLED_CHILD)
    res = target.evaluate(tmp_path / "killed.c", [])
    assert res["verdict"] != "faster", res
