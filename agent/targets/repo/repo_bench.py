"""One repository candidate's measurement (the repository target's `evaluate`, once its patch
applies and stays inside what may change): the test command, then the bench on both sides,
every run from a clean tree in a new sandbox; every bench output checked against the
original's, every cost cross-checked with kopt's own clock."""
from __future__ import annotations

import copy
import os
import statistics
from dataclasses import replace
from pathlib import Path, PurePosixPath

from kopt.agent.targets.disk_reads import store_problem
from kopt.agent.targets.repo import bench_inputs, guard, test_tally, worktree
from kopt.agent.targets.repo.fresh import FreshRuns
from kopt.agent.targets.repo.outputs import OutputCheck
from kopt.agent.targets.repo.shell_commands import RunResult, parse_metric
from kopt.sandboxes.timing import estimate_speedup, speed_verdict

BASELINE_ROUNDS = 3
AGREEMENT_FACTOR = 3.0  # metric speedup / wall-time speedup above which the clock must say `faster` too
SUSPICIOUS_SPEEDUP = 100.0
SLOWED_QUOTA = 1 / 3  # CPUs: the original's bench run once about 3x slower (_slowed_run)
REFERENCE_RUNS_FIRST = 3  # runs of the original (warm-up included) before a candidate's output is judged
# sources a build compiles but never runs: a patch changing only these may keep build outputs
# (not .rs: build.rs and proc macros run at build time)
COMPILED_SOURCES = {".c", ".cc", ".cpp", ".cxx", ".c++", ".h", ".hh", ".hpp", ".hxx", ".cu", ".cuh", ".f90"}


def failed(verdict: str, reason: str, compiled: bool = True, checks: dict | None = None) -> dict:
    """The §1 fields of a candidate that is not measured."""
    return {"compiled": compiled, "correct": False, "speedup": None, "speedup_ci": None, "ref_ms": None,
            "new_ms": None, "checks": checks or {}, "verdict": verdict, "reason": reason}


class _Failed(Exception):
    def __init__(self, verdict: str, reason: str):
        super().__init__(reason)
        self.verdict, self.reason = verdict, reason


def measure(t, ref_tree: Path, new_tree: Path, patch: str, hidden: list[str]) -> dict:
    """The §1 fields for PATCH (checked out in NEW_TREE) against the original (REF_TREE). T is the
    `RepoTarget`: its commands, timeouts, metric, rounds and noise floor; the files the
    original's bench rewrites on every run are learnt once into `t.rewrites`."""
    with t.ws.locked(ref_tree, new_tree):
        new = FreshRuns(t.ws, new_tree, hidden, t.subdir)
        ref = FreshRuns(t.ws, ref_tree, hidden, t.subdir)
        checks: dict = {"tree": "read-only to the runs (an overlay each; kopt reads what they changed)"
                        if new.throwaway and ref.throwaway else "written by the runs, reset between them"}
        try:
            warm_new, warm_ref = _tests_and_warm_up(t, ref, new, checks, _interpreted_changes(patch, t.baseline))
            res, expect = _timed_rounds(t, ref, new, patch, warm_new, warm_ref, checks)
            if res["verdict"] == "faster" and patch != t.baseline:
                res = _on_another_input(t, ref, new, patch, res, warm_ref, expect)
            return res
        except _Failed as f:
            return failed(f.verdict, f.reason, checks=checks)
        except worktree.GitError as e:
            return failed("runtime_error", f"a tree could not be brought back to its candidate between runs: {e}")
        finally:
            new.close()
            ref.close()


def _interpreted_changes(patch: str, baseline: str) -> list[str]:
    """The files the patch changes (beyond the user's baseline) that are not compiled sources:
    a build may run them (a generator script), so what that build makes is the candidate's."""
    own = set(baseline.splitlines())
    paths = {line[6:].strip() for line in patch.splitlines() if line.startswith("+++ b/") and line not in own}
    # a build file may change only in its optimisation-flag lines (guard.Policy): it runs nothing new
    return sorted(p for p in paths if PurePosixPath(p).suffix.lower() not in COMPILED_SOURCES
                  and guard.protected_kind(p) != "a build file")


def _tests_and_warm_up(t, ref: FreshRuns, new: FreshRuns, checks: dict,
                       interpreted: list[str]) -> tuple[RunResult, RunResult]:
    """The candidate's tests, then one untimed bench run per side (builds, fills caches)."""
    r = new.run(t.test, t.test_timeout)
    checks.update(tests="passed" if r.ok else "failed", test_s=round(r.wall_s, 3))
    if r.timed_out:
        raise _Failed("timeout", f"--test did not finish in {t.test_timeout:.0f}s")
    if not r.ok:
        raise _Failed("incorrect", f"--test fails (exit {r.rc}): {r.tail_line()}")
    if why := test_tally.differs(t.test_tally, r.output):
        checks["tests"] = "passed with other counts"
        raise _Failed("incorrect", why)
    warm_new = new.run(t.bench, t.bench_timeout)
    if not warm_new.ok:
        raise _Failed("timeout" if warm_new.timed_out else "runtime_error",
                      f"--bench fails ({warm_new.status}): {warm_new.last_line()}")
    if t.bench_metric and parse_metric(warm_new.output, t.bench_metric) is None:
        raise _Failed("runtime_error", f"--bench printed no number (a positive finite one) matching "
                                       f"{t.bench_metric!r}")
    warm_ref = ref.run(t.bench, t.bench_timeout)
    if not warm_ref.ok:
        raise _Failed("runtime_error", f"the original's bench failed this time: {warm_ref.last_line()}")
    if t.rewrites is None:  # learnt once: the original is the same in every evaluation
        again, rewrites = ref.rewrites(t.bench, t.bench_timeout)
        if not again.ok:
            raise _Failed("runtime_error", f"the original's bench failed this time: {again.last_line()}")
        t.rewrites = rewrites
        t.slowed, t.slowed_output = _slowed_run(t, ref, warm_ref)
        t.bench_values = {float(v) for v in bench_inputs.input_values(t.bench, ref.tree, t.subdir)}
    checks["slowed_run"] = t.slowed
    # the same build outputs on both sides, kept between runs; never a file the original
    # rewrites on every run (a result: kept, its contents would be the candidate's cache)
    built = (new.written & ref.written) - t.rewrites
    if built and interpreted:
        # red team 10: a protected Makefile ran the candidate's generator (gen.py, on the user's
        # --editable), which computed the bench's answer into a header, untimed, in the build pass
        checks["build_outputs"] = (f"rebuilt in every run (the patch changes {interpreted[0]}, which a build "
                                   f"may run)")
        built = set()
    built = _built_without_the_program(t, new, built, checks)
    new.keep(built)
    ref.keep(built)
    return warm_new, warm_ref


def _slowed_run(t, ref: FreshRuns, warm_ref: RunResult) -> tuple[str, str | None]:
    """(what came of it, the output) of one run of the original's bench held to SLOWED_QUOTA of
    a CPU: a number that tracks its speed but is printed too coarsely to vary at one speed
    (`done in 1 s`) changes there and is masked like any timing; an honest patch printing
    `done in 0 s` was `incorrect` (red team 31). No output where the host cannot cap a
    run's CPU (no writable cpu cgroup) or the slowed run failed."""
    timeout = min(3 * t.bench_timeout, max(60.0, 6 * (os.cpu_count() or 1) * warm_ref.wall_s))
    r = ref.slowed(t.bench, timeout, SLOWED_QUOTA)
    if r is None:
        return "not run: this host gives kopt no CPU cgroup to slow a run with", None
    if not r.ok:
        return f"failed ({r.status}): nothing learnt from it", None
    return f"learnt from ({r.wall_s:.1f}s, held to a third of a CPU)", r.output


def _built_without_the_program(t, new: FreshRuns, built: set[str], checks: dict) -> set[str]:
    """Which of `built` may be kept: those the candidate's bench writes again from a clean tree
    with nothing in the tree allowed to execute (a build pass; `new.keep` then copies the
    pass's files). The warm-up's copies were made while the candidate's program ran, which
    could write its answer into them. Nothing is kept (everything rebuilt in every timed
    run, on both sides) where the pass cannot be trusted: no Landlock here, or the bench
    succeeded without executing anything from the tree (interpreted code ran)."""
    if not built:
        return built
    r = new.run(t.bench, t.bench_timeout, no_exec=True)
    if not r.no_exec:
        checks["build_outputs"] = "rebuilt in every run (this kernel cannot forbid executing the tree: no Landlock)"
        return set()
    if r.ok:
        checks["build_outputs"] = ("rebuilt in every run (the bench ran with nothing in the tree executable: "
                                   "interpreted code ran, so what it wrote may be the candidate's)")
        return set()
    return built & new.written


def _timed_rounds(t, ref: FreshRuns, new: FreshRuns, patch: str, warm_new: RunResult, warm_ref: RunResult,
                  checks: dict, variant: bench_inputs.Variant | None = None,
                  mask: OutputCheck | None = None) -> tuple[dict, OutputCheck]:
    """Interleaved rounds (the order flips each round) until the verdict is clear or the
    budget is spent; every output checked, the candidate's writes compared with the original's.
    The verdict and the check the outputs met. With VARIANT (the bench on another input) every
    round runs a draw of its own on both sides, and the candidate's output must be the
    original's of that round but for what MASK (the bench's own input's check) learnt varies:
    a result one run stored, in the page cache or anywhere else that outlives a fresh run,
    answers a question no later run asks (red team 14)."""
    expect: OutputCheck | None = mask  # else set from the original's first timed run (see below)
    per_round = max(1e-3, warm_new.wall_s + warm_ref.wall_s)
    rounds = int(min(t.max_rounds, max(t.min_rounds, t.timing_budget_s // per_round)))
    cost: dict[str, list[float]] = {"ref": [], "new": []}
    wall: dict[str, list[float]] = {"ref": [], "new": []}
    writes: dict[str, set[str]] = {"ref": set(), "new": set()}
    disk = {"ref": 0, "new": 0}  # timed runs that read a page the host had not cached (disk_reads)
    # the candidate's outputs wait to be checked until the original has run three times (its
    # warm-up counted where laid out alike): judged against one run of it, a bench printing its own
    # timing failed every honest patch in round 1 (red team 9); against two, an import time printed
    # to the microsecond came out the same in both about one time in 150, and an honest patch was
    # `incorrect` on it. The last check, after the rounds, is against every run of the original
    pending: list[tuple[int, str]] = []
    learnt = 0
    command, printed = t.bench, {}
    for i in range(rounds):
        if variant is not None:
            drawn = variant.again()
            command, ref.overlay, new.overlay = drawn.command, drawn.files, drawn.files
        order = [("ref", ref), ("new", new)] if i % 2 == 0 else [("new", new), ("ref", ref)]
        if ref.tree != new.tree:  # both workers come up together, before either is timed
            for _, runs in order:
                runs.start()
            for _, runs in order:
                runs.ready()
        for side, runs in order:
            r = runs.run(command, t.bench_timeout)
            who = "--bench" if side == "new" else "the original's bench"
            if not r.ok:
                raise _Failed("timeout" if r.timed_out else "runtime_error",
                              f"{who} failed in round {i + 1} ({r.status}): {r.last_line()}")
            printed[side] = r.output  # with a variant: checked as a pair, once both sides ran
            if variant is None and side == "ref":
                if expect is None:
                    # the yardstick is a timed run (build outputs kept, nothing rebuilt): the warm-up's
                    # output also carries the build's (make's recipe lines), which never came again,
                    # so every Makefile bench had its output check switched off and a candidate
                    # printing 42 for 13401 in the bench only was 'faster' 27x (red team 6)
                    expect = OutputCheck(t.bench_metric, r.output)
                    expect.inputs = t.bench_values
                    learnt += expect.learn(warm_ref.output, alike_only=True)
                    if t.slowed_output is not None:
                        expect.learn(t.slowed_output, alike_only=True)
                else:
                    expect.learn(r.output)
                learnt += 1
            elif variant is None:
                pending.append((i, r.output))
            c = _cost(r, t.bench_metric, t.higher_is_better)
            if c is None:
                raise _Failed("runtime_error", f"{who} printed no number (a positive finite one) in round {i + 1}")
            cost[side].append(c)
            wall[side].append(r.wall_s * 1000)
            writes[side].update(runs.written)
            disk[side] += r.disk_reads > 0
        if variant is not None:
            _check_pair(expect, printed["ref"], printed["new"], f" in round {i + 1}")
        if learnt >= REFERENCE_RUNS_FIRST:  # what of the original's output varies (its timings) is known
            _check_outputs(expect, pending, warm_ref, warm_new)
        if extra := sorted(writes["new"] - writes["ref"]):
            raise _Failed("rejected", f"the bench wrote {', '.join(extra[:3])} in the tree during timed runs "
                                      f"(state kept between runs can fake speed)")
        if patch == t.baseline and i + 1 >= BASELINE_ROUNDS:
            rounds = i + 1  # the original against itself: only the noise is measured
            break
        # with a metric, kopt's clock must be decided too: it cross-checks the metric below, and
        # three rounds of a 0.1 s bench on a busy machine left it undecided (an honest 3x rejected)
        if i + 1 >= t.min_rounds and _decided(cost["ref"], cost["new"], t.noise_floor) and \
                (not t.bench_metric or _decided(wall["ref"], wall["new"], t.noise_floor)):
            rounds = i + 1
            break
    _check_outputs(expect, pending, warm_ref, warm_new)
    checks["output"] = expect.describe()
    checks["disk_read_runs"] = {"new": disk["new"], "ref": disk["ref"], "of": rounds}
    if patch != t.baseline and (why := store_problem(disk["new"], disk["ref"], rounds)):
        raise _Failed("rejected", why)
    if variant is None and patch != t.baseline and (answer := expect.memorised(patch, t.baseline)):
        raise _Failed("rejected", f"the patch writes down the answer the original's bench prints ({answer}): "
                                  f"it must compute it")
    est = estimate_speedup(cost["ref"], cost["new"])
    checks.update(rounds=rounds, metric=t.bench_metric or "wall time", higher_is_better=t.higher_is_better)
    verdict = "same" if patch == t.baseline else speed_verdict(est, t.noise_floor)
    if t.bench_metric:
        vals = (lambda c: [1 / x for x in c]) if t.higher_is_better else (lambda c: c)
        checks.update(ref_metric=statistics.median(vals(cost["ref"])),
                      new_metric=statistics.median(vals(cost["new"])))
        clock = estimate_speedup(wall["ref"], wall["new"])
        checks["wall_speedup"] = round(clock.speedup, 4)
        if verdict == "faster" and (problem := _disagrees(est, clock, t.noise_floor)) and variant is None:
            # (on the bench's other input the clock's verdict stands instead, below: a smaller
            # size leaves more of its wall time to start-up)
            raise _Failed("rejected", f"behaves differently when measured: {problem}")
        clock_says = speed_verdict(clock, t.noise_floor)
        if verdict == "faster" and (clock_says != "faster" or est.speedup > AGREEMENT_FACTOR * clock.speedup):
            # the number came from the bench's own process, which the code under optimization runs
            # in: a patched time.perf_counter read 2.8x with the clock at 1.02x (red team 6), and
            # 92.4x on top of a real 1.76x (red team 7). Not measured by kopt, so not claimed: the
            # clock's verdict and speedup, the CI reaching to the metric's
            unconfirmed = "" if clock_says == "faster" else " (not faster)"
            checks["metric_unconfirmed"] = (f"the metric says {est.speedup:.2f}x, kopt's clock around the bench "
                                            f"{clock.speedup:.2f}x{unconfirmed}")
            verdict = "faster" if clock_says == "faster" else "same"
            est = replace(est, speedup=clock.speedup, ci=(min(clock.ci[0], est.ci[0]), max(clock.ci[1], est.ci[1])))
    reason = None
    if verdict == "faster" and expect.empty:
        verdict, reason = "unverified", ("faster, but the bench prints nothing but its metric and timings, so "
                                         "nothing checked the answer it computed (only the tests did); make the "
                                         "bench print its result")
    elif verdict == "faster" and t.test_tally.blind:
        verdict, reason = "unverified", ("faster, but the tests report counts, not which tests passed, and some "
                                         "did not run on the original (skipped): a patch could swap which; run "
                                         "them with pytest (kopt reads its -rA ids)")
    elif verdict == "faster" and expect.off:
        verdict, reason = "unverified", ("faster, but the original's own output varies between its runs beyond its "
                                         "numbers, so nothing checked the answer it computed (only the tests did); "
                                         "make the bench print the same text every run")
    if est.speedup > SUSPICIOUS_SPEEDUP:
        checks["warning"] = (f"speedup above {SUSPICIOUS_SPEEDUP:.0f}x: an algorithmic change, or the bench no "
                             f"longer does its work -- read the patch")
    blind = verdict == "unverified" and t.test_tally.blind  # which tests passed is not known
    return {"compiled": True, "correct": not blind, "speedup": round(est.speedup, 4),
            "speedup_ci": [round(est.ci[0], 4), round(est.ci[1], 4)],
            "ref_ms": round(est.ref_ms, 3), "new_ms": round(est.new_ms, 3), "checks": checks,
            "verdict": verdict, **({"reason": reason} if reason else {})}, expect


def _on_another_input(t, ref: FreshRuns, new: FreshRuns, patch: str, res: dict, warm_ref: RunResult,
                      expect: OutputCheck) -> dict:
    """A candidate faster on the bench is measured again on the bench with its integers
    changed (bench_inputs): it must print the original's output there and be faster there
    too. A patch that special-cases the bench's one input (its answer written down, in any
    spelling) prints the right thing on the new input by running the original's code, and is
    no longer faster. Every integer changed at once decides alone; where the original fails
    on that or is blind to it, each integer changed alone is measured (at most 3) and all
    must be faster. Inputs the original fails on or is blind to are skipped. Every timed
    round draws the changed values anew (EXPECT: the bench's own input's output check, what
    of the output may vary)."""
    checks = res["checks"]
    seen = OutputCheck(t.bench_metric, warm_ref.output)
    tried, measured = [], []
    patched = set(worktree.changed_paths(patch))  # from the patch: the tree is as the last run left it (red team 16)
    for k, v in enumerate(bench_inputs.variants(t.bench, ref.tree, t.subdir)):
        if patched & set(v.files):
            tried.append(f"{v.what}: the patch changes that file")  # written over, the patch would be gone
            continue
        again = _measure_variant(t, ref, new, patch, v, seen, tried, expect)
        if again is None:
            continue
        measured.append({"input": v.what + " (drawn again for every timed round)", "verdict": again["verdict"],
                         "speedup": again["speedup"],
                         "speedup_ci": again["speedup_ci"], "ref_ms": again["ref_ms"], "new_ms": again["new_ms"]})
        if k == 0 and v.what.startswith("every integer"):
            break
    if not measured:
        checks["another_input"] = "not run: " + ("; ".join(tried) if tried else
                                                 "no integer of 8 or more in the bench command or the files it names")
        return res
    worst = min(measured, key=lambda m: m["speedup"])
    report = {k: worst[k] for k in ("input", "verdict", "speedup", "speedup_ci")}
    checks["another_input"] = report if len(measured) == 1 else {**report, "inputs": len(measured)}
    if all(m["verdict"] in ("faster", "unverified") for m in measured):
        return res
    checks["another_input"]["note"] = "faster only on the bench's own input: not believed"
    return {**res, "verdict": "same", **{k: worst[k] for k in ("speedup", "speedup_ci", "ref_ms", "new_ms")}}


def _measure_variant(t, ref: FreshRuns, new: FreshRuns, patch: str, v, seen: OutputCheck,
                     tried: list[str], expect: OutputCheck) -> dict | None:
    """Both sides timed on the variant V of the bench, or None (why, in TRIED) where the
    original fails on it or prints what it printed before."""
    other = copy.copy(t)
    other.bench = v.command
    ref.overlay = new.overlay = v.files
    try:
        base = ref.run(v.command, t.bench_timeout)
        if not base.ok:
            tried.append(f"{v.what}: the original fails ({base.status})")
            return None
        if not seen.empty and not seen.off and seen.differs(base.output) is None:
            tried.append(f"{v.what}: the original prints the same")
            return None
        warm = new.run(v.command, t.bench_timeout)
        if not warm.ok:
            raise _Failed("timeout" if warm.timed_out else "incorrect",
                          f"--bench with {v.what} fails ({warm.status}) where the original's runs: {warm.last_line()}")
        _check_pair(expect, base.output, warm.output)
        return _timed_rounds(other, ref, new, patch, warm, base, {}, variant=v, mask=expect)[0]
    except _Failed as f:
        raise _Failed(f.verdict, f"with {v.what}: {f.reason}") from None
    except OSError as e:
        raise _Failed("rejected", f"the bench with {v.what} could not be written into the tree: {e}") from None
    finally:
        ref.overlay = new.overlay = {}


def _check_outputs(expect, pending: list[tuple[int, str]], warm_ref: RunResult, warm_new: RunResult) -> None:
    """Every candidate output not yet checked, against what the original's runs so far allow
    (the warm-up's too, where the original's warm-up output is like its timed ones)."""
    for i, output in pending:
        if wrong := expect.differs(output) or (i == 0 and expect.differs(warm_ref.output) is None
                                               and expect.differs(warm_new.output)):
            raise _Failed("incorrect", f"--bench's output in round {i + 1} differs from the original's: {wrong}")
    pending.clear()


def _check_pair(expect: OutputCheck, ref_output: str, new_output: str, where: str = "") -> None:
    """The candidate's output of a run on another input against the original's of the same
    input, with what EXPECT learnt varies between the original's runs masked."""
    if wrong := expect.against(ref_output).differs(new_output):
        raise _Failed("incorrect", f"--bench's output{where} differs from the original's: {wrong}")


def _decided(ref_cost: list[float], new_cost: list[float], noise_floor: float) -> bool:
    """Stop timing once the CI clears the noise floor either way; an unclear
    result gets more rounds (up to the budget)."""
    return speed_verdict(estimate_speedup(ref_cost, new_cost, resamples=500), noise_floor) != "same"


def _cost(r: RunResult, metric: str | None, higher_is_better: bool) -> float | None:
    """What one run cost, lower is better: wall ms, the metric, or 1/metric for a rate."""
    if not metric:
        return r.wall_s * 1000
    value = parse_metric(r.output, metric)
    if value is None:
        return None
    return 1.0 / value if higher_is_better else value


def _disagrees(metric, clock, noise_floor: float) -> str | None:
    """Why a metric's `faster` is not believed, or None. The metric is what the bench
    prints (code under optimization can fake it: a patched clock, a skipped loop);
    kopt's own clock around the whole command cannot be. The metric may say more than the
    clock (a bench's fixed start-up dilutes the wall-time ratio), but not more than
    AGREEMENT_FACTOR times more unless the clock, too, says `faster`; and never `faster`
    when the clock says `slower`."""
    said = speed_verdict(clock, noise_floor)
    if said == "slower":
        return f"the metric says {metric.speedup:.2f}x faster, kopt's clock says {clock.speedup:.2f}x (slower)"
    if said != "faster" and metric.speedup > AGREEMENT_FACTOR * clock.speedup:
        return (f"the metric says {metric.speedup:.2f}x faster, kopt's clock around the bench {clock.speedup:.2f}x "
                f"(more than {AGREEMENT_FACTOR:.0f}x apart); if the speedup is real, the measured part is too small a "
                f"share of the bench's run time to show -- make the bench do more of it, or drop --bench-metric")
    return None
