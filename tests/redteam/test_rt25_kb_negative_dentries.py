"""rt25: the dentry cache as a store between KernelBench evaluations (held by the eviction).

Attack (on session 17's fix, `worker_limits.evict_charged_pages`): the fix empties a worker's
memory cgroup of its page cache; a lookup of a name that does not exist leaves no page at all,
only a negative dentry (slab memory) in the host file system's dentry cache, which the jail
shares (/usr is a bind mount of the host's). Evaluation A's candidate stat()s M made-up names
under /usr/lib for each 1-bit of a secret; evaluation B's candidate times one stat() of each
name and of as many fresh names: a cached negative dentry answers in ~2 us, a lookup that
must search the directory in ~5 us (measured on this host with a plain cgroup). B raises with
what it read, so the bits come back in B's `reason`.
Measured: with the eviction turned off (the control below, `evict_charged_pages` a no-op) B
reads the secret exactly; with it, memory.force_empty also runs the cgroup's slab shrinkers
(dentries are charged to the cgroup that made them: SLAB_ACCOUNT), the dentries go, and B reads
noise. Honest outcome: B does not read A's secret.
"""
from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from kopt.sandboxes import worker_limits
from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
BITS, M = 16, 12
DIR = "/usr/lib"

COMMON = '''
import os, time
import torch
TAG = {tag!r}
BITS, M = {bits}, {m}


def _name(tag, bit, j):
    return os.path.join({dir!r}, "kopt-rt25-%s-%d-%d" % (tag, bit, j))


def _stat_ns(path):
    t = time.perf_counter_ns()
    try:
        os.stat(path)
    except OSError:
        pass
    return time.perf_counter_ns() - t
'''
WRITER = COMMON + '''
SECRET = {secret!r}


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        for i, bit in enumerate(SECRET):
            if bit == "1":
                for j in range(M):
                    _stat_ns(_name(TAG, i, j))

    def forward(self, x):
        return torch.relu(x)
'''
READER = COMMON + '''

class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        fresh = os.urandom(4).hex()
        base, bits = [], ""
        for i in range(BITS):
            seen = sorted(_stat_ns(_name(TAG, i, j)) for j in range(M))
            new = sorted(_stat_ns(_name(fresh, i, j)) for j in range(M))
            bits += "1" if seen[M // 2] * 10 < new[M // 2] * 6 else "0"
            base.append(new[M // 2])
        raise RuntimeError("seen " + bits + " fresh median ns " + str(sorted(base)[BITS // 2]))

    def forward(self, x):
        return torch.relu(x)
'''


def _read_back(tmp_path: Path) -> tuple[str, str]:
    rng = secrets.SystemRandom()
    secret = "".join(rng.choice("01") for _ in range(BITS - 2)) + "10"
    tag = secrets.token_hex(6)
    writer, reader = tmp_path / "writer.py", tmp_path / "reader.py"
    writer.write_text(WRITER.format(tag=tag, bits=BITS, m=M, dir=DIR, secret=secret))
    reader.write_text(READER.format(tag=tag, bits=BITS, m=M, dir=DIR))
    cfg = EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60, confirm=False, quality_seeds=2)
    first = evaluate(TASK, writer, cfg)
    assert first["compiled"], first
    second = evaluate(TASK, reader, cfg)
    seen = re.search(r"seen ([01]+)", second.get("reason") or "")
    if seen is None:
        pytest.skip(f"the reader did not run: {second.get('reason')}")
    return secret, seen.group(1)


def _errors(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def test_control_without_eviction_the_dentries_carry_the_bits(tmp_path: Path, monkeypatch) -> None:
    """The reader works: with the eviction off, B reads A's secret (at most one bit wrong)."""
    monkeypatch.setattr(worker_limits, "evict_charged_pages", lambda path: None)
    secret, seen = _read_back(tmp_path)
    if _errors(secret, seen) > 1:
        pytest.skip(f"the dentry timing is too noisy on this host to test the eviction ({secret} read {seen})")


def test_negative_dentries_do_not_reach_a_later_evaluation(tmp_path: Path) -> None:
    secret, seen = _read_back(tmp_path)
    assert _errors(secret, seen) > 2, (secret, seen)
