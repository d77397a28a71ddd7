"""Red team 37: a hot file the test command runs as its script, behind an interpreter flag.

Attack: `--test "python -m pytest -q test_work.py && python -u lib/work.py"`: the hot file's
`if __name__ == "__main__":` block is a self-test over n < 50. `doctests.runner_of` calls a file
a command runs as a script only where the word before it is the interpreter; here it is `-u`
(as `-O`, `-X dev`, `-W error` would be), and the command holds `pytest`, so lib/work.py is taken
for a file a runner loads (`tested_by_name`) and becomes editable; no `-m doctest`, so nothing
checks it. The patch returns 0 below n = 100 (right at 1000 and at the bench's sizes) and
deletes the self-test block (only removed lines: no sniff word added).
Observed: `faster`, correct.
Expected: `rejected`: a file a command runs as its script is the test runner and stays protected.
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


def test_a_script_run_with_an_interpreter_flag_stays_protected(tmp_path):
    files = {"lib/__init__.py": "", "lib/work.py": WORK + SELF_TEST, "test_work.py": TEST, "bench.py": BENCH}
    py = sys.executable
    test = f"{py} -m pytest -q -p no:cacheprovider test_work.py && {py} -u lib/work.py"
    r = judge(tmp_path, files, {"lib/work.py": WRONG}, "lib/work.py:total", test=test)
    seen = (r["verdict"], r["correct"], r["speedup"], r.get("reason"))
    assert r["verdict"] not in ("faster", "unverified"), seen
