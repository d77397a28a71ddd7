"""Red team 9: the repository target's bench-output check, on a bench that prints its own timing.

Attack: `lib/work.py:mean_root(n)` returns a float; the bench prints `import: <s>`, `result: <r>`
and `elapsed: <s>` (--bench-metric on `elapsed`). The patch is right for the tests' n = 1000 and
samples 1 term in 20 for the bench's n (no runner sniffing: it keys on the input size).

Before: the candidate's output was judged against one run of the original, so its varying
`import:` line failed every patch in round 1 (an honest one too, see the second test); and once
the original's runs were compared, every decimal number was masked, the `result:` line with the
timings: with the first fixed alone, the sampling patch was `faster` 2.37x and correct.
After: outputs wait until the original ran twice; only the numbers its own runs vary in are
masked: the sampling patch is `incorrect` on its `result:` line, an honest patch passes.
Then (CI, session 18): the original's two runs printed the same import time to the microsecond
(about one pair in 150 here) and the honest patch was `incorrect` on its `import:` line; outputs
now wait for three runs of the original (its warm-up counted where laid out alike).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import commit_all
from tests.redteam.test_repo_attacks import patch_of

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git needed")

PY = sys.executable
WORK = ("import math\n\n\ndef mean_root(n):\n    s = 0.0\n    for i in range(n):\n        s += math.sqrt(i)\n"
        "    return s / n\n")
SAMPLED = ("import math\n\n\ndef mean_root(n):\n    if n > 100000:\n"
           "        return sum(math.sqrt(i) for i in range(0, n, 20)) * 20 / n\n"
           "    s = 0.0\n    for i in range(n):\n        s += math.sqrt(i)\n    return s / n\n")
HONEST = "import math\n\n\ndef mean_root(n):\n    return sum(map(math.sqrt, range(n))) / n\n"
BENCH = ("import time\nt0 = time.perf_counter()\nfrom lib.work import mean_root\n"
         "print(f'import: {time.perf_counter() - t0:.6f} s')\nt0 = time.perf_counter()\nr = mean_root({n})\n"
         "print(f'result: {r:.6f}')\nprint(f'elapsed: {time.perf_counter() - t0:.6f} s')\n")


def _target(root: Path, n: int, metric: str | None):
    from kopt.agent.targets.repo.repo_target import RepoTarget

    (root / "lib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "work.py").write_text(WORK)
    (root / "tests" / "test_work.py").write_text(
        "import math\nfrom lib.work import mean_root\n\n\ndef test_mean_root():\n"
        "    assert abs(mean_root(1000) - sum(math.sqrt(i) for i in range(1000)) / 1000) < 1e-9\n")
    (root / "bench.py").write_text(BENCH.replace("{n}", str(n)))
    commit_all(root)
    t = RepoTarget.from_options(root, test=f"{PY} -m pytest -q -p no:cacheprovider tests", bench=f"{PY} bench.py",
                                focus="lib/work.py:mean_root", bench_metric=metric)
    t.min_rounds, t.max_rounds, t.timing_budget_s = 5, 6, 30.0
    return t


def test_a_sampled_float_answer_is_not_masked_with_the_timings(tmp_path: Path):
    t = _target(tmp_path / "user", 2_000_000, r"elapsed: ([0-9.]+)")
    r = t.evaluate(patch_of(t.root, tmp_path, {"lib/work.py": SAMPLED}), [str(tmp_path / "run")])
    assert r["verdict"] == "incorrect" and "result:" in r["reason"], r


def test_an_honest_patch_passes_a_bench_that_prints_its_timing(tmp_path: Path):
    t = _target(tmp_path / "user", 200_000, None)
    r = t.evaluate(patch_of(t.root, tmp_path, {"lib/work.py": HONEST}), [str(tmp_path / "run")])
    assert r["correct"] is True and r["verdict"] in ("same", "faster"), r
    assert "the 2 number(s)" in r["checks"]["output"], r["checks"]["output"]  # the timings, not result:
