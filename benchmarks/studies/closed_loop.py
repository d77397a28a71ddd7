"""Does training on kopt's own verified speedups make kopt plan better on tasks it never saw?
(issue 21 item 4)

    python benchmarks/studies/closed_loop.py [--tasks 34] [--heldout 8] [--steps 80] [--out runs/closed_loop]
    python benchmarks/studies/closed_loop.py ... --measure-only     # the cache warm-up: fit and measure only

Upstream level-1 and level-2 KernelBench tasks (`/work/shared/kernelbench`, fitted to this
machine) on which at least one rule applies are split by a fixed seed into training and
held-out tasks. Every (task, plan) of the plan space (1-2 distinct rules, in order) is
measured once through the evaluation cache; a small Llama (built from a config, a sub-word
tokenizer made here from the training tasks, so a held-out operator reads as known pieces; it
writes only rule ids) is first taught the rules' heuristic plan (300 steps of cross-entropy,
with prompts listing random rules besides the tasks' own: it then copies the first rule its
prompt lists, the one that applies first), then trained with GRPO (KL to that start, lr 3e-4,
sampling temperature 2 so a group's plans differ) on the training tasks' prompts with those
rewards.
On the held-out tasks, side by side: the untrained policy, the trained policy, uniform random
plans (exact expectation over the plan space), the rules' heuristic plan and the best plan of
the space (the ceiling).

Figures per arm: fast_1 (share of tasks whose top-1 plan is verified faster), the geomean
speedup of the top-1 plan (a plan that is not verified correct counts 1.0: the reference
stands), and the plans evaluated to reach the first verified win (in the arm's own order;
tasks with no winning plan in the space are left out and counted). Resumable: fits, the
evaluation cache and OUT/table.json keep everything measured; a rerun measures only what is
missing. Prints the table and writes OUT/results.json, OUT/curve.csv.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from kopt.agent.proposers.planning.plans import (
    NoOp,
    PlanStep,
    final_code,
    heuristic_plan,
    plan_space,
    render_plan,
    run_plan,
)
from kopt.agent.proposers.planning.prompt import plan_from_completion
from kopt.agent.proposers.rules.registry import apply, rule_ids
from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task
from kopt.rl_finetune.plan_tokenizer import unknown_share, word_tokenizer
from kopt.rl_finetune.planner import (
    PlanReward,
    PlanTask,
    distinct_prefix,
    greedy_plan,
    imitate_heuristic,
    plan_logprobs,
    planner_model,
    planner_tokenizer,
)
from kopt.sandboxes.eval_cache import EvalCache
from kopt.sandboxes.evaluator import EvalConfig

KERNELBENCH = Path("/work/shared/kernelbench")
QUICK_EVAL = dict(trials=3, rounds=10, max_timing_s=10.0, quality_seeds=4)


def candidate_tasks(root: Path, levels: list[int]) -> list[Path]:
    """Task files of the levels on which at least one rule makes a candidate."""
    out = []
    for level in levels:
        for path in sorted((root / f"level{level}").glob("*.py")):
            src = path.read_text()
            if any(not isinstance(apply(r, src, {}), NoOp) for r in rule_ids()):
                out.append(path)
    return out


def split(paths: list[Path], n: int, heldout: int, seed: int) -> tuple[list[Path], list[Path]]:
    rng = random.Random(seed)
    chosen = rng.sample(paths, min(n, len(paths)))
    return sorted(chosen[heldout:]), sorted(chosen[:heldout])


def fitted(path: Path, out: Path) -> PlanTask | None:
    name = f"{path.parent.name}_{path.stem}"
    res = fit_task(path, out / "fit" / name, FitConfig())
    if res.skipped:
        print(f"  skip {name}: {res.skipped}", file=sys.stderr)
        return None
    return PlanTask.from_path(Path(res.path), name)


def speedup_of(o: dict) -> float:
    return o["speedup"] if o.get("speedup") else 1.0


def measure_table(tasks: list[PlanTask], plans: list[list[PlanStep]], rewarder: PlanReward, out: Path) -> dict:
    """{task: {plan: outcome}} for the whole plan space, saved after every task (resumable)."""
    path = out / "table.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    for t in tasks:
        row = table.get(t.name, {})
        by_code = {o["code"]: o for o in row.values() if o.get("code")}
        for steps in plans:
            key = render_plan(steps)
            if key in row:
                continue
            code = final_code(run_plan(t.source, steps))
            sha = hashlib.sha256(code.encode()).hexdigest()[:20] if code else None
            if sha in by_code:  # another plan already made this code: its measurement stands for both
                row[key] = {**by_code[sha], "steps": [r.record() for r in run_plan(t.source, steps)]}
                continue
            o = rewarder.outcome(t, steps)
            row[key] = {"reward": o.reward, "verdict": o.verdict, "speedup": o.speedup, "code": o.code_sha,
                        "steps": o.steps}
            if o.code_sha:
                by_code[o.code_sha] = row[key]
            print(f"  {t.name:<50} {key:<58} {o.verdict or '-':<13} {o.speedup or '-'}", file=sys.stderr)
        table[t.name] = row
        path.write_text(json.dumps(table, indent=1))
    return table


class TableReward:
    """The training reward: each completion's plan looked up in the measured table (a plan
    outside it is measured live through the rewarder). Training buys no new evaluations."""

    def __init__(self, table: dict, tasks: list[PlanTask], rewarder: PlanReward):
        self.table, self.rewarder = table, rewarder
        self.by_prompt = {t.prompt: t for t in tasks}
        self.batches: list[dict] = []  # per call (one a step): how varied the sampled plans were

    def __call__(self, prompts, completions) -> list[float]:
        out, plans = [], []
        for prompt, text in zip(prompts, completions):
            task = self.by_prompt[prompt]
            steps = self.rewarder.plan_filter(plan_from_completion(text))
            row = self.table[task.name]
            key = render_plan(steps)
            plans.append((task.name, key))
            out.append(row[key]["reward"] if key in row else self.rewarder.outcome(task, steps).reward)
        self.batches.append(diversity(plans))
        return out


def diversity(plans: list[tuple[str, str]]) -> dict:
    """Collapse signs in a batch of (task, plan): distinct plans per task's group, the share of the
    batch's most common plan, and how many of the step's tasks got that same plan as their group's mode."""
    groups: dict[str, list[str]] = {}
    for task, plan in plans:
        groups.setdefault(task, []).append(plan)
    top, count = Counter(p for _, p in plans).most_common(1)[0]
    modes = Counter(Counter(g).most_common(1)[0][0] for g in groups.values())
    return {"distinct_per_group": statistics.fmean(len(set(g)) for g in groups.values()),
            "top_plan_share": count / len(plans), "top_plan": top,
            "tasks_sharing_mode": modes.most_common(1)[0][1] / len(groups)}


def arm_figures(order_by_task: dict[str, list[str]], table: dict) -> dict:
    """fast_1, geomean of the top-1 plan, plans to the first win, for plan orders per task."""
    wins, logs, firsts, no_win = 0, [], [], 0
    for task, order in order_by_task.items():
        top = table[task][order[0]]
        wins += top["verdict"] == "faster"
        logs.append(math.log(speedup_of(top)))
        pos = next((i + 1 for i, p in enumerate(order) if table[task][p]["verdict"] == "faster"), None)
        if pos is None:
            no_win += 1
        else:
            firsts.append(pos)
    n = len(order_by_task)
    return {"fast_1": wins / n, "geomean": math.exp(statistics.fmean(logs)),
            "plans_to_first_win": statistics.fmean(firsts) if firsts else None, "tasks_without_win": no_win}


def random_figures(tasks: list[str], table: dict) -> dict:
    """Uniform random plans, exactly: the expectation over the plan space (and over orders)."""
    fast, logs, firsts, no_win = [], [], [], 0
    for task in tasks:
        row = list(table[task].values())
        k, n = sum(o["verdict"] == "faster" for o in row), len(row)
        fast.append(k / n)
        logs.append(statistics.fmean(math.log(speedup_of(o)) for o in row))
        if k:
            firsts.append((n + 1) / (k + 1))  # expected position of the first win in a random order
        else:
            no_win += 1
    return {"fast_1": statistics.fmean(fast), "geomean": math.exp(statistics.fmean(logs)),
            "plans_to_first_win": statistics.fmean(firsts) if firsts else None, "tasks_without_win": no_win}


def train_geomean(model, tok, tasks: list[PlanTask], table: dict, rewarder: PlanReward) -> float:
    """The geomean speedup of the policy's greedy plan on the training tasks (a plan the table
    does not hold counts 1.0): what choosing a checkpoint may look at."""
    logs = []
    for t in tasks:
        top = rewarder.plan_filter(greedy_plan(model, tok, t.prompt))
        row = table[t.name].get(render_plan(top)) if top else None
        logs.append(math.log(speedup_of(row)) if row else 0.0)
    return math.exp(statistics.fmean(logs))


def policy_orders(model, tok, tasks: list[PlanTask], plans: list[list[PlanStep]], table: dict,
                  rewarder: PlanReward) -> dict[str, list[str]]:
    """Top-1 = the policy's greedy plan (measured if outside the space); then the space by log-probability."""
    out = {}
    for t in tasks:
        top = rewarder.plan_filter(greedy_plan(model, tok, t.prompt))
        key = render_plan(top) if top else "(empty plan)"
        if key not in table[t.name]:
            o = rewarder.outcome(t, top)
            table[t.name][key] = {"reward": o.reward, "verdict": o.verdict, "speedup": o.speedup, "code": o.code_sha,
                                  "steps": o.steps, "outside_space": True}
        lps = plan_logprobs(model, tok, t.prompt, plans)
        ranked = [render_plan(p) for _, p in sorted(zip(lps, plans), key=lambda x: -x[0])]
        out[t.name] = [key, *[p for p in ranked if p != key]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernelbench", type=Path, default=KERNELBENCH)
    ap.add_argument("--levels", default="1,2")
    ap.add_argument("--tasks", type=int, default=34, help="tasks drawn (train + held-out)")
    ap.add_argument("--names", default=None, help="comma-separated task files (LEVEL/FILE.py) to draw from instead "
                                                  "of every task a rule applies to (keeps a run's tasks fixed while "
                                                  "the rule book grows)")
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="the policy's initialisation and sampling")
    ap.add_argument("--split-seed", type=int, default=0, help="which tasks are held out")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--group-size", type=int, default=12)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--beta", type=float, default=0.04, help="KL penalty to the untrained policy (0: none)")
    ap.add_argument("--temperature", type=float, default=2.0,
                    help="GRPO's sampling temperature (the plans of a group differ more above 1)")
    ap.add_argument("--imitate-steps", type=int, default=300,
                    help="steps of imitating the rules' heuristic plan before GRPO (0: none)")
    ap.add_argument("--keep-best-on-train", action=argparse.BooleanOptionalAction, default=False,
                    help="the trained policy is the logged checkpoint (the warm start included) whose top-1 "
                         "plans score best on the training tasks (never on held-out ones)")
    ap.add_argument("--tokenizer", choices=("subword", "word"), default="subword",
                    help="word: the first run's word-level vocabulary (held-out operators it never saw read as <unk>)")
    ap.add_argument("--free-tokens", action="store_true",
                    help="let the policy write any token (the first run), not only rule ids, ';' and the end")
    ap.add_argument("--eval", choices=("quick", "full"), default="quick", help="quick: 3 trials, 10 rounds")
    ap.add_argument("--out", type=Path, default=Path("runs/closed_loop"))
    ap.add_argument("--only-measured", action="store_true",
                    help="measure nothing: train and compare on the tasks OUT/table.json already has (a quick look)")
    ap.add_argument("--measure-only", action="store_true",
                    help="fit and measure the table (the cache warm-up), then stop: no torch needed")
    args = ap.parse_args(argv)
    if not args.kernelbench.is_dir():
        print(f"closed_loop: no KernelBench checkout at {args.kernelbench} (--kernelbench DIR)", file=sys.stderr)
        return 2
    started = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    eval_cfg = EvalConfig(**QUICK_EVAL) if args.eval == "quick" else EvalConfig()
    if args.names:
        paths = [args.kernelbench / n.strip() for n in args.names.split(",") if n.strip()]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"closed_loop: no such task file: {', '.join(missing)}", file=sys.stderr)
            return 2
    else:
        paths = candidate_tasks(args.kernelbench, [int(x) for x in args.levels.split(",")])
    train_paths, held_paths = split(paths, args.tasks, args.heldout, args.split_seed)
    print(f"{len(paths)} tasks to draw from; train {len(train_paths)}, held-out {len(held_paths)}", file=sys.stderr)
    (out / "split.json").write_text(json.dumps({"train": [str(p) for p in train_paths],
                                                "heldout": [str(p) for p in held_paths]}, indent=1))
    train = [t for t in (fitted(p, out) for p in train_paths) if t]
    held = [t for t in (fitted(p, out) for p in held_paths) if t]
    cache = EvalCache()
    # the policy acts in the measured space: its plan is read as the first 2 distinct rules it names
    rewarder = PlanReward(train + held, eval_cfg, out / "solutions", cache, plan_filter=distinct_prefix(2))
    plans = plan_space(2)
    if args.only_measured:
        table = json.loads((out / "table.json").read_text()) if (out / "table.json").exists() else {}
        train, held = [t for t in train if t.name in table], [t for t in held if t.name in table]
        if not held and len(train) > 4:  # held-out tasks are measured last: a quick look holds out 3 others
            train, held = train[:-3], train[-3:]
        if not train or not held:
            print("closed_loop: --only-measured needs measured training and held-out tasks in OUT/table.json",
                  file=sys.stderr)
            return 2
    else:
        table = measure_table(train + held, plans, rewarder, out)
    measured_s = time.time() - started
    if args.measure_only:
        print(f"measured the table of {len(table)} tasks in {measured_s:.0f}s "
              f"({rewarder.cached.measured} evaluations, {rewarder.cached.hits} from the cache)", file=sys.stderr)
        return 0

    import torch  # heavy optional dependency ([train]): only the training half needs it

    from kopt.rl_finetune import GRPOConfig, GRPOTrainer

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a tiny model on a shared machine: more threads only wait on each other
    tok = planner_tokenizer(train) if args.tokenizer == "subword" else word_tokenizer([t.source for t in train])
    unk = {"train": unknown_share(tok, [t.prompt for t in train]),
           "heldout": unknown_share(tok, [t.prompt for t in held])}
    print(f"  {args.tokenizer} tokenizer, {len(tok)} tokens; operator words read with <unk>: train "
          f"{unk['train']:.0%}, held-out {unk['heldout']:.0%}", file=sys.stderr)
    model = planner_model(tok, seed=args.seed, plan_tokens_only=not args.free_tokens)
    untrained = policy_orders(model, tok, held, plans, table, rewarder)
    model.save_pretrained(out / "untrained_planner")  # for `kopt optimize --planner hf:OUT/untrained_planner`
    tok.save_pretrained(out / "untrained_planner")
    imitate_heuristic(model, tok, train, args.imitate_steps, seed=args.seed)
    imitated = policy_orders(model, tok, held, plans, table, rewarder) if args.imitate_steps > 0 else None
    curve = []
    holder = {}  # the trainer; with --keep-best-on-train, (training top-1 geomean, step, weights) of the best so far
    if args.keep_best_on_train:
        holder["best"] = (train_geomean(model, tok, train, table, rewarder), 0, copy.deepcopy(model.state_dict()))
    table_reward = TableReward(table, train, rewarder)

    def log(metrics: dict) -> None:
        on_train = train_geomean(holder["trainer"].model, tok, train, table, rewarder) \
            if args.keep_best_on_train else None
        if on_train is not None and on_train > holder["best"][0]:
            holder["best"] = (on_train, metrics.get("step"), copy.deepcopy(holder["trainer"].model.state_dict()))
        trained_now = policy_orders(holder["trainer"].model, tok, held, plans, table, rewarder)
        fig = arm_figures(trained_now, table)
        since = table_reward.batches[-log_every:]
        div = {k: statistics.fmean(b[k] for b in since) for k in ("distinct_per_group", "top_plan_share",
                                                                   "tasks_sharing_mode")}
        curve.append({"step": metrics.get("step"), "train_reward": metrics.get("reward"), "train_top1": on_train,
                      "entropy": metrics.get("entropy"), "kl": metrics.get("kl"), **div,
                      "heldout_geomean": fig["geomean"], "heldout_fast_1": fig["fast_1"],
                      "heldout_distinct_top1": len(set(v[0] for v in trained_now.values()))})
        c = curve[-1]
        print(f"  step {c['step']}: train reward {c['train_reward'] or 0:.3f}, entropy {c['entropy'] or 0:.3f}, "
              f"distinct plans/group {c['distinct_per_group']:.1f}, top plan share {c['top_plan_share']:.2f}; "
              f"held-out geomean {fig['geomean']:.3f}, fast_1 {fig['fast_1']:.2f}, "
              f"distinct top-1 {c['heldout_distinct_top1']}", file=sys.stderr)

    log_every = max(1, args.steps // 12)
    cfg = GRPOConfig(max_steps=args.steps, prompts_per_step=min(args.prompts_per_step, len(train)),
                     group_size=args.group_size, lr=args.lr, beta=args.beta, max_new_tokens=4, seed=args.seed,
                     temperature=args.temperature,
                     output_dir=str(out / "planner"), log_every=log_every)
    trainer = GRPOTrainer(model, table_reward, [t.prompt for t in train], tokenizer=tok,
                          config=cfg, callbacks=[log])
    holder["trainer"] = trainer
    t0 = time.time()
    trainer.train()
    train_s = time.time() - t0
    if args.keep_best_on_train:
        trainer.model.load_state_dict(holder["best"][2])
        trainer.model.save_pretrained(out / "planner")  # what `--planner hf:OUT/planner` then loads
    kept_step = holder["best"][1] if args.keep_best_on_train else args.steps
    trained = policy_orders(trainer.model, tok, held, plans, table, rewarder)
    heuristic = {t.name: [render_plan(heuristic_plan(t.source))] for t in held}
    for t in held:
        first = heuristic[t.name][0]
        heuristic[t.name] += [render_plan(p) for p in plans if render_plan(p) != first]
    # the best plan measured; a no-op or wrong candidate ranks as the reference (1.0), above a slower one
    best = {t.name: sorted(table[t.name], key=lambda p: -speedup_of(table[t.name][p])) for t in held}
    names = [t.name for t in held]
    arms = {"untrained policy": arm_figures(untrained, table),
            **({"imitated heuristic (before GRPO)": arm_figures(imitated, table)} if imitated else {}),
            "trained policy": arm_figures(trained, table),
            "uniform random plan": random_figures(names, table), "rules heuristic": arm_figures(heuristic, table),
            "exhaustive best (ceiling)": arm_figures(best, table)}
    arms["exhaustive best (ceiling)"]["plans_to_first_win"] = len(plans)  # it measures the whole space
    (out / "table.json").write_text(json.dumps(table, indent=1))
    total = time.time() - started
    results = {"train": [t.name for t in train], "heldout": names, "plans": [render_plan(p) for p in plans],
               "eval": args.eval, "eval_settings": eval_cfg.model_dump(mode="json", exclude={"hidden_paths"}),
               "steps": args.steps, "group_size": args.group_size, "prompts_per_step": args.prompts_per_step,
               "lr": args.lr, "beta": args.beta, "temperature": args.temperature,
               "imitate_steps": args.imitate_steps, "tokenizer": args.tokenizer,
               "keep_best_on_train": args.keep_best_on_train, "kept_step": kept_step,
               "unknown_operator_share": unk,
               "plan_tokens_only": not args.free_tokens, "seed": args.seed, "split_seed": args.split_seed,
               "parameters": sum(p.numel() for p in trainer.model.parameters()), "arms": arms,
               "top1": {"untrained": {k: v[0] for k, v in untrained.items()},
                        "trained": {k: v[0] for k, v in trained.items()}},
               "curve": curve, "cache": {"hits": rewarder.cached.hits, "measured": rewarder.cached.measured},
               "seconds": {"fit_and_measure": round(measured_s), "train": round(train_s), "total": round(total)}}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    cols = list(curve[0]) if curve else ["step"]
    (out / "curve.csv").write_text(",".join(cols) + "\n" + "".join(
        ",".join(str(c.get(k)) for k in cols) + "\n" for c in curve))
    print(f"\nheld-out tasks: {', '.join(names)}\n")
    print("| arm | fast_1 | geomean top-1 | plans to first win |\n|---|---|---|---|")
    for arm, f in arms.items():
        ptw = f"{f['plans_to_first_win']:.2f}" if f["plans_to_first_win"] is not None else "-"
        print(f"| {arm} | {f['fast_1']:.2f} | {f['geomean']:.3f} | {ptw} |")
    print(f"\nevaluations measured {rewarder.cached.measured}, served by the cache {rewarder.cached.hits}; "
          f"wall time {total:.0f}s (fit + measure {measured_s:.0f}s, training {train_s:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
