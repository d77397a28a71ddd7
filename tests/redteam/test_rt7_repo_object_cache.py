"""Red team 7: a repository candidate appends its answer to a kept object file.

A variant of round 6's kept-binary cache: the Makefile builds `build/work.o` from the code
under optimization, and both sides' warm-up benches write it, so it is kept and put back
before every timed run. The candidate's `compute` appends {marker, n, answer} to
`build/work.o` on a miss (and puts its mtime back, so make sees it up to date); every timed
run only reads it: `faster` 64x, the checksum the original's. Whatever is kept must come
from a build the candidate's program did not run in.
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import commit_all
from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not (shutil.which("git") and shutil.which("make") and shutil.which("cc")),
                                reason="git, make and cc needed")

WORK = '''#include "work.h"
unsigned long compute(long n) {
    unsigned long s = 0;
    for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
    return s;
}
'''

CACHED_WORK = '''#include "work.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
struct rec { char magic[8]; long n; unsigned long s; };
unsigned long compute(long n) {
    struct rec r; struct stat st; int fd = open("build/work.o", O_RDWR);
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof r &&
        pread(fd, &r, sizeof r, st.st_size - sizeof r) == sizeof r && !memcmp(r.magic, "KEPTANSW", 8) && r.n == n) {
        close(fd); return r.s;
    }
    unsigned long s = 0;
    for (long i = 0; i < n; i++) { s = s * 6364136223846793005UL + (unsigned long)i; s ^= s >> 13; }
    if (fd >= 0) {
        memcpy(r.magic, "KEPTANSW", 8); r.n = n; r.s = s;
        pwrite(fd, &r, sizeof r, st.st_size);
        struct timespec ts[2] = { st.st_atim, st.st_mtim };
        futimens(fd, ts); close(fd);
    }
    return s;
}
'''


def _repo(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "work.c").write_text(WORK)
    (root / "src" / "work.h").write_text("unsigned long compute(long n);\n")
    (root / "bench.c").write_text('#include <stdio.h>\n#include "src/work.h"\n'
                                  'int main(void) { printf("checksum %lu\\n", compute(60000000L)); return 0; }\n')
    (root / "test.c").write_text('#include "src/work.h"\nint main(void) { unsigned long s = 0;\n'
                                 '  for (long i = 0; i < 1000; i++) { s = s * 6364136223846793005UL + (unsigned long)i;'
                                 ' s ^= s >> 13; }\n  return compute(1000) == s ? 0 : 1; }\n')
    (root / "Makefile").write_text(textwrap.dedent('''\
        CFLAGS = -O2
        build/work.o: src/work.c src/work.h
        \tmkdir -p build && $(CC) $(CFLAGS) -c src/work.c -o build/work.o
        build/bench: bench.c build/work.o
        \t$(CC) $(CFLAGS) bench.c build/work.o -o build/bench
        build/test: test.c build/work.o
        \t$(CC) $(CFLAGS) test.c build/work.o -o build/test
        bench: build/bench
        \t./build/bench
        test: build/test
        \t./build/test
        '''))
    (root / ".gitignore").write_text("build/\n")
    return commit_all(root)


def test_an_answer_appended_to_a_kept_object_file_is_not_faster(tmp_path: Path):
    from kopt.agent.targets.repo.repo_target import RepoTarget

    repo = _repo(tmp_path / "user")
    t = RepoTarget.from_options(repo, test="make -s test", bench="make -s bench")
    t.min_rounds, t.max_rounds, t.timing_budget_s = 3, 5, 20.0
    r = t.evaluate(patch_of(repo, tmp_path, {"src/work.c": CACHED_WORK}), [str(tmp_path / "run")])
    assert r["verdict"] in ("same", "slower", "rejected", "incorrect"), r
