"""rt29: a long line in a repository bench's output shifts which numbers the output check masks.

Attack: `OutputCheck` (agent/targets/repo/outputs.py) numbers the original's printed numbers over
the WHOLE output (`self.numbers = NUMBER.findall(self.expected)`, `learn`'s `varying` indices),
but `_masked` counts, and masks, only the numbers of lines short enough to match
(`MAX_MATCHED_LINE`, 4096 characters; a longer line stays as it is and advances no index). A
bench that prints one long line holding numbers before its other lines -- its input echoed, a
config dump, a long array -- has every later mask shifted by that line's count of numbers:
- the number the original's runs vary in (its own printed timing) is no longer masked, so an
  honest, faster patch is `incorrect` ("line 2 is 'elapsed: 0.012 ms' where the original
  printed 'elapsed: 153.215 ms'"); the same bench with a 400-character input line is `faster`;
- the mask lands on a number that did not vary, e.g. the printed answer. Where the number that
  varied is one the candidate's timed runs print as the original's first timed run did (one that
  differs only in the original's warm-up, laid out alike: `learn(alike_only=True)` learns it), a
  patch printing a wrong answer passes the check (`differs` is None, `describe()` "same as the
  original's (metric and the 1 number(s) its own runs vary in masked)").
Measured here: the honest patch (a closed form of the bench's loop) is `incorrect` end to end
(RepoTarget.evaluate, ~5 s); the control with a short input line is `faster`. The wrong answer:
the check, fed the original's runs in `_timed_rounds`' order (first timed run, the warm-up with
alike_only, a second timed run), passes `result: 42.0` where the original printed 31337.25.
Honest outcome: an honest patch is `faster`; a patch printing another answer is `incorrect`.
Root cause: agent/targets/repo/outputs.py `OutputCheck.__init__`/`learn` (indices over every
line) against `OutputCheck._masked` (indices over short lines only).
Fix idea: number the printed values the same way in both places -- take `self.numbers` and
`learn`'s lists from the short lines only (or key `varying` by (line, position) rather than a
flat index), and test a layout with a long line first.
Fixed: the numbers are keyed by (line, place in the line) over the short lines only
(outputs._numbers, _mask_line), where `_masked` finds them. A flat count over the short lines
alone was not enough: on the bench's other input (its integers changed) the echoed line was
short, and every mask after it moved again (the honest patch `incorrect` there).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kopt.agent.targets.repo.outputs import OutputCheck

LIB = '''
def total(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
'''
FAST = '''
def total(n):
    q, r = divmod(n, 7)
    return q * 14 + sum(i * i % 7 for i in range(r))
'''
BENCH = '''
import time
import lib
data = "ACGT" * 1100  # its input, echoed: one line of 4,400+ characters
t0 = time.perf_counter()
res = lib.total(3_000_000)
print(f"input: {data} length={len(data)}")
print(f"elapsed: {(time.perf_counter() - t0) * 1000:.3f} ms")
print(f"result: {res}")
'''


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def test_honest_patch_with_a_long_output_line_is_not_incorrect() -> None:
    root = Path(tempfile.mkdtemp(prefix="kopt-rt29-repo-", dir="/tmp"))
    try:
        _evaluate_honest(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        Path(str(root) + ".patch").unlink(missing_ok=True)


def _evaluate_honest(root: Path) -> None:
    from kopt.agent.targets.repo.repo_target import RepoTarget

    (root / "lib.py").write_text(LIB)
    (root / "bench.py").write_text(BENCH)
    (root / "test_lib.py").write_text("import lib\nassert lib.total(100) == sum(i*i%7 for i in range(100))\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    commit = _git(root, "rev-parse", "HEAD").strip()
    py = sys.executable
    t = RepoTarget(root, commit, f"{py} test_lib.py", f"{py} bench.py", min_rounds=3, max_rounds=6,
                   timing_budget_s=20)
    t.check_original()
    (root / "lib.py").write_text(FAST)
    patch = _git(root, "diff")
    _git(root, "checkout", "lib.py")
    patch_file = root.parent / (root.name + ".patch")
    patch_file.write_text(patch)
    res = t.evaluate(patch_file, [])
    assert res["verdict"] in ("faster", "same"), f"honest patch: {res['verdict']}: {res.get('reason')}"


def test_a_wrong_answer_is_not_masked_by_a_shifted_index() -> None:
    data = "ACGT" * 1100
    metric = r"time: ([0-9.]+)"

    def out(misses: int, result: float) -> str:
        return f"input: {data} length=4400\ncache misses: {misses}\nresult: {result}\ntime: 1.0\n"

    # _timed_rounds' order: the first timed run of the original is the yardstick, then its
    # warm-up (laid out alike: learnt; it missed the cache once), then its second timed run
    expect = OutputCheck(metric, out(0, 31337.25))
    assert expect.learn(out(1, 31337.25), alike_only=True)
    expect.learn(out(0, 31337.25))
    assert expect.differs(out(0, 31337.25)) is None  # the original's own output passes
    wrong = expect.differs(out(0, 42.0))
    assert wrong is not None, f"a wrong answer passed the output check ({expect.describe()})"
