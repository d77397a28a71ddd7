"""`rules` against torch.compile on upstream KernelBench levels 1 and 2, on this machine.

One run, per task (each fitted to this machine by `--fit auto`, as `kopt bench` does):
- eager: the reference's time per call (the evaluator's measurement);
- torch.compile: `torch.compile(Model)` against eager `Model`, timed by the same probe as
  `kopt bench`'s compile baseline (`TaskRunner._compile_baseline`);
- rules one-shot and rules with a search budget (`--budget`, 8): the bench's own task runs
  (`kopt bench --model rules --budget 1` / `--budget 8`), then each *returned* solution
  (the best verified-faster candidate, else the reference: never slower) and the best
  correct candidate (raw, faster or not) re-measured by a fresh `kopt eval` of that file
  against the fitted task, independent of the search's own measurements. The reference
  counts 1.0x without a measurement. A fresh evaluation that finds it wrong counts as
  wrong.
- bound (level 2): eager forward time over the time of its GEMM/conv modules alone
  (`kernelbench_cpu.gemm_bound`); above 1.5 the ops around the GEMM/conv hold more than a
  third of the time.

Per level: fast_1 / fast_1.5 / fast_2 and geomean over eager for torch.compile and for
rules (one-shot, budget) with and without the never-slower fallback; on level 2, how many
tasks have bound > 1.5 and on how many of those rules (budget, never slower) beats compile.
Each task's row is written to OUT/rows/<task>.json when it finishes (atomically), so a
killed run continues with --resume.

    python benchmarks/studies/rules_vs_compile.py [--suite ../shared/kernelbench] [--levels 1 2]
        [--tasks 1-100 | --every 5 | --sample 12 --seed 0] [--budget 8] [--jobs 1] [--out DIR] [--resume]

`--sample N` draws N tasks per level at random with `--seed` (0 unless given): a sample no
one picked, so the rules are measured on tasks they were not written for.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import zip_longest
from pathlib import Path

from kopt.agent.errors import KoptError
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.agent.search.estimate import OUTLIER_GAP, verified_faster
from kopt.agent.targets.kernelbench.size_probe import default_threads, run_probe
from kopt.benchmarks.bench_runner import BenchConfig, TaskRunner, write_json
from kopt.benchmarks.fastp import geomean, metrics
from kopt.benchmarks.suite import SuiteTask, find_tasks
from kopt.sandboxes.evaluator import EvalConfig
from kopt.sandboxes.executors import LocalExecutor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernelbench_cpu import gemm_bound  # noqa: E402 (a sibling study, run from the checkout)

SUITE = Path(__file__).resolve().parents[3] / "shared" / "kernelbench"


def fresh_eval(task: Path, solution_code: str, where: Path) -> dict:
    """`kopt eval TASK SOLUTION --json --fit none` in a new process: the independent measure."""
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(solution_code)
    p = subprocess.run([sys.executable, "-m", "kopt.agent.cli.app", "eval", str(task), str(where), "--json",
                        "--fit", "none"], capture_output=True, text=True, timeout=1800)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {"verdict": "error", "correct": False, "speedup": None,
                "reason": (p.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def choices(run_dir: Path) -> tuple[str | None, str | None, dict]:
    """(returned candidate or None for the reference, best correct candidate, codes) of a task
    run: the search's own answer (summary.json) when it ran, else the best verified-faster."""
    store = Store.open_run_dir(run_dir)
    try:
        cands = {c.id: c for c in store.candidates() if c.parent_ids}
        evals: dict[str, list[dict]] = {}
        for e in store.evaluations():
            evals.setdefault(e.candidate_id, []).append(e.result)
    finally:
        store.close()

    def med(cid: str) -> float:
        return statistics.median([r["speedup"] for r in evals[cid] if r.get("speedup")] or [0.0])

    ok = [c for c in cands if evals.get(c) and all(r.get("correct") and r.get("speedup") for r in evals[c])]
    raw = max(ok, key=med, default=None)
    summary = run_dir / "summary.json"
    if summary.exists() and "returned" in (s := json.loads(summary.read_text())):
        returned = s.get("best")
    else:
        floor = EvalConfig().noise_floor
        returned = max((c for c in ok if verified_faster(evals[c], floor, OUTLIER_GAP)), key=med, default=None)
    return returned, raw, {c: cands[c].code for c in cands}


def score(task: Path, run_dir: Path, label: str) -> dict:
    """The returned and the raw solution of one run, each re-measured by a fresh kopt eval."""
    if not (run_dir / STORE_FILE).exists():
        return {"speedup": None, "raw": None, "note": "no run"}
    returned, raw, code = choices(run_dir)
    out: dict = {"returned": "candidate" if returned else "reference"}
    fresh = {}
    for cid in dict.fromkeys(c for c in (returned, raw) if c):
        fresh[cid] = fresh_eval(task, code[cid], run_dir / "fresh" / f"{label}-{cid}.py")
    ok = lambda r: r.get("speedup") if r.get("correct") else None  # noqa: E731
    out["speedup"] = ok(fresh[returned]) if returned else 1.0
    out["raw"] = ok(fresh[raw]) if raw else None
    out["fresh_verdicts"] = {cid: r.get("verdict") for cid, r in fresh.items()}
    return out


def run_task(st: SuiteTask, out: Path, budget: int) -> dict:
    t0 = time.time()
    base = out / "runs"
    one = TaskRunner(BenchConfig(suite=str(st.path.parent), model="rules", budget=1, fit="auto"), base / "b1",
                     LocalExecutor(1))
    r1 = one.run(st)
    row = {"id": st.id, "level": st.level, "name": st.name, "status": r1.get("status"), "reason": r1.get("reason")}
    if r1.get("status") != "done":
        return {**row, "minutes": round((time.time() - t0) / 60, 1)}
    task = Path(r1["task_file"])
    comp = (r1.get("baselines") or {}).get("compile") or {}
    row.update(sizes=(r1.get("fit") or {}).get("sizes"), eager_ms=(r1.get("eager") or {}).get("ms"),
               compile=comp.get("speedup") if comp.get("correct") else None,
               compile_note=comp.get("skipped") or (None if comp.get("correct") else "incorrect"))
    d1 = base / "b1" / "tasks" / st.id
    row["oneshot"] = score(task, d1, "oneshot")
    search = TaskRunner(BenchConfig(suite=str(out), model="rules", budget=budget, fit="none", baselines=[]),
                        base / f"b{budget}", LocalExecutor(1))
    rb = search.run(replace(st, path=task))
    row["search"] = score(task, base / f"b{budget}" / "tasks" / st.id, "search") if rb.get("status") == "done" \
        else {"speedup": None, "raw": None, "note": rb.get("reason")}
    if st.level == 2:
        try:
            row["bound"] = gemm_bound(task, default_threads())
        except Exception as e:  # noqa: BLE001 - a bound that cannot be timed is a note, not a lost row
            row["bound_note"] = f"{type(e).__name__}: {e}"[:160]
    row["minutes"] = round((time.time() - t0) / 60, 1)
    return row


def probe_row(row: dict, out: Path, budget: int, threads: int) -> dict | None:
    """The returned solutions (one-shot, budget) timed with eager and torch.compile in one
    process, in the same interleaved rounds (`size_probe.compile_baseline`): the evaluator's
    times include handing the outputs over, the compiler's do not, so this is the like-for-like
    check of the table's comparison. None when neither run returned a candidate or its files
    are gone."""
    solutions = {}
    for label, run in (("oneshot", "b1"), ("search", f"b{budget}")):
        if row.get(label, {}).get("returned") != "candidate":
            continue
        run_dir = out / "runs" / run / "tasks" / row["id"]
        if not (run_dir / STORE_FILE).exists():
            return None
        returned, _, code = choices(run_dir)
        if returned:
            solutions[label] = code[returned]
    task_dir = out / "runs" / "b1" / "tasks" / row["id"] / "task"
    task = next(task_dir.glob("*.py"), None) if task_dir.is_dir() else None
    if task is None:
        return None
    if not solutions:  # both returned the reference (1.0x): the compiler's probe is the row's own
        return {"compile": row.get("compile"), "eager_ms": None, "oneshot": 1.0, "search": 1.0}
    ev = EvalConfig()
    res = run_probe({"kind": "compile", "source": task.read_text(), "path": str(task), "device": "cpu",
                     "atol": ev.atol, "rtol": ev.rtol, "solutions": solutions}, threads, 900)
    if res.get("error") or not res.get("correct"):
        return {"note": res.get("error") or res.get("reason") or "torch.compile failed"}
    got = res.get("solutions") or {}
    return {"compile": res["speedup"], "eager_ms": res["eager_ms"],
            **{label: got[label].get("speedup") for label in got}}


def probe_table(rows: list[dict]) -> list[str]:
    """Geomean over eager of torch.compile and of the returned solutions, all timed in the same
    probe, per level, over the tasks probed: those whose runs are at hand (a task whose rules
    returned the reference counts 1.0x for rules, with the compiler's probe of its row)."""
    out = ["| level | tasks probed | torch.compile | rules one-shot | rules budget |", "|---|---:|---:|---:|---:|"]
    for level in sorted({r["level"] for r in rows}):
        done = [r for r in rows if r["level"] == level and r.get("status") == "done" and "compile" in
                (r.get("probe") or {})]
        if not done:
            continue
        comp = [r["probe"]["compile"] for r in done]
        one = [r["probe"].get("oneshot", 1.0) for r in done]
        srch = [r["probe"].get("search", 1.0) for r in done]
        cells = [f"{g:.2f}x" if (g := geomean(v for v in col if v)) else "-" for col in (comp, one, srch)]
        out.append(f"| {level} | {len(done)} | {' | '.join(cells)} |")
    return out


def level_table(rows: list[dict], budget: int) -> list[str]:
    out = ["| level | solutions | tasks | fast_1 | fast_1.5 | fast_2 | geomean over eager |", "|---|---|---:|---:|---:|"
           "---:|---:|"]
    sources = {"torch.compile": lambda r: r.get("compile"),
               "rules one-shot, never slower": lambda r: r["oneshot"]["speedup"],
               "rules one-shot, raw": lambda r: r["oneshot"]["raw"],
               f"rules budget {budget}, never slower": lambda r: r["search"]["speedup"],
               f"rules budget {budget}, raw": lambda r: r["search"]["raw"]}
    for level in sorted({r["level"] for r in rows}):
        done = [r for r in rows if r["level"] == level and r.get("status") == "done"]
        for label, get in sources.items():
            recs = [{"status": "done", "correct": get(r) is not None, "speedup": get(r)} for r in done]
            m = metrics(recs)
            fp = " | ".join(f"{m['fast_p'][k]:.0%}" if m["fast_p"][k] is not None else "-" for k in ("1", "1.5", "2"))
            g = geomean(x for r in done if (x := get(r)))
            out.append(f"| {level} | {label} | {len(done)} | {fp} | {f'{g:.2f}x' if g else '-'} |")
    return out


def task_table(rows: list[dict], budget: int) -> list[str]:
    x = lambda v: f"{v:.2f}x" if v else "-"  # noqa: E731
    out = [f"| task | eager ms | torch.compile | rules one-shot (raw) | rules budget {budget} (raw) | bound | min |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("status") != "done":
            out.append(f"| {r['id']} | {r.get('status')}: {(r.get('reason') or '')[:60]} | | | | | |")
            continue
        o, s = r["oneshot"], r["search"]
        out.append(f"| {r['id']} | {r['eager_ms']:.3f} | {x(r['compile']) if r['compile'] else r['compile_note']} "
                   f"| {x(o['speedup'])} ({x(o['raw'])}) | {x(s['speedup'])} ({x(s['raw'])}) "
                   f"| {x(r.get('bound'))} | {r['minutes']} |")
    return out


def around_gemm(rows: list[dict]) -> str:
    heavy = [r for r in rows if r["level"] == 2 and r.get("status") == "done" and (r.get("bound") or 0) > 1.5]
    wins = [r for r in heavy if (r["search"]["speedup"] or 0) > (r.get("compile") or 0)]
    probed = [r["probe"] for r in heavy if "compile" in (r.get("probe") or {})]
    alike = sum((p.get("search") or 0) > (p.get("compile") or 0) for p in probed)
    return (f"level-2 tasks whose ops around the GEMM/conv hold more than a third of the time (bound > 1.5): "
            f"{len(heavy)}; rules (budget, never slower) ahead of torch.compile on {len(wins)} of them"
            + (f"; timed like torch.compile (--probe), on {alike} of the {len(probed)} probed" if probed else ""))


def tables(rows: list[dict], budget: int, head: str) -> list[str]:
    minutes = sum(r.get("minutes") or 0 for r in rows)
    probed = probe_table(rows)
    same = ["Timed like torch.compile (the returned solutions in the compiler's probe; --probe):", "", *probed, ""] \
        if len(probed) > 2 else []
    return [f"{head}; {minutes:.0f} task-minutes in all", "", *level_table(rows, budget), "", around_gemm(rows), "",
            *same, *task_table(rows, budget)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=SUITE)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tasks", default=None, help="problem numbers or names, e.g. 1-20 or 3,17 (as kopt bench)")
    ap.add_argument("--every", type=int, default=1, help="a fixed sample: every N-th task of each level")
    ap.add_argument("--sample", type=int, default=None, help="N tasks per level drawn at random with --seed")
    ap.add_argument("--seed", type=int, default=0, help="the seed of --sample")
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=1, help="tasks at a time")
    ap.add_argument("--out", type=Path, default=Path("runs/rules_vs_compile"))
    ap.add_argument("--resume", action="store_true", help="keep finished rows in OUT/rows")
    ap.add_argument("--report", action="store_true", help="only print the tables of the rows in OUT/rows so far")
    ap.add_argument("--probe", action="store_true", help="time the returned solutions of the rows in OUT/rows "
                    "(whose runs are in OUT/runs) beside torch.compile in one process; adds `probe` to each row")
    a = ap.parse_args()
    if a.probe:
        for f in sorted((a.out / "rows").glob("*.json")):
            row = json.loads(f.read_text())
            if row.get("status") == "done" and "probe" not in row:
                got = probe_row(row, a.out, a.budget, default_threads())
                if got is not None:
                    write_json(f, {**row, "probe": got})
                    print(f"{row['id']}: {got}", file=sys.stderr, flush=True)
        return
    if a.report:
        rows = [json.loads(f.read_text()) for f in sorted((a.out / "rows").glob("*.json"))]
        rows.sort(key=lambda r: (r["level"], int(r["name"].split("_")[0]) if r["name"][0].isdigit() else 0))
        print("\n".join(tables(rows, a.budget, f"{len(rows)} finished task(s), budget {a.budget}")))
        return
    if not a.suite.is_dir():
        sys.exit(f"no KernelBench checkout at {a.suite}; pass --suite DIR")
    try:
        per_level = [find_tasks(a.suite, lv, a.tasks)[:: a.every] for lv in a.levels]
        if a.sample:
            draw = random.Random(a.seed)
            per_level = [sorted(draw.sample(group, min(a.sample, len(group))), key=lambda t: t.id)
                         for group in per_level]
        # levels interleaved, so a run stopped early has rows of each
        tasks = [t for group in zip_longest(*per_level) for t in group if t is not None]
    except KoptError as e:
        sys.exit(str(e))
    if (a.out / "rows").exists() and not a.resume:
        sys.exit(f"{a.out} holds an earlier run; add --resume to continue it, or pick another --out")
    (a.out / "rows").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # the code measured is HEAD when the run starts (others may commit while it runs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"

    def one(st: SuiteTask) -> dict:
        path = a.out / "rows" / f"{st.id}.json"
        if path.exists():
            return json.loads(path.read_text())
        for sub in (a.out / "runs").glob(f"b*/tasks/{st.id}"):  # a half-done task starts over
            shutil.rmtree(sub)
        row = run_task(st, a.out, a.budget)
        write_json(path, row)
        print(f"{st.id}: {row.get('status')} in {row.get('minutes')} min", file=sys.stderr, flush=True)
        return row

    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(one, tasks))
    chosen = f", {a.sample} drawn with seed {a.seed}" if a.sample else ""
    lines = tables(rows, a.budget, f"{len(rows)} tasks (levels {', '.join(map(str, a.levels))}"
                   f"{f', every {a.every}th' if a.every > 1 else ''}{chosen}), budget {a.budget}; "
                   f"commit {commit} at the start, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; this run "
                   f"{(time.time() - t0) / 60:.0f} min wall")
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
