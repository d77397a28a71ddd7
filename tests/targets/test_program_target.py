"""Program targets: compile, compare on every input, instruction counts + wall time, verdicts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.rules.program_rules import fast_iostream, hash_maps, no_endl, python_fast_input
from kopt.agent.targets.program.program_target import Checker, ProgramTarget
from kopt.sandboxes.program_runner import valgrind_path

DEDUPE = Path(__file__).resolve().parents[1] / "fixtures" / "programs" / "dedupe"


@pytest.fixture(scope="module")
def target():
    # with --validator and no --stress folder, a short stress search adds the costliest legal
    # inputs it finds (here: many equal keys, the quadratic case) to the 3 tests
    t = ProgramTarget.from_options(DEDUPE / "prog.cpp", tests=DEDUPE / "tests", validator=DEDUPE / "validator.cpp")
    t.rounds = 3
    return t


def test_counting_rewrite_fewer_instructions_needs_the_clock(target):
    """The fixture's inputs are legal up to n = 2000: its work is a few ms under ~3 ms of start-up,
    too short for the wall clock. The count shows the win; the verdict waits for the clock."""
    r = target.evaluate(DEDUPE / "fast.cpp", [])
    assert r["correct"] and r["compiled"] and r["kernel"] == "cpp"
    names = [row["input"] for row in r["checks"]["per_input"]]
    assert len(names) == 5 and all(n.startswith("stress-search/") for n in names[3:]), names
    if valgrind_path():
        c = r["checks"]
        assert c["metric"].startswith("instructions") and c["new_instructions"] * 1.5 < c["ref_instructions"]
        assert r["speedup_ci"][0] <= r["speedup"] <= r["speedup_ci"][1]
        if r["verdict"] == "faster":
            assert c["wall_verdict"] == "faster", r
        else:
            assert r["verdict"] == "same" and c["instruction_speedup"] > 1.5
            assert "wall time says" in c["metrics_disagree"]
            assert r["speedup"] == c["wall_speedup"] and "larger inputs" in c["hint"], r
    assert r["ref_ms"] > 0 and r["new_ms"] > 0 and "wall_speedup" in r["checks"]


QUADRATIC = r"""#include <stdio.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1; unsigned long s = 0;
  for (long i = 0; i < n; i++) for (long j = 0; j < n; j++) s += (unsigned long)(i ^ j) & 1;
  printf("%lu\n", s); return 0; }
"""
CLOSED_FORM = r"""#include <stdio.h>
int main(void) { long n; if (scanf("%ld", &n) != 1) return 1; unsigned long s = 0;
  for (long i = 0; i < n; i++) s += (unsigned long)(n / 2) + ((n & 1) && !(i & 1) ? 0 : (n & 1));
  printf("%lu\n", s); return 0; }
"""


def test_a_win_the_clock_sees_is_faster_by_the_count(tmp_path):
    """Quadratic work of ~20-40 ms per input against a linear rewrite: both metrics say faster,
    and the instruction count (exact) gives the figure."""
    (tmp_path / "ref.c").write_text(QUADRATIC)
    (tmp_path / "new.c").write_text(CLOSED_FORM)
    tests = tmp_path / "tests"
    tests.mkdir()
    for k, n in enumerate((6000, 7001, 8000)):
        (tests / f"{k}.in").write_text(f"{n}\n")
    t = ProgramTarget.from_options(tmp_path / "ref.c", tests=tests)
    t.rounds = 3
    r = t.evaluate(tmp_path / "new.c", [])
    assert r["correct"] and r["verdict"] == "faster" and r["checks"]["wall_verdict"] == "faster", r
    if valgrind_path():
        c = r["checks"]
        assert c["wall_measurable"] and "metrics_disagree" not in c, r
        assert r["speedup"] >= c["wall_speedup"] > 1.5, r


def test_wrong_and_broken_rewrites(target, tmp_path):
    r = target.evaluate(DEDUPE / "wrong.cpp", [])
    assert r["verdict"] == "incorrect" and r["compiled"] and not r["correct"]
    # the reason reaches the model: a test's number and how much differs, never its text
    assert r["reason"].startswith("wrong on hidden test ") and "expected" not in r["reason"]
    assert r["checks"]["detail"]["input"].startswith("tests/") and "expected" in r["checks"]["detail"]["difference"]
    bad = tmp_path / "bad.cpp"
    bad.write_text("int main( {\n")
    r = target.evaluate(bad, [])
    assert r["verdict"] == "compile_error" and not r["compiled"]
    sneaky = tmp_path / "sneaky.cpp"
    sneaky.write_text("// kopt-flags: -include /etc/passwd\nint main() {}\n")
    assert target.evaluate(sneaky, [])["verdict"] == "rejected"
    hang = tmp_path / "hang.cpp"
    hang.write_text("int main() { volatile int x = 0; for (;;) x++; }\n")
    assert target.evaluate(hang, [])["verdict"] == "timeout"


def test_candidate_cannot_read_the_tests(target, tmp_path):
    peek = tmp_path / "peek.cpp"
    peek.write_text('#include <cstdio>\nint main() { FILE* f = fopen("%s", "r"); char b[64] = {0};\n'
                    '  if (f) { fgets(b, 64, f); printf("%%s", b); } else printf("hidden\\n"); }\n'
                    % (DEDUPE / "tests" / "1.in"))
    r = target.evaluate(peek, [])
    assert r["verdict"] == "incorrect" and "'hidden'" in r["checks"]["detail"]["difference"], r
    plant = tmp_path / "plant.cpp"  # tries to leave a file next to its own build
    plant.write_text('#include <cstdio>\n#include <string>\n#include <unistd.h>\nint main() { char p[4096] = {0};\n'
                     '  readlink("/proc/self/exe", p, sizeof p - 1);\n'
                     '  std::string d(p); d = d.substr(0, d.rfind(\'/\'));\n'
                     '  FILE* f = fopen((d + "/planted").c_str(), "w"); puts(f ? "wrote" : "blocked"); }\n')
    r = target.evaluate(plant, [])
    assert r["verdict"] == "incorrect" and "blocked" in r["checks"]["detail"]["difference"], r


def test_bad_program_inputs_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.cpp"
    broken.write_text("int main( {\n")
    with pytest.raises(UserInputError, match="does not compile"):
        ProgramTarget.from_options(broken, tests=DEDUPE / "tests")
    with pytest.raises(UserInputError, match="rejects|accepts none"):
        strict = tmp_path / "strict.py"
        strict.write_text("import sys\nsys.exit(0 if len(sys.stdin.read()) < 20 else 1)\n")
        ProgramTarget.from_options(DEDUPE / "prog.cpp", tests=DEDUPE / "tests", validator=strict)
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    import kopt.agent.targets.program.program_target as program

    old, program.INPUT_TIMEOUT_S = program.INPUT_TIMEOUT_S, 1.0
    try:
        with pytest.raises(UserInputError, match="times out"):
            ProgramTarget.from_options(slow, tests=DEDUPE / "tests")
    finally:
        program.INPUT_TIMEOUT_S = old
    with pytest.raises(UserInputError, match="needs inputs"):
        ProgramTarget.from_options(DEDUPE / "prog.cpp")


def test_checkers():
    assert Checker.parse("exact").differ(b"1 2\n", b"1 2  \n\n") == ""
    assert Checker.parse("exact").differ(b"1 2\n", b"1  2\n")
    assert Checker.parse("tokens").differ(b"1 2\n", b"1\n2") == ""
    assert Checker.parse("float:1e-3").differ(b"0.5000", b"0.50001") == ""
    assert Checker.parse("float:1e-6").differ(b"0.5", b"0.6")
    with pytest.raises(UserInputError):
        Checker.parse("fuzzy")


def test_program_rules_only_rewrite_when_safe():
    io = '#include <iostream>\nint main() {\n  int n; std::cin >> n;\n  std::cout << n << std::endl;\n}\n'
    assert "sync_with_stdio(false)" in fast_iostream(io)
    assert fast_iostream(io.replace("std::cout << n", 'printf("%d", n); std::cout')) is None  # mixed stdio
    assert "endl" not in no_endl(io)
    ordered = "#include <map>\nstd::map<int,int> m;\nint main(){ for (auto& kv : m) {} }\n"
    assert hash_maps(ordered) is None
    assert "unordered_map<int,int>" in hash_maps("#include <map>\nstd::map<int,int> m;\nint main(){ m[1]++; }\n")
    counts = "#include <map>\nstd::vector<int> v;\nstd::map<long long, int> c;\nint main(){ for (int x : v) c[x]++; }\n"
    assert hash_maps(counts) is not None  # iterating a vector is fine
    assert hash_maps(counts.replace("long long", "std::pair<int, int>")) is None  # no std::hash for pairs
    assert python_fast_input("n = int(input())\n").startswith("import sys")


def test_optimize_program_end_to_end(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import kopt.agent.search.novelty as novelty
    from kopt.agent.cli.app import app

    monkeypatch.setattr(novelty, "make_embedder", lambda: None)  # token fingerprints: no model load
    stress = tmp_path / "stress"
    stress.mkdir()
    (stress / "equal.in").write_text("800\n" + " ".join(["7"] * 800) + "\n")
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["optimize", str(DEDUPE / "prog.cpp"), "--tests", str(DEDUPE / "tests"),
                                 "--stress", str(stress), "--budget", "3", "--run-dir", str(run)])
    assert r.exit_code in (0, 1), r.output
    assert (run / "best" / "solution.cpp").exists() and "main" in (run / "best" / "solution.cpp").read_text()
    evals = json.loads((run / "best" / "evaluations.json").read_text())
    assert [row["input"] for row in evals[0]["checks"]["per_input"]][-1] == "stress/equal.in"
    r = CliRunner().invoke(app, ["optimize", str(DEDUPE / "prog.cpp"), "--tests", str(tmp_path / "none"),
                                 "--run-dir", str(tmp_path / "r2")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
