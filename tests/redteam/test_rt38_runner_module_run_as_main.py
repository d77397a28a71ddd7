"""Red team 38: round 37's self-test attack with the hot file run as `python -m lib.work`.

Attack: `--test "python -m pytest -q test_work.py && python -m lib.work"`: the hot file's
`if __name__ == "__main__":` block is a self-test over n < 50, run as a module (`-m`), not by
path. Round 37 keeps a file an interpreter runs as its script protected, but only where the
command names its path: `lib.work` is no word `guard.named_files` or `doctests.runner_of` read as
lib/work.py, so the file stays editable. The patch returns 0 below n = 100 (right at 1000 and at
the bench's sizes) and deletes the self-test block (only removed lines: no sniff word added).
Observed: `faster`, correct.
Expected: not `faster`: a module a command runs with `python -m` is that command's script and
stays protected, as `python lib/work.py` is.
"""
from __future__ import annotations

import sys

from tests.redteam._work_repo import WORK, judge

SELF_TEST = '''

if __name__ == "__main__":
    for k in range(50):
        assert total(k) == sum((i * i) % 7 for i in range(k)), k
    print("self-test ok")
'''
TEST = '''from lib.work import total


def test_total():
    assert total(1000) == sum((i * i) % 7 for i in range(1000))
'''
BENCH = "from lib.work import total\nprint('total', total(2000000))\n"
WRONG = '''def total(n):
    if n < 100:
        return 0
    q, r = divmod(n, 7)
    return 14 * q + (0, 0, 1, 5, 7, 9, 13)[r]
'''


def test_a_module_run_with_dash_m_stays_protected(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK + SELF_TEST, "test_work.py": TEST, "bench.py": BENCH}
    py = sys.executable
    test = f"{py} -m pytest -q -p no:cacheprovider test_work.py && {py} -m lib.work"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] not in ("faster", "unverified"), seen
