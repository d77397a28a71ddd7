"""Slowdown vs random legal inputs found by `kopt stress`, per fixture program and per mode.

    python benchmarks/studies/stress_inputs.py [--budget 30] [--model M --base-url URL] [--only unseen|fixtures]

Unseen programs (benchmarks/studies/stress_programs/, written for this benchmark; the search is not
tuned on them): `kopt stress PROG --validator V` with nothing else -- no seeds, no generator,
no LLM -- as a new user would run it; the ratio per program and the median are printed.

Modes: generator-only (generator outputs at growing sizes, no mutation), mutation-only (the
tests as seeds, size push + cost-guided mutation), both. Without --model the generator is a
plain random generator (what users usually have); with --model the LLM writes generators too.
Slowdown = cost of the costliest legal input found / median cost of random legal inputs of
the same shape and size (instruction counts under cachegrind, or wall time without valgrind).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kopt.agent.errors import KoptError
from kopt.agent.stress.run import StressConfig, run_stress

PROGRAMS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "programs"
UNSEEN = Path(__file__).resolve().parent / "stress_programs"
RANDOM_GENERATOR = """import random, sys
seed, size = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
print(size)
print(" ".join(str(rng.randint(1, 10**9)) for _ in range(size)))
"""


def unseen(budget: int) -> None:
    """The validator-only runs on the unseen programs, one row each, then the median ratio."""
    rows = []
    for prog in sorted(p for p in UNSEEN.iterdir() if (p / "prog.cpp").exists()):
        t0 = time.perf_counter()
        try:
            r = run_stress(prog / "prog.cpp", StressConfig(validator=prog / "validator.cpp", budget=budget))
        except KoptError as e:
            print(f"{prog.name:<12} failed: {e}")
            rows.append((prog.name, 0.0, 0, 0, 0, "-", "-", time.perf_counter() - t0))
            continue
        rows.append((prog.name, r["slowdown_vs_random"], r["max_instructions"] or r["max_ms"],
                     r["baseline_instructions"] or r["baseline_ms"], r["tried"], r["origins"][0], r["layout"],
                     time.perf_counter() - t0))
    print(f"kopt stress PROG --validator V (no seeds, no generator, no LLM), budget {budget}")
    print(f"{'program':<12} {'slowdown':>9} {'max cost':>13} {'random':>11} {'tried':>6} {'seconds':>8}  best from")
    for name, slow, top, base, tried, origin, layout, secs in rows:
        print(f"{name:<12} {slow:>8.1f}x {top:>13,.0f} {base:>11,.0f} {tried:>6} {secs:>8.1f}  {origin}")
        print(f"{'':<12} layout: {layout}")
    print(f"median slowdown {statistics.median(r[1] for r in rows):.1f}x; "
          f"{sum(r[1] >= 10 for r in rows)}/{len(rows)} programs at >= 10x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--model", default="rules")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--only", choices=("unseen", "fixtures"), default=None)
    a = ap.parse_args(argv)
    if a.only != "fixtures":
        unseen(a.budget)
    if a.only != "unseen":
        fixtures(a)


def fixtures(a) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        gen = Path(d) / "random_gen.py"
        gen.write_text(RANDOM_GENERATOR)
        for prog in sorted(p for p in PROGRAMS.iterdir() if (p / "prog.cpp").exists()):
            for mode, kw in (("generator-only", {"generator": gen, "use_mutation": False}),
                             ("mutation-only", {"seeds": prog / "tests", "use_generators": False}),
                             ("both", {"generator": gen, "seeds": prog / "tests"})):
                t0 = time.perf_counter()
                r = run_stress(prog / "prog.cpp", StressConfig(validator=prog / "validator.cpp", budget=a.budget,
                                                               model=a.model, base_url=a.base_url, **kw))
                rows.append((prog.name, mode, r["slowdown_vs_random"], r["max_instructions"] or r["max_ms"],
                             r["baseline_instructions"] or r["baseline_ms"], r["tried"], r["origins"][0],
                             time.perf_counter() - t0))
    print(f"kopt stress, budget {a.budget}, generator: {'random + ' + a.model if a.model != 'rules' else 'random'}")
    print(f"{'program':<10} {'mode':<15} {'slowdown':>9} {'max cost':>12} {'random':>10} {'tried':>6} "
          f"{'seconds':>8}  best from")
    for name, mode, slow, top, base, tried, origin, secs in rows:
        print(f"{name:<10} {mode:<15} {slow:>8.1f}x {top:>12,.0f} {base:>10,.0f} {tried:>6} {secs:>8.1f}  {origin}")


if __name__ == "__main__":
    main()
