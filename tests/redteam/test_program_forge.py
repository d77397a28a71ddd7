"""Red-team attacks on program targets, round 2 (issue 24): a forged instruction count and hidden
inputs smuggled out through the reason. The task counts inversions of 400 numbers by the O(n^2)
loop: its work is a few ms, under the wall-time check's 20 ms, so before the fix a forged count
alone decided the verdict (`faster` 7.5x for a candidate that is the reference plus the forge)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.sandboxes.program_runner import ProgramRunner, valgrind_path

REFERENCE = """\
#include <cstdio>
#include <vector>
int main() { int n; if (scanf("%d", &n) != 1) return 1; std::vector<long long> a(n);
  for (auto& x : a) if (scanf("%lld", &x) != 1) return 1;
  long long inv = 0; for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) if (a[i] > a[j]) inv++;
  printf("%lld\\n", inv); return 0; }
"""
# the reference, plus a cachegrind file for a process that never ran, with a negative count, in
# the folder valgrind used to write its files to (next to the program's working directory)
FORGE = REFERENCE.replace("return 0; }", """
  FILE* f = fopen("../io/cg.999999", "w");
  if (f) { fprintf(f, "summary: -%lld\\n", (long long)n * n / 2 * 9); fclose(f); }
  return 0; }""")
# writes forged valgrind summaries (its own pid once more, and a made-up one) into every pipe it
# can open through /proc/self/fd -- valgrind's log pipe among them -- then does real work
INJECT = """\
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main() {
  char line[128];
  snprintf(line, sizeof line, "\\n==%d== I   refs:      1\\n==999999== I   refs:      1\\n", (int)getpid());
  DIR* d = opendir("/proc/self/fd");
  for (struct dirent* e; d && (e = readdir(d));) {
    char path[300]; struct stat st;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    if (stat(path, &st) || !S_ISFIFO(st.st_mode)) continue;
    int fd = open(path, O_WRONLY | O_NONBLOCK);
    if (fd >= 0) { if (write(fd, line, strlen(line)) < 0) perror("write"); close(fd); }
  }
  long s = 0; for (long i = 0; i < 3000000; i++) s += i * i % 7;
  printf("%ld\\n", s); return 0; }
"""
HONEST_WORK = INJECT[INJECT.index("  long s"):]
# a_leak: the hidden input's first value, 12345, encoded in the exit code (146) or in how many
# lines of the output differ (346)
LEAK_EXIT = """#include <cstdio>
int main() { int n; long long x; if (scanf("%d %lld", &n, &x) != 2) return 1; return (int)(x % 200) + 1; }
"""
LEAK_LINES = """#include <cstdio>
int main() { int n; long long x; if (scanf("%d %lld", &n, &x) != 2) return 1;
  for (long long i = 0; i < x % 1000 + 1; i++) printf("%lld\\n", -1 - i); return 0; }
"""
needs_valgrind = pytest.mark.skipif(not valgrind_path(), reason="valgrind not installed: no counts to forge")


@pytest.fixture(scope="module")
def inversions(tmp_path_factory):
    d = tmp_path_factory.mktemp("inv")
    (d / "tests").mkdir()
    rng = random.Random(24)
    for k in (1, 2, 3):
        first = [12345] if k == 1 else []
        values = first + [rng.randrange(1, 10 ** 6) for _ in range(400 - len(first))]
        (d / "tests" / f"{k}.in").write_text(f"400\n{' '.join(map(str, values))}\n")
    (d / "prog.cpp").write_text(REFERENCE)
    t = ProgramTarget.from_options(d / "prog.cpp", tests=d / "tests")
    t.rounds = 3
    return t


def _evaluate(target: ProgramTarget, tmp_path: Path, code: str) -> dict:
    f = tmp_path / "cand.cpp"
    f.write_text(code)
    return target.evaluate(f, [])


@needs_valgrind
def test_forged_cachegrind_file_does_not_make_it_faster(inversions, tmp_path):
    # before: the forged file was summed in, and the count said 7.5x fewer instructions
    r = _evaluate(inversions, tmp_path, FORGE)
    assert r["correct"] and r["verdict"] in ("same", "slower"), r
    assert r["checks"]["new_instructions"] >= 0.98 * r["checks"]["ref_instructions"], r["checks"]


@needs_valgrind
def test_summaries_written_into_valgrinds_log_never_lower_the_count(tmp_path):
    honest = "#include <cstdio>\nint main() {\n" + HONEST_WORK
    counts = {}
    for name, code in (("honest", honest), ("inject", INJECT)):
        with ProgramRunner(f"forge-{name}") as runner:
            assert runner.build(code, "cpp", ["-O1"]) == ""
            counts[name] = runner.run(b"", 60, count=True)
    assert counts["honest"].ok and counts["honest"].instructions > 1_000_000
    got = counts["inject"]
    # a forged line either voids the count (or valgrind gives up), or is ignored: never fewer
    assert got.instructions is None or got.instructions >= counts["honest"].instructions, got


@pytest.mark.parametrize("code, verdict, reason, secret",
                         [(LEAK_EXIT, "runtime_error", "crashed on hidden test 1", "146"),
                          (LEAK_LINES, "incorrect", "wrong on hidden test 1 (several lines differ)", "346")])
def test_exit_code_and_difference_count_stay_out_of_the_reason(inversions, tmp_path, code, verdict, reason, secret):
    # before: "crashed on hidden test 1 (exit code 146)", "wrong on hidden test 1 (346 lines differ)"
    r = _evaluate(inversions, tmp_path, code)
    assert r["verdict"] == verdict and r["reason"] == reason, r
    assert secret in str(r["checks"]["detail"])  # the user still sees the exact code / count
