"""Honest copies of the real KernelBench tasks: the regression suite for kopt's verdicts.

For every task of an upstream KernelBench checkout (levels 1-3 by default), after
`--fit auto`, a copy of the reference (`Model` renamed `ModelNew`, nothing else changed)
is evaluated by kopt's evaluator. A copy is the one solution whose right verdict is known:
`same`, with a speedup near 1. Anything else is kopt's error (or the task's: degenerate).

    python benchmarks/studies/kernelbench_copies.py [SUITE] [--levels 1,2,3] [--tasks 1-20]
        [--jobs 1] [--json results.json] [--resume] [--quick]

SUITE defaults to `../shared/kernelbench` next to the repository. Each result is written
to the --json file as it completes, so `--resume` after an interruption skips those.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kopt.agent.errors import KoptError, UserInputError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = REPO.parent / "shared" / "kernelbench"
BAND = (0.9, 1.1)
GOOD = ("same", "degenerate", "too_large")
# a quick evaluation for CI and wide sweeps: fewer trials and timed rounds, same checks
QUICK = {"trials": 3, "rounds": 5, "max_timing_s": 5.0, "quality_seeds": 3, "input_budget_s": 0.5}


def outcome(rec: dict) -> str:
    """One word for a copy's result: same | degenerate | too_large | skipped | the verdict
    (`same_outside_band` when `same` but the speedup is off [0.9, 1.1])."""
    if rec.get("too_large"):
        return "too_large"
    if rec.get("skipped"):
        return "skipped"
    verdict = rec.get("verdict")
    if verdict == "same" and rec.get("degenerate"):
        return "degenerate"
    if verdict == "same":
        sp = rec.get("speedup") or 0.0
        return "same" if BAND[0] <= sp <= BAND[1] else "same_outside_band"
    return verdict or "error"


def evaluate_copy(task, work: Path, eval_overrides: dict, device: str = "cpu", fit_cfg=None) -> dict:
    """Fit TASK, write the copy of its (fitted) reference and evaluate it. Never raises for
    what the task or the evaluator does: that is the record."""
    from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task
    from kopt.sandboxes.evaluator import EvalConfig, evaluate
    from kopt.sandboxes.kernelbench_tasks import reference_solution

    rec: dict = {"id": task.id, "level": task.level, "number": task.number, "name": task.name,
                 "path": str(task.path)}
    started = time.perf_counter()
    try:
        fit = fit_task(task.path, work, fit_cfg or FitConfig(device=device))
        rec.update(fit=fit.sizes, fit_s=round(time.perf_counter() - started, 2))
        if fit.skipped:
            rec.update(skipped=fit.skipped, too_large="too big" in fit.skipped)
        else:
            copy = work / "copy.py"
            copy.write_text(reference_solution(fit.path.read_text()))
            res = evaluate(fit.path, copy, EvalConfig(device=device, **eval_overrides))
            rec.update({k: res.get(k) for k in ("verdict", "reason", "speedup", "speedup_ci", "ref_ms", "new_ms",
                                                "degenerate", "degenerate_reason")})
            checks = res["checks"]
            rec.update(eval_s=checks.get("eval_s"), phase_s=checks.get("phase_s"),
                       phase_cpu_s=checks.get("phase_cpu_s"), cpu_speedup=checks.get("cpu_speedup"),
                       task_file=str(fit.path),
                       skipped_trials=checks.get("skipped", []), remeasured=checks.get("remeasured"))
    except KoptError as e:
        rec.update(verdict="error", reason=f"{type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - kopt crashed on a real task: that is a finding
        rec.update(verdict="crash", reason=f"{type(e).__name__}: {str(e).strip()[:300]}")
    rec["outcome"] = outcome(rec)
    rec["wall_s"] = round(time.perf_counter() - started, 2)
    return rec


def select_tasks(suite: Path, levels: list[int], selection: str | None) -> list:
    from kopt.benchmarks.suite import discover, select

    found = discover(suite)
    have = sorted({t.level for t in found})
    missing = [lv for lv in levels if lv not in have]
    if missing:
        raise UserInputError(f"no level {', '.join(map(str, missing))} in {suite}; found "
                             f"level(s) {', '.join(map(str, have))}")
    return [t for lv in sorted(set(levels)) for t in select([t for t in found if t.level == lv], selection)]


def parse_levels(text: str) -> list[int]:
    try:
        levels = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise UserInputError(f"--levels takes numbers like 1,2,3 (got {text!r})") from None
    if not levels:
        raise UserInputError("--levels is empty; give numbers like 1,2,3")
    return levels


def load_previous(path: Path) -> list[dict]:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserInputError(f"cannot resume from {path}: {e}") from None
    return [r for r in data.get("results", []) if r.get("outcome") not in ("crash", "error")]


def spread_order(tasks: list) -> list:
    """The order to run TASKS in so that a run cut short covers every level, and each level
    across its numbers: within a level by bit-reversed rank (the 1st, the middle one, the
    quarters, the eighths...), the levels interleaved so each is as far through its own
    list. In level order, a full run of levels 1-3 (about two hours on 2 shared cores)
    stopped early covered level 1 only."""
    by_level: dict = defaultdict(list)
    for t in tasks:
        by_level[t.level].append(t)
    keyed = []
    for level, ts in by_level.items():
        ts = sorted(ts, key=lambda t: t.number)
        bits = max(1, (len(ts) - 1).bit_length())
        spread = [j for j in (int(f"{i:0{bits}b}"[::-1], 2) for i in range(1 << bits)) if j < len(ts)]
        keyed += [((rank + 0.5) / len(ts), level, ts[j]) for rank, j in enumerate(spread)]
    return [t for _, _, t in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def table(results: list[dict]) -> str:
    """A markdown table per level (counts by outcome), then every non-`same` task with its
    reason, then the distribution of evaluation times."""
    lines = []
    cols = ["same", "degenerate", "too_large", "skipped", "same_outside_band", "faster", "slower", "incorrect",
            "runtime_error", "rejected", "timeout"]
    by_level: dict = defaultdict(list)
    for r in results:
        by_level[r["level"]].append(r)
    extra = sorted({r["outcome"] for r in results} - set(cols))
    cols += extra
    lines.append("| level | tasks | " + " | ".join(cols) + " |")
    lines.append("|---" * (len(cols) + 2) + "|")
    for lv in sorted(by_level):
        rs = by_level[lv]
        counts = [sum(r["outcome"] == c for r in rs) for c in cols]
        lines.append(f"| {lv} | {len(rs)} | " + " | ".join(str(c) for c in counts) + " |")
    lines.append("")
    for r in sorted(results, key=lambda r: (r["level"], r["number"])):
        if r["outcome"] == "same":
            continue
        why = (r.get("degenerate_reason") or r.get("skipped") or r.get("reason")
               or (f"speedup {r['speedup']:.3f} (CI {r['speedup_ci'][0]:.2f}-{r['speedup_ci'][1]:.2f})"
                   if r.get("speedup") is not None else ""))
        cpu = r.get("cpu_speedup")
        if cpu and r["outcome"] in ("same_outside_band", "faster", "slower"):
            why = f"{why}; in CPU seconds {cpu['speedup']:.3f} (CI {cpu['ci'][0]:.2f}-{cpu['ci'][1]:.2f})"
        if (again := r.get("remeasured")) and again.get("verdicts"):
            why = f"{why}; pairs of workers: {again['verdicts'][0]} {again['first']:.3f}, " \
                  f"{again['verdicts'][1]} {again['second']:.3f}"
        lines.append(f"- level {r['level']} {r['name']}: **{r['outcome']}** -- {str(why)[:300]}")
    lines += load_or_bias(results)
    pairs = [r for r in results if (r.get("remeasured") or {}).get("verdicts")]
    if pairs:  # a faster/slower verdict on the first pair of workers is timed again on a fresh pair
        held = [r for r in pairs if len(set(r["remeasured"]["verdicts"])) == 1]
        lines.append(f"{len(pairs)} copies read faster or slower on their first pair of workers: "
                     f"{len(pairs) - len(held)} not confirmed by a fresh pair (reported same), {len(held)} held")
    times = [r["eval_s"] for r in results if r.get("eval_s") is not None]
    if times:
        under = sum(t <= 20 for t in times)
        lines.append("")
        lines.append(f"evaluation time over {len(times)} evaluations: median {statistics.median(times):.1f} s, "
                     f"p90 {_pct(times, 0.9):.1f} s, max {max(times):.1f} s; {under}/{len(times)} under 20 s; "
                     f"total {sum(r.get('wall_s', 0) for r in results) / 60:.1f} min (fitting included)")
    cpu = [r["phase_cpu_s"] for r in results if r.get("phase_cpu_s")]
    if cpu:  # what an evaluation costs whatever the load: both workers' CPU seconds per phase
        lines.append("workers' CPU per phase, median (max): " + ", ".join(
            f"{p} {statistics.median(c.get(p, 0) for c in cpu):.1f} s ({max(c.get(p, 0) for c in cpu):.1f})"
            for p in ("setup", "correctness", "timing", "quality")))
    return "\n".join(lines)


def load_or_bias(results: list[dict]) -> list[str]:
    """Copies timed outside the band, split by their CPU-seconds speedup (checks.cpu_speedup):
    inside the band, both sides did the same work and the wall clock measured the load (a
    core shared with other processes); outside it, one side did more work: a bias to find."""
    off = [r for r in results if r["outcome"] in ("same_outside_band", "faster", "slower") and r.get("cpu_speedup")]
    if not off:
        return []
    bias = [r for r in off if not BAND[0] <= r["cpu_speedup"]["speedup"] <= BAND[1]]
    text = (f"\n{len(off)} copies timed outside [{BAND[0]}, {BAND[1]}] with a CPU-seconds speedup: "
            f"{len(off) - len(bias)} of them within the band in CPU seconds (the load), {len(bias)} outside")
    return [text + (": " + ", ".join(f"level {r['level']} #{r['number']} {r['cpu_speedup']['speedup']:.2f}"
                                    for r in bias) if bias else "")]


def write_json(path: Path, data) -> None:
    """Atomic: a kill mid-write leaves the old file, never half of one."""
    import json
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run(tasks: list, out: Path | None, work_root: Path, eval_overrides: dict, jobs: int, previous: list[dict],
        device: str = "cpu", echo=print) -> list[dict]:
    """Evaluate every task not already in `previous`; `out` is rewritten after each result."""
    done = {r["id"] for r in previous}
    results = list(previous)
    lock = threading.Lock()
    todo = spread_order([t for t in tasks if t.id not in done])
    if previous:
        echo(f"resuming: {len(done)} done, {len(todo)} to go")

    def one(task) -> None:
        rec = evaluate_copy(task, work_root / task.id, eval_overrides, device)
        with lock:
            results.append(rec)
            if out is not None:
                write_json(out, {"config": {"eval": eval_overrides, "device": device}, "results": results})
            echo(f"[{len(results)}/{len(done) + len(todo)}] level {task.level} {task.name}: {rec['outcome']} "
                 f"{rec.get('speedup') or ''} ({rec['wall_s']:.0f} s) {(rec.get('reason') or '')[:160]}")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE), help="an upstream KernelBench checkout")
    ap.add_argument("--levels", default="1,2,3")
    ap.add_argument("--tasks", default=None, help="task numbers within each level: 1,5,19 or 1-20")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", dest="out", default=None, help="results file, rewritten as each task finishes")
    ap.add_argument("--resume", action="store_true", help="skip the tasks already in the --json file")
    ap.add_argument("--work-dir", default=None, help="fitted tasks and copies (default: next to --json, or a "
                                                     "temporary folder)")
    ap.add_argument("--quick", action="store_true", help=f"fewer trials and timed rounds: {QUICK}")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        suite = Path(args.suite)
        if not suite.is_dir():
            print(f"no KernelBench checkout at {suite}: nothing to do (give its path)")
            return 0
        if args.jobs < 1:
            raise UserInputError(f"--jobs must be at least 1 (got {args.jobs})")
        if args.resume and not args.out:
            raise UserInputError("--resume needs --json FILE (the results to resume from)")
        tasks = select_tasks(suite, parse_levels(args.levels), args.tasks)
        out = Path(args.out) if args.out else None
        previous = load_previous(out) if args.resume and out.exists() else []
        import tempfile

        work = Path(args.work_dir) if args.work_dir else (out.with_suffix(".work") if out else
                                                          Path(tempfile.mkdtemp(prefix="kopt-copies-")))
        results = run(tasks, out, work, QUICK if args.quick else {}, args.jobs, previous, args.device)
    except KoptError as e:
        print(f"kernelbench_copies: {e}", file=sys.stderr)
        return 2
    print()
    print(table(results))
    return 0 if all(r["outcome"] in GOOD for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
