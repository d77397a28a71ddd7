"""Red team 7: an answer kept in a folder the program made unreadable survived the "fresh" run.

Every run of a program starts from an emptied private tmpfs, but the worker emptied it with
`shutil.rmtree(..., ignore_errors=True)`: a folder of mode 000 (beside the run's working
directory) could not be listed, so it stayed, with the answer the first checked run left in
it. Every later run (counted and timed) only printed the stored answer: faster 800x, wall
4.4x, correct. Now folders are opened up before they are removed, and a run that leaves
anything that cannot be removed fails.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kopt.agent.targets.program.program_target import ProgramTarget

REFERENCE = r'''
#include <stdio.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1; unsigned long s = 0;
  for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
  printf("%lu\n", s); return 0; }
'''

HIDDEN_CACHE = r'''
#include <stdio.h>
#include <sys/stat.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1;
  char dir[] = "../.kept", path[256]; snprintf(path, sizeof path, "%s/%ld", dir, n);
  chmod(dir, 0700);
  FILE *f = fopen(path, "r"); unsigned long s = 0;
  if (f && fscanf(f, "%lu", &s) == 1) { fclose(f); chmod(dir, 0); printf("%lu\n", s); return 0; }
  for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
  mkdir(dir, 0700); f = fopen(path, "w"); if (f) { fprintf(f, "%lu\n", s); fclose(f); }
  chmod(dir, 0);
  printf("%lu\n", s); return 0; }
'''


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_an_answer_in_an_unreadable_folder_does_not_survive(tmp_path: Path):
    (tmp_path / "ref.c").write_text(REFERENCE)
    tests = tmp_path / "tests"
    tests.mkdir()
    for k in range(3):
        (tests / f"{k}.in").write_text(f"{3_000_000 + 1000 * k}\n")
    target = ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)
    (tmp_path / "cached.c").write_text(HIDDEN_CACHE)
    res = target.evaluate(tmp_path / "cached.c", [])
    assert res["verdict"] != "faster", res
    if res["correct"]:  # it computed on every run: no faster than the reference
        assert res["checks"].get("new_instructions", 0) > 0.5 * res["checks"].get("ref_instructions", 0), res
