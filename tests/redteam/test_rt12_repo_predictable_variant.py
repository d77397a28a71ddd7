"""rt12: the "another input" re-measure of a repository candidate is predictable.

Attack: bench `python3 bench.py 1000000` prints the number of primes below n. The patch
writes down the answer for the bench's input AND for the one other input kopt will try:
bench_inputs.changed(1000000) == 874999, a public, deterministic formula (about 7/8, made
odd). Both answers are split over lines (`hi * 1000 + lo`) so `OutputCheck.memorised`
sees no printed number, and keyed on `n % 125000` so neither input is spelt either.

Measured: `faster` 4.93x (CI 1.93-6.41); checks.another_input = {"input": "the bench
command's 1000000 as 874999", "verdict": "faster", "speedup": 4.87}. The patch computes
nothing for either input.

Root cause: agent/targets/repo/bench_inputs.py `changed` (and `variants`, which always picks
the largest integer first) fixes the other input from the bench alone, so a patch can
memorise it as easily as the original one; repo_bench.py `_on_another_input` trusts one variant.
Fix idea: draw the changed value in secret per evaluation (e.g. uniformly from [v/2, v) with
the parity flipped), or try two secret draws, so that no finite table of answers covers it.
"""
from __future__ import annotations

from tests.support.small_repo import diff_of, evaluate_patch, make_repo

LIB = '''def count_primes(n):
    """Number of primes below n (a plain sieve)."""
    if n < 3:
        return 0
    sieve = [True] * n
    sieve[0] = sieve[1] = False
    i = 2
    while i * i < n:
        if sieve[i]:
            for j in range(i * i, n, i):
                sieve[j] = False
        i += 1
    return sum(sieve)
'''

MEMO = '''    if n > 874998 and n % 125000 in (0, 124999):
        hi = 78 if n % 2 == 0 else 69
        lo = 498 if n % 2 == 0 else 448
        return hi * 1000 + lo
'''

BENCH = '''import sys

from lib import count_primes

n = int(sys.argv[1])
print("primes below", n, ":", count_primes(n))
'''

TEST = '''from lib import count_primes

assert count_primes(10) == 4
assert count_primes(1000) == 168
print("ok")
'''


def test_memorised_variant_not_faster(tmp_path):
    repo = make_repo(tmp_path / "repo", {"lib.py": LIB, "bench.py": BENCH, "test_lib.py": TEST})
    lines = LIB.splitlines(keepends=True)
    patch = diff_of(repo, {"lib.py": "".join(lines[:2]) + MEMO + "".join(lines[2:])})
    res = evaluate_patch(repo, patch, test="python3 test_lib.py", bench='python3 bench.py 1000000', editable="lib.py")
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res["checks"].get("another_input"))
