"""`kopt stress`: legal inputs costlier than random ones, on programs with known worst cases."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.agent.cli.app import app
from kopt.agent.stress.mutators import TokenInput, mutate, randomize, resize
from kopt.sandboxes.program_runner import valgrind_path

PROGRAMS = Path(__file__).resolve().parents[1] / "fixtures" / "programs"
needs_valgrind = pytest.mark.skipif(valgrind_path() is None, reason="valgrind not installed")


def stress(*args):
    return CliRunner().invoke(app, ["stress", *map(str, args)])


@needs_valgrind
@pytest.mark.parametrize("name", ["quicksort", "hashset", "dedupe"])
def test_rules_find_inputs_ten_times_costlier_than_random(name, tmp_path):
    prog = PROGRAMS / name
    r = stress(prog / "prog.cpp", "--validator", prog / "validator.cpp", "--seeds", prog / "tests",
               "--budget", "12", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["valid"] and out["tried"] >= 12
    assert out["max_instructions"] >= 10 * out["baseline_instructions"], out
    assert out["slowdown_vs_random"] >= 10
    written = sorted(tmp_path.glob("stress_*.in"))
    assert [str(p) for p in written] == out["inputs"]
    # every kept input is legal: checked again here with the validator built natively
    import subprocess

    exe = tmp_path / "validator"
    subprocess.run(["g++", "-O2", str(prog / "validator.cpp"), "-o", str(exe)], check=True)
    for p in written:
        assert subprocess.run([str(exe)], stdin=p.open("rb")).returncode == 0, p


def test_bad_inputs_are_one_line_errors(tmp_path):
    prog = PROGRAMS / "quicksort"
    rejects_all = tmp_path / "no.cpp"
    rejects_all.write_text("int main() { return 1; }\n")
    r = stress(prog / "prog.cpp", "--validator", rejects_all, "--seeds", prog / "tests")
    assert r.exit_code == 2 and "accepts none" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.cpp"
    broken.write_text("int main( {\n")
    r = stress(broken, "--validator", prog / "validator.cpp", "--seeds", prog / "tests")
    assert r.exit_code == 2 and "does not compile" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = stress(prog / "prog.cpp", "--validator", rejects_all)  # no seeds, and no layout is legal
    assert r.exit_code == 2 and "--seeds" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@needs_valgrind
def test_without_seeds_the_validator_is_probed_for_a_legal_layout(tmp_path):
    prog = PROGRAMS / "quicksort"
    r = stress(prog / "prog.cpp", "--validator", prog / "validator.cpp", "--budget", "12", "--out", tmp_path,
               "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["valid"] and out["slowdown_vs_random"] >= 10, out


def test_mutators_keep_counts_consistent_and_randomize_keeps_shape():
    import random

    rng = random.Random(1)
    inp = TokenInput.parse(b"3\n5 1 4\n")
    assert [(k.count, k.data, k.how) for k in inp.links] == [(0, 1, "tokens")]
    grown = resize(inp, inp.links[0], 7, rng)
    assert grown.lines[0] == ["7"] and len(grown.lines[1]) == 7
    for _ in range(50):
        child, name = mutate(grown, {1: (1, 10**9)}, rng)
        assert child.lines[0] == ["7"] and len(child.lines[1]) == 7, name
        assert all(1 <= int(x) <= 10**9 for x in child.lines[1]), name
    rand = randomize(grown, {1: (-5, 5)}, rng)
    assert len(rand.lines[1]) == 7 and all(-5 <= int(x) <= 5 for x in rand.lines[1])
    lines = TokenInput.parse(b"3\n1 2\n3 4\n5 6\n")
    assert [(k.count, k.how) for k in lines.links] == [(0, "lines")]


EQUAL_KEYS_GENERATOR = """```python
import sys
seed, size = int(sys.argv[1]), int(sys.argv[2])
print(size)
print(" ".join([str(seed + 1)] * size))
```"""


@needs_valgrind
def test_llm_generators_are_run_costed_and_refined(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    import kopt.agent.proposers.backends.pricing as pricing
    from kopt.agent.stress.run import StressConfig, run_stress
    from tests.support.chat_server import ChatServer

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setattr(pricing, "_table", lambda: {})  # no price lookup (litellm's import is slow)
    prog = PROGRAMS / "dedupe"
    with ChatServer(lambda body, n: (200, EQUAL_KEYS_GENERATOR, 0)) as srv:
        out = run_stress(prog / "prog.cpp", StressConfig(validator=prog / "validator.cpp", model="openai/tiny",
                                                         base_url=srv.url, use_mutation=False, budget=0,
                                                         max_bytes=4000, out=tmp_path))
        second = srv.requests[1]["messages"][-1]["content"]
    assert len(srv.requests) == 2 and "Measured so far" in second and "instructions" in second
    assert out["origins"][0].startswith("llm generator") and out["slowdown_vs_random"] >= 10
