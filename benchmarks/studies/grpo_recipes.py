"""The GRPO recipes side by side on the two toys, with TRL's GRPOTrainer as a reference row.

For each recipe (a set of GRPOConfig switches) and each toy, one training run from the same tiny
model and seed; every `--eval-every` steps the greedy policy is scored (share of prompts it gets
right) and compared with a shuffled-reward control trained the same way. Printed: steps and
rollouts spent until the gap to the control first reaches the target, the final gap, all
rollouts spent (sampled completions, greedy ReMax rollouts included, replayed ones not), tokens
generated (greedy ones not counted) and wall time.

    python benchmarks/studies/grpo_recipes.py [--steps 60] [--seeds 1,2,3] [--target 0.5] [--recipes plain,remax,...]
                                      [--toys toy,plan,plan-fallback] [--skip-trl]

Toys: `toy` (kopt.rl_finetune.toy: one-token answers, 8 kernels x 8 configurations, noisy
rewards), `plan` (kopt.rl_finetune.toy_plans: several-token answers, half the prompts
unsolvable at first) and `plan-fallback` (the same with a flawed `torch` answer that passes
anything for less reward: only plain, fapo and TRL run there). With several `--seeds` a row shows
the mean final gap, the mean steps/rollouts over the seeds that reached the target and how many
did. Wall times depend on the machine and its load; compare rows of one run only.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings

RECIPES = {
    "plain": {},
    "median": {"advantage": "median"},
    "remax": {"advantage": "remax"},
    "gdpo": {"reward_norm": "gdpo"},
    "knapsack": {"budget": "knapsack"},
    "gdro": {"prompt_sampling": "gdro", "budget": "gdro"},
    "vade": {"prompt_sampling": "vade"},
    "dots": {"prompt_sampling": "dots"},
    "dots+vcpo": {"prompt_sampling": "dots", "off_policy": "vcpo"},
    "d3s": {"downsample": "d3s", "d3s_token_keep": 0.5},
    "april": {"partial_rollouts": True},
    "hints": {"hints": True},
    "fapo": {"flawed_penalty": 0.7},
}


def make_toy(name: str, seed: int):
    from kopt.rl_finetune.toy import ToyTask, toy_tokenizer
    from kopt.rl_finetune.toy_plans import PlanTask, plan_tokenizer

    if name == "toy":
        task = ToyTask(kernels=8, configs=8, seed=seed)
        return task, toy_tokenizer(task), task.reward, task.shuffled_reward(seed=seed + 2), task.optimal_fraction
    task = PlanTask(moves=3, fallback=name == "plan-fallback", seed=seed + 2)
    return task, plan_tokenizer(task), task.reward, task.shuffled_reward(seed=seed + 2), task.solved_fraction


def run_kopt(toy: str, recipe: dict, reward_fn, args, out: str) -> dict:
    from kopt.rl_finetune import GRPOConfig, GRPOTrainer
    from kopt.rl_finetune.recipes.hints import StaticHints
    from kopt.rl_finetune.toy import toy_model

    task, tok, _, _, score = make_toy(toy, args.seed)
    extra = {}
    if recipe.get("hints"):
        extra["hint_source"] = StaticHints({p: task.answer(k) for k, p in enumerate(task.prompts)}) \
            if toy != "toy" else StaticHints({p: f"c{task.best_config(k)}" for k, p in enumerate(task.prompts)})
    if recipe.get("partial_rollouts") and toy != "toy":
        extra["doomed"] = task.doomed
    max_new = getattr(task, "max_new_tokens", 1)
    cfg = GRPOConfig(max_steps=args.steps, prompts_per_step=6, group_size=6, lr=args.lr, max_new_tokens=max_new,
                     output_dir=out, log_every=args.eval_every, seed=args.seed,
                     pass_threshold=0.0 if toy == "toy" else 0.5, **recipe)
    curve: list[tuple[int, float, int]] = []
    holder: dict = {}

    def evaluate(metrics: dict) -> None:
        spent = sum(m["rollouts"] for m in holder["trainer"].history)
        curve.append((metrics["step"], score(holder["trainer"].model, tok), spent))

    started = time.perf_counter()
    trainer = holder["trainer"] = GRPOTrainer(toy_model(tok, hidden=32, layers=1, seed=args.seed), reward_fn,
                                              task.prompts, cfg, tokenizer=tok, callbacks=[evaluate], **extra)
    trainer.train()
    wall = time.perf_counter() - started
    return {"curve": curve, "wall_s": wall, "rollouts": sum(m["rollouts"] for m in trainer.history),
            "tokens": sum(m["generated_tokens"] for m in trainer.history)}


def run_trl(toy: str, reward_fn, args, out: str) -> dict:
    import datasets
    import transformers
    import trl

    from kopt.rl_finetune.toy import toy_model

    task, tok, _, _, score = make_toy(toy, args.seed)
    tok.padding_side = "left"
    model = toy_model(tok, hidden=32, layers=1, seed=args.seed)
    spent = [0]

    def reward(prompts, completions, **kw):
        r = reward_fn(list(prompts), list(completions))
        spent[0] += len(r)
        return [sum(v for k, v in x.items() if k != "flawed") if isinstance(x, dict) else x for x in r]

    curve: list[tuple[int, float, int]] = []

    class Evaluate(transformers.TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step % args.eval_every == 0 or state.global_step == args.steps:
                curve.append((state.global_step, score(model, tok), spent[0]))

    cfg = trl.GRPOConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=6 * 6, num_generations=6,
                         max_completion_length=getattr(task, "max_new_tokens", 1), learning_rate=args.lr,
                         seed=args.seed, beta=0.0, temperature=1.0, use_cpu=True, report_to="none",
                         logging_steps=args.steps, save_strategy="no", lr_scheduler_type="constant", warmup_steps=0,
                         weight_decay=0.0, disable_tqdm=True)
    data = datasets.Dataset.from_dict({"prompt": task.prompts * (6 * args.steps)})
    started = time.perf_counter()
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data, processing_class=tok,
                              callbacks=[Evaluate()])
    trainer.remove_callback(transformers.PrinterCallback)
    trainer.train()
    return {"curve": curve, "wall_s": time.perf_counter() - started, "rollouts": spent[0], "tokens": None}


def reached(curve, control: float, target: float):
    for step, frac, spent in curve:
        if frac - control >= target:
            return step, spent
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seeds", default="1", help="comma-separated seeds; a row averages over them")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--target", type=float, default=0.5, help="gap to the control that counts as learned")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--toys", default="toy,plan,plan-fallback")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-trl", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rows = []
    seeds = [int(x) for x in args.seeds.split(",")]
    for toy in args.toys.split(","):
        names = args.recipes.split(",") if toy != "plan-fallback" else ["plain", "fapo"]
        names += [] if args.skip_trl else ["trl GRPOTrainer"]
        results: dict[str, list] = {n: [] for n in names}
        for seed in seeds:
            args.seed = seed
            with tempfile.TemporaryDirectory() as tmp:
                control = run_kopt(toy, {}, make_toy(toy, seed)[3], args, f"{tmp}/control")["curve"][-1][1]
                for name in names:
                    reward = make_toy(toy, seed)[2]  # a fresh task: its own noise stream
                    if name in RECIPES:
                        res = run_kopt(toy, RECIPES[name], reward, args, f"{tmp}/{name}")
                    else:
                        res = run_trl(toy, reward, args, f"{tmp}/trl")
                    step, spent = reached(res["curve"], control, args.target)
                    results[name].append((step, spent, res["curve"][-1][1] - control, res["rollouts"], res["tokens"],
                                          res["wall_s"]))
                    print(f"done: {toy} {name} seed {seed}", flush=True)
        for name, runs in results.items():
            hit = [r for r in runs if r[0] is not None]
            rows.append((toy, name, statistics.fmean(r[0] for r in hit) if hit else None,
                         statistics.fmean(r[1] for r in hit) if hit else None, len(hit), len(runs),
                         statistics.fmean(r[2] for r in runs), statistics.fmean(r[3] for r in runs),
                         None if runs[0][4] is None else statistics.fmean(r[4] for r in runs),
                         statistics.fmean(r[5] for r in runs)))

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"GRPO recipes: {args.steps} steps, 6 prompts x 6 completions a step, target gap {args.target}, "
                    f"seeds {args.seeds}, {args.threads} thread(s); load average {os.getloadavg()[0]:.1f}")
    for col in ("toy", "recipe", "reached", "steps to target", "rollouts to target", "final gap", "rollouts",
                "tokens generated", "wall s"):
        t.add_column(col, justify="right")
    for toy, name, step, spent, n_hit, n, gap, rollouts, tokens, wall in rows:
        t.add_row(toy, name, f"{n_hit}/{n}", "-" if step is None else f"{step:.0f}",
                  "-" if spent is None else f"{spent:.0f}", f"{gap:.2f}", f"{rollouts:.0f}",
                  "-" if tokens is None else f"{tokens:.0f}", f"{wall:.1f}")
    Console(width=140).print(t)


if __name__ == "__main__":
    main()
