"""Red-team attacks on program targets (issue 24): each one came out `faster`, hung kopt or
leaked a hidden input before the fix. The task is an LCG iterated N times: the reference's
work (~100 ms) is long enough for wall time to be judged, and a closed form (affine maps
composed by squaring) gives the same answer in O(log N) -- the honest fast rewrite."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.sandboxes.program_runner import valgrind_path

N = 60_000_000
REFERENCE = """\
#include <cstdio>
int main() {
  unsigned long long n, x = 1;
  if (scanf("%llu", &n) != 1) return 1;
  for (unsigned long long i = 0; i < n; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  printf("%llu\\n", x);
}
"""
# fast(n): the same number in O(log n); slow(n): the reference's loop
FUNCS = """\
#include <cstdio>
#include <cstdlib>
#include <cstring>
typedef unsigned long long u64;
static u64 slow(u64 n) {
  u64 x = 1;
  for (u64 i = 0; i < n; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}
static u64 fast(u64 n) {
  u64 a = 6364136223846793005ULL, c = 1442695040888963407ULL, A = 1, C = 0;
  while (n) { if (n & 1) { A = A * a; C = C * a + c; } c = c * a + c; a = a * a; n >>= 1; }
  return A * 1 + C;
}
"""


def candidate(body: str) -> str:
    return FUNCS + textwrap.dedent(body)


HONEST = candidate("""
    int main() { u64 n; if (scanf("%llu", &n) != 1) return 1; printf("%llu\\n", fast(n)); }
""")
# short cut only when valgrind's preload library is named: counted fast, timed slow
VALGRIND_AWARE = candidate("""
    int main() { u64 n; if (scanf("%llu", &n) != 1) return 1;
      const char* p = getenv("LD_PRELOAD");
      printf("%llu\\n", p && strstr(p, "vgpreload") ? fast(n) : slow(n)); }
""")
# remembers the answer of an input it has seen, in a place that survived between runs
MEMO = candidate("""
    #include <sys/ipc.h>
    #include <sys/shm.h>
    static FILE* open_memo(const char* how) {
      const char* where = WHERE;
      char path[512];
      const char* dir = where[0] == '$' ? getenv(where + 1) : where;
      snprintf(path, sizeof path, "%s/kopt-memo", dir ? dir : ".");
      return fopen(path, how);
    }
    int main() { u64 n; if (scanf("%llu", &n) != 1) return 1;
      u64 seen = 0, ans = 0;
    #ifdef SYSV
      int id = shmget(0x6b6f7074, 16, IPC_CREAT | 0600); u64* m = id >= 0 ? (u64*)shmat(id, 0, 0) : 0;
      if (m && m[0] == n + 1) { seen = 1; ans = m[1]; }
      if (!seen) { ans = slow(n); if (m) { m[0] = n + 1; m[1] = ans; } }
    #else
      FILE* f = open_memo("r");
      if (f) { seen = fscanf(f, "%llu", &ans) == 1; fclose(f); }
      if (!seen) { ans = slow(n); f = open_memo("w"); if (f) { fprintf(f, "%llu", ans); fclose(f); } }
    #endif
      printf("%llu\\n", ans); }
""")


@pytest.fixture(scope="module")
def lcg(tmp_path_factory):
    d = tmp_path_factory.mktemp("lcg")
    (d / "tests").mkdir()
    (d / "tests" / "1.in").write_text(f"{N}\n")
    (d / "prog.cpp").write_text(REFERENCE)
    t = ProgramTarget.from_options(d / "prog.cpp", tests=d / "tests")
    t.rounds = 3
    return t


def _evaluate(target: ProgramTarget, tmp_path: Path, code: str, name: str = "cand.cpp") -> dict:
    f = tmp_path / name
    f.write_text(code)
    return target.evaluate(f, [])


def test_honest_closed_form_is_faster(lcg, tmp_path):
    # also shows the closed form prints the reference's answer (else the attacks prove nothing)
    r = _evaluate(lcg, tmp_path, HONEST)
    assert r["correct"] and r["verdict"] == "faster", r


@pytest.mark.skipif(not valgrind_path(), reason="valgrind not installed: no instruction counts to fool")
def test_valgrind_aware_candidate_is_rejected(lcg, tmp_path):
    # before: 'faster' by instructions (wall time said 'same', which let the count stand)
    r = _evaluate(lcg, tmp_path, VALGRIND_AWARE)
    assert r["verdict"] == "rejected" and "behaves differently when measured" in r["reason"], r
    assert not r["correct"] and r["speedup"] is None


@pytest.mark.parametrize("where", ['"."', '"$TMPDIR"', '"$HOME"', '"/dev/shm"', "SYSV"])
def test_memo_between_runs_does_not_survive(lcg, tmp_path, where):
    # before: the checked run left the answer behind and the counted and timed runs printed it
    code = MEMO.replace("WHERE", where if where != "SYSV" else '"."')
    if where == "SYSV":
        code = "#define SYSV 1\n" + code
    r = _evaluate(lcg, tmp_path, code)
    assert r["verdict"] not in ("faster",), r


@pytest.mark.skipif(not valgrind_path(), reason="valgrind not installed: no counted runs")
def test_counted_runs_are_checked(lcg, tmp_path):
    # before: returning at once under valgrind (no output) was 'faster' by thousands of times,
    # since only the first, unmeasured run's output was compared
    code = candidate("""
        int main() { u64 n; if (scanf("%llu", &n) != 1) return 1;
          const char* p = getenv("LD_PRELOAD"); if (p && strstr(p, "vgpreload")) return 0;
          printf("%llu\\n", slow(n)); }
    """)
    r = _evaluate(lcg, tmp_path, code)
    assert r["verdict"] == "incorrect" and not r["correct"] and r["speedup"] is None, r
    assert r["reason"] == "wrong on hidden test 1 when its instructions were counted (1 line differs)", r


def test_hidden_input_and_output_stay_out_of_the_reason(lcg, tmp_path):
    echo = candidate("""
        int main() { u64 n; if (scanf("%llu", &n) != 1) return 1;
          fprintf(stderr, "INPUT WAS %llu\\n", n); printf("%llu\\n", n); RET }
    """)
    expected = lcg.inputs[0].ref_output.decode().strip()
    for ret, verdict, words in (("return 0;", "incorrect", "wrong on hidden test 1 (1 line differs)"),
                                ("return 3;", "runtime_error", "crashed on hidden test 1")):
        r = _evaluate(lcg, tmp_path, echo.replace("RET", ret))
        assert r["verdict"] == verdict and r["reason"] == words, r
        assert str(N) not in r["reason"] and expected not in r["reason"]
        assert str(N) in str(r["checks"]["detail"])  # the user still sees everything


INCLUDE_PROBE = """
import sys
from pathlib import Path
from kopt.sandboxes.program_runner import source_flags_for
folder = Path(sys.argv[1])
src = '#if 0\\n#include "/proc/self/fd/0"\\n#include "fifo.h"\\n#include "../up.h"\\n#endif\\nint main() {}\\n'
print(len(source_flags_for(folder / "prog.cpp", "cpp", src)))
"""


def test_includes_named_by_a_candidate_never_block_kopt(tmp_path):
    # before: kopt read every quoted include on the host: stdin (a pipe nobody writes) or a FIFO
    # beside the program blocked it for good, even inside #if 0
    import os

    os.mkfifo(tmp_path / "fifo.h")
    with subprocess.Popen([sys.executable, "-c", INCLUDE_PROBE, str(tmp_path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as p:
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("kopt blocked reading a header the candidate named")
    assert p.returncode == 0 and int(out) > 0


def test_include_of_stdin_compiles_or_fails_in_the_sandbox(lcg, tmp_path):
    code = '#if 0\n#include "/proc/self/fd/0"\n#endif\n' + HONEST
    r = _evaluate(lcg, tmp_path, code)
    assert r["verdict"] == "faster", r
    r = _evaluate(lcg, tmp_path, '#include "/proc/self/fd/0"\n' + HONEST, "stdin.cpp")
    assert r["compiled"] in (True, False) and r["verdict"] in ("faster", "compile_error"), r


@pytest.mark.skipif(not valgrind_path(), reason="valgrind not installed: no counted runs")
def test_work_left_to_a_surviving_child_is_not_counted_as_free(lcg, tmp_path):
    # the reference's loop runs in a child that hands over the answer and lingers: it is killed
    # after the program exits, before valgrind writes its count. Before: 'faster' by ~10^4x
    code = candidate("""
        #include <unistd.h>
        int main() { u64 n; if (scanf("%llu", &n) != 1) return 1;
          int fd[2]; if (pipe(fd)) return 1;
          if (fork() == 0) { u64 x = slow(n); if (write(fd[1], &x, sizeof x) < 0) return 1; sleep(30); return 0; }
          u64 x = 0; if (read(fd[0], &x, sizeof x) != sizeof x) return 1;
          printf("%llu\\n", x); return 0; }
    """)
    r = _evaluate(lcg, tmp_path, code)
    assert r["verdict"] == "rejected" and "left processes running" in r["reason"], r
