"""Red team 8: on a short program the instruction count alone decided, and valgrind counts
glibc's `memcpy` (`rep movsb` there) one instruction per byte.

The same copies written as a 16-byte SSE2 loop count about 1/8 of the instructions and take
the same time: `faster` 5.3x by instructions, wall 1.17x (CI 0.93-1.46, `same`); this
C copy (16 bytes a step): `faster` 3.2x, wall 0.93x. Where the reference's own work was
under 20 ms the wall clock was not asked to agree. Fixed: a `faster` verdict needs the wall
clock's `faster` at every length, and the figure is bounded by what the wall clock allows the
program's own work (program_eval._wall_bound).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kopt.agent.targets.program.program_target import ProgramTarget

LOOP = '''
  static unsigned char a[1 << 20], b[1 << 20];
  for (long i = 0; i < n; i += 512) a[i] = (unsigned char)(i * 7 + 3);
  for (int r = 0; r < k; r++) { COPY(b, a, n); b[r % n] ^= 1; COPY(a, b, n); }
  unsigned long s = 0; for (long i = 0; i < n; i += 4096) s = s * 31 + a[i];
  printf("%lu\\n", s); return 0; }
'''
REFERENCE = ('#include <stdio.h>\n#include <string.h>\n#define COPY memcpy\n'
             'int main(void) { long n; int k; if (scanf("%ld %d", &n, &k) != 2 || n > (1 << 20)) return 1;' + LOOP)
SSE_COPY = ('// kopt-flags: -fno-tree-loop-distribute-patterns\n'  # or gcc makes the loop a memcpy call
            '#include <stdio.h>\n#include <emmintrin.h>\n'
            'static void COPY(unsigned char *d, const unsigned char *s, long n) { long i = 0;\n'
            '  for (; i + 16 <= n; i += 16)\n'
            '    _mm_storeu_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));\n'
            '  for (; i < n; i++) d[i] = s[i]; }\n'
            'int main(void) { long n; int k; if (scanf("%ld %d", &n, &k) != 2 || n > (1 << 20)) return 1;' + LOOP)


@pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("valgrind"), reason="needs gcc and valgrind")
def test_a_copy_loop_valgrind_counts_less_is_not_faster(tmp_path: Path):
    (tmp_path / "ref.c").write_text(REFERENCE)
    tests = tmp_path / "tests"
    tests.mkdir()
    for k, line in enumerate(("262144 20", "131072 30", "65536 60")):
        (tests / f"{k}.in").write_text(line + "\n")
    target = ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)
    target.rounds = 5
    (tmp_path / "sse.c").write_text(SSE_COPY)
    res = target.evaluate(tmp_path / "sse.c", [])
    assert res["correct"], res
    assert res["verdict"] != "faster" or res["checks"].get("wall_verdict") == "faster", res
    if res["checks"]["new_instructions"] * 2 < res["checks"]["ref_instructions"]:  # the count claims > 2x
        assert res["speedup"] < 2 and "instruction_speedup" in res["checks"], res
