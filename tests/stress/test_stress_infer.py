"""`kopt stress` from a validator alone (issue 22): the layout and ranges are inferred by probing,
the structured generators stay legal, and the search finds >= 10x over random legal inputs."""
from __future__ import annotations

import json
import random
import subprocess

import pytest
from typer.testing import CliRunner

from kopt.agent.cli.app import app
from kopt.agent.stress.infer import infer
from kopt.agent.stress.structures import generators, primes_below, random_like
from kopt.agent.stress.validator import Validator
from kopt.sandboxes.program_runner import valgrind_path

needs_valgrind = pytest.mark.skipif(valgrind_path() is None, reason="valgrind not installed")

ARRAY = """#include <cstdio>
int main() {  // n (LO_N <= n <= HI_N), then n integers 2 <= a_i <= 10^9
    long long n, x;
    if (scanf("%lld", &n) != 1 || n < LO_N || n > HI_N) return 1;
    for (long long i = 0; i < n; i++) if (scanf("%lld", &x) != 1 || x < 2 || x > 1000000000LL) return 1;
    char c;
    return scanf(" %c", &c) == 1;
}
"""
STRING = """#include <cstdio>
int main() {  // one line of 1..3000 lowercase letters
    int n = 0, c;
    while ((c = getchar()) != '\\n') if (c < 'a' || c > 'z' || ++n > 3000) return 1;
    return !(n > 0 && getchar() == EOF);
}
"""
GRID = """#include <iostream>
#include <string>
int main() {  // n m (1..200 each), then n rows of m cells '.' or '#'
    int n, m;
    if (!(std::cin >> n >> m) || n < 1 || m < 1 || n > 200 || m > 200) return 1;
    for (int i = 0; i < n; i++) {
        std::string r;
        if (!(std::cin >> r) || (int)r.size() != m) return 1;
        for (char c : r) if (c != '.' && c != '#') return 1;
    }
    std::string rest;
    return bool(std::cin >> rest);
}
"""
GRAPH = """#include <cstdio>
#include <set>
#include <utility>
int main() {  // n m (2 <= n <= 300, 1 <= m <= 2000), then m edges: no loops, no repeats
    int n, m;
    if (scanf("%d %d", &n, &m) != 2 || n < 2 || n > 300 || m < 1 || m > 2000) return 1;
    std::set<std::pair<int, int>> seen;
    for (int i = 0; i < m; i++) {
        int u, v;
        if (scanf("%d %d", &u, &v) != 2 || u < 1 || v < 1 || u > n || v > n || u == v) return 1;
        if (!seen.insert({u < v ? u : v, u < v ? v : u}).second) return 1;
    }
    char c;
    return scanf(" %c", &c) == 1;
}
"""
# per-number trial division: fast on random numbers (most have a small factor), slow on primes
TRIAL_DIVISION = """#include <cstdio>
int main() {
    int n; long long total = 0;
    if (scanf("%d", &n) != 1) return 0;
    while (n--) { long long x, f; scanf("%lld", &x); for (f = 2; f * f <= x && x % f; f++) {} total += f; }
    printf("%lld\\n", total);
}
"""


def array_validator(lo_n: int, hi_n: int) -> str:
    return ARRAY.replace("LO_N", str(lo_n)).replace("HI_N", str(hi_n))


@pytest.fixture
def load(tmp_path):
    opened = []

    def make(source: str, name: str = "v.cpp") -> Validator:
        path = tmp_path / name
        path.write_text(source)
        opened.append(Validator.load(path))
        return opened[-1]
    yield make
    for v in opened:
        v.close()


def test_count_then_values_with_lower_bound_two(load):
    v = load(array_validator(1, 200000))
    g = infer(v, 1 << 20)
    assert g.family.name == "array" and g.values == (2, 10**9) and g.size == (1, 200000), g.summary()
    assert "n, then n integers" in g.summary() and "2 <= a_i <= 1000000000" in g.summary()


def test_a_large_lower_bound_on_the_size(load):
    g = infer(load(array_validator(1000, 5000)), 1 << 20)
    assert g.family.name == "array" and g.size == (1000, 5000) and g.values == (2, 10**9)


def test_a_string_line_a_grid_and_a_graph(load):
    s = infer(load(STRING, "s.cpp"), 1 << 20)
    assert s.family.name == "string" and s.size[1] == 3000 and set(s.alphabet) == set("abcdefghijklmnopqrstuvwxyz")
    grid = infer(load(GRID, "g.cpp"), 1 << 20)
    assert grid.family.name == "grid" and grid.size[1] == 200 and grid.k[1] == 200 and set(grid.alphabet) == set(".#")
    graph = infer(load(GRAPH, "e.cpp"), 1 << 20)  # not mistaken for `n / n values` (3 / 1 2 3 reads as n m u v)
    assert graph.family.name == "graph" and graph.size[1] == 300 and graph.k[1] == 2000 and graph.base == 1


def test_seeds_teach_the_grammar(load):
    v = load(ARRAY.replace("x < 2", "x < 500").replace("1000000000LL", "600").replace("LO_N", "1")
             .replace("HI_N", "50"))
    g = infer(v, 1 << 20, [b"3\n510 520 530\n"])
    assert g.family.name == "array" and g.values == (500, 600) and g.size == (1, 50)


@pytest.mark.parametrize("source", [array_validator(2, 3000), STRING, GRID, GRAPH])
def test_structured_generators_print_legal_inputs(load, source):
    v = load(source)
    g = infer(v, 1 << 20)
    rng = random.Random(3)
    for name, make in generators(g).items():
        for scale in (max(g.size[0], 8), min(g.size[1], 150)):
            x = make(scale, rng)
            assert v.accepts(g.family.text(x)), (name, scale, g.family.text(x)[:200])
            assert v.accepts(g.family.text(random_like(g, x, rng))), name


def test_primes_below_are_the_largest_primes():
    assert primes_below(30, 4) == [29, 23, 19, 17]
    assert primes_below(10**9, 2) == [999999937, 999999929]
    assert primes_below(10**18, 2) == [999999999999999989, 999999999999999967]  # Miller-Rabin, no sieve


@needs_valgrind
def test_validator_alone_finds_ten_times_random(tmp_path):
    prog, val = tmp_path / "trial.cpp", tmp_path / "val.cpp"
    prog.write_text(TRIAL_DIVISION)
    val.write_text(array_validator(1, 1000))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["stress", str(prog), "--validator", str(val), "--budget", "12",
                                 "--max-bytes", "20000", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["layout"].startswith("n, then n integers") and res["slowdown_vs_random"] >= 10, res
    assert res["max_instructions"] >= 10 * res["baseline_instructions"]
    exe = tmp_path / "validator"
    subprocess.run(["g++", "-O2", str(val), "-o", str(exe)], check=True)
    for p in res["inputs"]:
        with open(p, "rb") as f:
            assert subprocess.run([str(exe)], stdin=f).returncode == 0, p
