"""Does retrieval from the skill library help the search at the same budget?

For each task of a small KernelBench-style suite (default `benchmarks/examples/level2_cpu/`)
this runs the real `kopt.agent.search.loop.Search` with the built-in `rules` proposer twice per
budget: with retrieval (the library ranks the skill each rule template applies and the best
ranked template is tried -- evaluated -- first) and without (templates in the order the
proposer declares them). It prints, per task and budget, the template each mode tried first
and the verified speedup each mode ended with (median over the best candidate's
evaluations; `-` when nothing verified faster than the reference).

Both modes share one sandboxed evaluator through a memo keyed by (candidate code, n-th
evaluation of that code): the same candidate gets the same measurements in both modes
(common random numbers), so a difference comes from what each mode chose to evaluate, not
from timing noise -- and every distinct candidate is measured only once per evaluation index.
The library is the curated one plus the user's (`--skills DIR`, default ~/.kopt/skills), so
evidence mined from earlier runs counts as recorded success. A last table shows retrieval
with recorded success from the other tasks of the suite (leave one out): what the runs
measured for each template on the other tasks is filed as evidence, as `kopt skills mine
--from-run` would, and the task is searched again at the smallest budget.

    python benchmarks/studies/skill_ablation.py [--tasks DIR] [--only a,b] [--budgets 3 5] [--skills DIR]
                                        [--max-timing 5] [--json OUT] [--memo FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
TASKS = HERE / "examples" / "level2_cpu"


def settings_key(cfg) -> str:
    """What a stored measurement depends on besides the code: the evaluator's settings and
    kopt's version (a memo from other settings or another kopt is not replayed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        kopt_version = version("kopt")
    except PackageNotFoundError:
        kopt_version = "unknown"
    settings = {k: v for k, v in cfg.model_dump(mode="json").items() if k != "hidden_paths"}
    text = json.dumps({"kopt": kopt_version, "eval": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class MemoEvaluator:
    """The sandboxed evaluator, shared by both modes: the k-th evaluation of a given code is
    measured once and replayed to the other mode. With `--memo FILE` measurements persist
    across invocations, keyed by `settings_key`; `replayed` counts the ones taken from the file."""

    def __init__(self, cfg_overrides: dict, memo_file: Path | None = None):
        from kopt.sandboxes.evaluator import evaluate

        self.evaluate, self.overrides, self.memo_file = evaluate, cfg_overrides, memo_file
        self.memo: dict[tuple[str, str, str, int], dict] = {}
        self.from_file: set[tuple[str, str, str, int]] = set()
        stored = json.loads(memo_file.read_text()) if memo_file is not None and memo_file.exists() else {}
        for settings, entries in stored.items():
            if not isinstance(entries, dict) or "|" in settings:  # an older memo without settings: not replayed
                continue
            for key, value in entries.items():
                task, code, k = key.rsplit("|", 2)
                self.memo[(settings, task, code, int(k))] = value
                self.from_file.add((settings, task, code, int(k)))
        self.calls: dict[tuple[str, str], int] = {}
        self.measured = self.replayed = 0

    def results(self, task: Path, code: str) -> list[dict]:
        """Every measurement taken so far of this code on this task."""
        h = hashlib.sha256(code.encode()).hexdigest()
        return [v for (_, t, c, _), v in sorted(self.memo.items()) if t == str(task) and c == h]

    def __call__(self, task_path: Path, solution_path: Path, cfg) -> dict:
        code = hashlib.sha256(Path(solution_path).read_bytes()).hexdigest()
        key = (str(task_path), code)
        k = self.calls[key] = self.calls.get(key, 0) + 1
        for name, value in self.overrides.items():
            setattr(cfg, name, value)
        mkey = (settings_key(cfg), *key, k)
        if mkey in self.from_file:
            self.replayed += 1
        if mkey not in self.memo:
            self.memo[mkey] = self.evaluate(task_path, solution_path, cfg)
            self.measured += 1
            if self.memo_file is not None:
                self._save()
        return self.memo[mkey]

    def _save(self) -> None:
        out: dict[str, dict] = {}
        for (settings, t, c, k), v in self.memo.items():
            out.setdefault(settings, {})[f"{t}|{c}|{k}"] = v
        self.memo_file.write_text(json.dumps(out))

    def new_mode(self) -> None:
        self.calls.clear()


def replayed_run(evaluator: MemoEvaluator, *args) -> dict:
    """run_mode, with how many of its evaluations came from the --memo file."""
    before = evaluator.replayed
    r = run_mode(*args, evaluator)
    r["replayed"] = evaluator.replayed - before
    return r


def mark(r: dict) -> str:
    sp = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
    return sp + (f" (replayed {r['replayed']})" if r.get("replayed") else "")


def run_mode(task: Path, retrieval: bool, budget: int, evaluator: MemoEvaluator) -> dict:
    from kopt.agent.core import new_id
    from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer
    from kopt.agent.runs.store import Store
    from kopt.agent.search.loop import Search, SearchConfig

    evaluator.new_mode()
    proposer = RulesProposer(retrieval=retrieval)
    plans = proposer.ordered_plans(task.read_text())
    with tempfile.TemporaryDirectory(prefix="kopt-ablation-") as tmp:
        store = Store(Path(tmp) / "run.sqlite")
        run_id = new_id()
        store.start_run(run_id, "ablation", str(task), {"retrieval": retrieval, "budget": budget})
        search = Search(task, proposer, store, run_id, Path(tmp), SearchConfig(budget=budget, novelty="tokens"),
                        evaluator=evaluator)
        best = search.run()
        speedup = search.mean_speedup(best) if best else None
        store.close()
    faster = best is not None and speedup is not None and speedup > 1.0 and best in search.cands \
        and search.cands[best].parent_ids
    return {"first": plans[0][2][0] if plans else None, "templates": len(plans),
            "speedup": speedup if faster else None, "evaluations": search.stats.evaluations,
            "best_skills": search.cands[best].skills if faster else []}


def evidence_from_other_tasks(task: Path, tasks: list[Path], evaluator: MemoEvaluator, folder: Path) -> int:
    """A user library holding what the other tasks' runs measured, filed the way
    `kopt skills mine --from-run` files it: a template's verified (all evaluations correct)
    median speedup of at least 1.1x becomes evidence on the skill it applies."""
    import statistics

    from kopt.agent.proposers.rules.cpu_codegen import generate
    from kopt.agent.proposers.rules.kernelbench_rules import FLAGS, plans
    from kopt.skills.library import Library
    from kopt.skills.schema import Evidence

    lib = Library.load(user_dir=folder, similarity="bm25")
    added = 0
    for other in tasks:
        if other == task:
            continue
        src = other.read_text()
        for _, runs, skills in plans(src):
            results = evaluator.results(other, generate(src, runs, FLAGS))
            speedups = [r["speedup"] for r in results if r.get("speedup")]
            if not results or not all(r.get("correct") for r in results) or not speedups:
                continue
            gain = statistics.median(speedups)
            if gain >= 1.1:
                lib.add_evidence(skills[0], Evidence(source="skill_ablation leave-one-out", task=other.stem,
                                                     speedup=round(gain, 3), method="eval"))
                added += 1
    return added


def short(skill: str | None) -> str:
    return {"cpu-fuse-norm-epilogue": "norm+elementwise", "cpu-fuse-elementwise-chain": "elementwise only"}.get(
        skill or "", skill or "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=Path, default=TASKS)
    ap.add_argument("--only", default="", help="comma-separated task stems")
    ap.add_argument("--budgets", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--skills", type=Path, default=None, help="user skill library (evidence counts as success)")
    ap.add_argument("--max-timing", type=float, default=5.0, help="seconds of timed rounds per evaluation")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--memo", type=Path, default=None, help="JSON file keeping measurements across invocations")
    args = ap.parse_args()
    if args.skills is not None:
        os.environ["KOPT_SKILLS_DIR"] = str(args.skills)
    tasks = sorted(args.tasks.glob("*.py"))
    if args.only:
        wanted = set(args.only.split(","))
        tasks = [t for t in tasks if t.stem in wanted]
    evaluator = MemoEvaluator({"max_timing_s": args.max_timing}, args.memo)
    started = time.time()
    load = os.getloadavg()[0]
    rows = []
    print("| task | budget | first (retrieval) | first (declared) | speedup with retrieval | speedup without |")
    print("|---|---|---|---|---|---|")
    for task in tasks:
        for budget in args.budgets:
            with_r = replayed_run(evaluator, task, True, budget)
            without = replayed_run(evaluator, task, False, budget)
            print(f"| {task.stem} | {budget} | {short(with_r['first'])} | {short(without['first'])} | "
                  f"{mark(with_r)} | {mark(without)} |", flush=True)
            rows.append({"task": task.stem, "budget": budget, "with_retrieval": with_r, "without": without})
    # retrieval with recorded success: evidence measured on the *other* tasks (leave one out)
    small = min(args.budgets)
    print("\n| task | budget | first (retrieval + evidence) | speedup (retrieval + evidence) | evidence entries |")
    print("|---|---|---|---|---|")
    from kopt.skills import prompt_sections as prompt

    for task in tasks:
        with tempfile.TemporaryDirectory(prefix="kopt-ablation-skills-") as folder:
            n = evidence_from_other_tasks(task, tasks, evaluator, Path(folder))
            os.environ["KOPT_SKILLS_DIR"] = folder
            prompt._library.cache_clear()
            r = replayed_run(evaluator, task, True, small)
            prompt._library.cache_clear()
        row = next(x for x in rows if x["task"] == task.stem and x["budget"] == small)
        row["with_evidence"] = r
        print(f"| {task.stem} | {small} | {short(r['first'])} | {mark(r)} | {n} |", flush=True)
    if args.skills is not None:
        os.environ["KOPT_SKILLS_DIR"] = str(args.skills)
    for budget in args.budgets:
        sel = [r for r in rows if r["budget"] == budget]
        wins = sum(1 for r in sel if (r["with_retrieval"]["speedup"] or 0) > (r["without"]["speedup"] or 0))
        losses = sum(1 for r in sel if (r["with_retrieval"]["speedup"] or 0) < (r["without"]["speedup"] or 0))
        differ = sum(1 for r in sel if r["with_retrieval"]["first"] != r["without"]["first"])
        print(f"budget {budget}: first template differs on {differ}/{len(sel)} tasks; retrieval better on {wins}, "
              f"worse on {losses}")
    if evaluator.replayed:
        print(f"(replayed N): N evaluations of that row were read from {args.memo}, measured by an earlier run "
              f"with the same evaluator settings and kopt version, not measured now")
    print(f"{evaluator.measured} sandboxed evaluations ({evaluator.replayed} replayed from --memo) in "
          f"{time.time() - started:.0f}s; load average at start "
          f"{load:.1f} on {os.cpu_count()} cores", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
