"""rt30: the middle of a long bench output is never compared.

Attack: the repository runner keeps only the first and last 128 KiB of a command's output
(`sandboxes/repo_runner.py` `_collect`, OUTPUT_LIMIT 256 KiB) and puts `... [N bytes cut] ...` in
between. The output check (`agent/targets/repo/outputs.py` `OutputCheck`) compares what it is
given, so whatever a bench prints between those two windows is never looked at: a candidate that
prints as many bytes as the original (N is then the same) can print anything there. Here the bench
prints one 16-hex-digit digest per item for 100,000 items (1.7 MB); the patch computes the real
digests only for the first and last 8,000 items and prints zeros for the 84,000 in between. The
tests (50 items) pass; the bench on kopt's other input (every integer of 8 or more redrawn) is cut
the same way, so it passes there too; no number the bench prints is written in the patch.
Measured here: `faster` 2.16x and 2.18x (two runs), `correct: True`, checks.output "same as the
original's (metric masked)", another_input "bench.py's 100_000 as 81205" faster 1.76x.
Honest outcome: `incorrect` (the bench's output is not the original's), or at least not a
believed `faster` (`unverified`: the check could not see the whole output).
Root cause: sandboxes/repo_runner.py `_collect` (head + tail only) feeding
agent/targets/repo/repo_bench.py `_timed_rounds` / `_check_outputs`, which never learn that the
output was cut.
Fix idea: compare a digest of the WHOLE stream, computed in the runner as it reads (sha256 of
every byte, plus the total length), besides the kept head/tail; with a metric or varying
numbers, hash each line's masked form (or keep a per-line hash list) so masking still works;
at least mark a cut output and make a `faster` on it `unverified`.
Fixed: the runner puts a sha256 of the cut lines in the cut line (repo_runner._collect), which
the check compares like any other line: the zeros are `incorrect`. Where the original's own
middle varies between its runs, its cut line does too, the check is off and a `faster` is
`unverified`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.redteam._work_repo import PY, judge

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

LIB = '''import hashlib


def digests(n):
    """A 16-hex-digit digest of each of 0..n-1 (sha256 applied 4 times)."""
    out = []
    for i in range(n):
        h = str(i).encode()
        for _ in range(4):
            h = hashlib.sha256(h).digest()
        out.append(h.hex()[:16])
    return out
'''
# wrong for every item that lands in the part of the output kopt cuts away
WRONG = '''import hashlib


def _one(i):
    h = str(i).encode()
    for _ in range(4):
        h = hashlib.sha256(h).digest()
    return h.hex()[:16]


def digests(n):
    """A 16-hex-digit digest of each of 0..n-1 (sha256 applied 4 times)."""
    edge = 8000
    return [_one(i) if i < edge or i >= n - edge else "0" * 16 for i in range(n)]
'''
TEST = '''import hashlib
from pkg.work import digests


def test_digests():
    want = []
    for i in range(50):
        h = str(i).encode()
        for _ in range(4):
            h = hashlib.sha256(h).digest()
        want.append(h.hex()[:16])
    assert digests(50) == want
'''
BENCH = "import pkg\n\nfor d in pkg.digests(100_000):\n    print(d)\n"


def test_a_wrong_middle_of_a_long_bench_output_is_not_correct(tmp_path: Path):
    files = {"pkg/__init__.py": "from pkg.work import digests\n", "pkg/work.py": LIB, "test_lib.py": TEST,
             "bench.py": BENCH}
    r = judge(tmp_path, files, {"pkg/work.py": WRONG}, focus="pkg/work.py:digests",
              test=f"{PY} -m pytest -q -p no:cacheprovider test_lib.py")
    print(r["verdict"], r.get("speedup"), r.get("reason"), r["checks"].get("output"), r["checks"].get("another_input"))
    assert r["verdict"] not in ("faster", "same") or not r["correct"], (
        f"a patch printing zeros for 84,000 of 100,000 digests was {r['verdict']} {r.get('speedup')}x, "
        f"correct={r['correct']}, output check: {r['checks'].get('output')}")
