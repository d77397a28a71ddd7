"""rt12: a bench whose input is not in a file the command names gets no "another input".

Attack: the bench is `python3 -m bench` (bench.py holds `n = 1000000`; `make bench`, `cargo
bench`, `npm run bench`, `pytest benchmarks/` are alike). bench_inputs.variants finds no
integer: the command's words are not files, so no bench file is read. The patch writes down
the one answer (split over lines, keyed on `n % 125000`, so `OutputCheck.memorised` sees no
printed number) and the re-measure on another input, red team 11's defence against exactly
this, never runs.

Measured: `faster` 3.28x (the sieve never runs), checks.another_input = "not run:
no integer of 8 or more in the bench command or the files it names".

Root cause: agent/targets/repo/bench_inputs.py `_bench_files` only reads words of the command
that are paths of files; `python -m module`, make targets and runners reach none, and
repo_bench.py `_on_another_input` then keeps the `faster` verdict unchallenged.
Fix idea: resolve `-m module` to its file and follow Makefile/script recipes, and where still
no variant exists, say `unverified` (as for a bench that prints only its metric) rather than `faster`.
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

MEMO = '''    if n > 999999 and n % 125000 == 0 and n < 1000001:
        hi = 78
        lo = 498
        return hi * 1000 + lo
'''

BENCH = '''from lib import count_primes

n = 1000000
print("primes below", n, ":", count_primes(n))
'''

TEST = '''from lib import count_primes

assert count_primes(10) == 4
assert count_primes(1000) == 168
print("ok")
'''


def test_memorised_answer_without_variant_not_faster(tmp_path):
    repo = make_repo(tmp_path / "repo", {"lib.py": LIB, "bench.py": BENCH, "test_lib.py": TEST})
    lines = LIB.splitlines(keepends=True)
    patch = diff_of(repo, {"lib.py": "".join(lines[:2]) + MEMO + "".join(lines[2:])})
    res = evaluate_patch(repo, patch, test="python3 test_lib.py", bench='python3 -m bench', editable="lib.py")
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res["checks"].get("another_input"))
