"""kopt's GRPOTrainer next to TRL's on the same tiny task, model, seed and number of steps.

The task is kopt.rl_finetune.toy (each prompt names a kernel; the reward is the noisy
log-speedup of the configuration token picked). Each trainer is run twice: on the real reward
and on the shuffled-reward control. Printed per trainer: mean reward over the last tenth of the
steps, the share of kernels whose greedy choice is the best configuration (trained, control,
gap), the step and seconds at which the trained run first reached the target gap over the
control (probed every --probe-every steps), completions per second and wall time of the
trained run. kopt runs with both advantage baselines (group mean/std and MC-GRPO median).

    python benchmarks/studies/grpo_vs_trl.py [--steps 300] [--seed 1] [--threads 1] [--gap 0.6] [--skip-trl]

The numbers depend on the machine and its load: compare rows from one run only.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings


def kopt_runner(advantage: str):
    def run(task, reward_fn, args, out: str) -> dict:
        from kopt.rl_finetune import GRPOConfig, GRPOTrainer
        from kopt.rl_finetune.toy import toy_model, toy_tokenizer

        tok = toy_tokenizer(task)
        model = toy_model(tok, seed=args.seed)
        cfg = GRPOConfig(max_steps=args.steps, prompts_per_step=task.kernels, group_size=args.group, lr=args.lr,
                         max_new_tokens=1, advantage=advantage, output_dir=out, log_every=args.probe_every,
                         seed=args.seed)
        curve: list[tuple[int, float, float]] = []
        started = time.perf_counter()
        trainer = None

        def probe(m: dict) -> None:
            curve.append((m["step"], time.perf_counter() - started, task.optimal_fraction(trainer.model, tok)))

        trainer = GRPOTrainer(model, reward_fn, task.prompts, cfg, tokenizer=tok, callbacks=[probe])
        history = trainer.train()
        wall = time.perf_counter() - started
        tail = history[-max(1, len(history) // 10):]
        return {"reward": sum(m["reward"] for m in tail) / len(tail),
                "optimal": task.optimal_fraction(trainer.model, tok), "wall_s": wall, "curve": curve,
                "completions": sum(m["completions"] for m in history)}

    return run


def run_trl(task, reward_fn, args, out: str) -> dict:
    import datasets
    import trl

    from kopt.rl_finetune.toy import toy_model, toy_tokenizer

    tok = toy_tokenizer(task)
    tok.padding_side = "left"
    model = toy_model(tok, seed=args.seed)
    rewards_seen: list[float] = []

    def reward(prompts, completions, **kw):
        r = reward_fn(list(prompts), list(completions))
        rewards_seen.extend(r)
        return r

    import transformers

    curve: list[tuple[int, float, float]] = []

    class Probe(transformers.TrainerCallback):
        def on_step_end(self, targs, state, control, model=None, **kw):
            if state.global_step % args.probe_every == 0:
                curve.append((state.global_step, time.perf_counter() - started, task.optimal_fraction(model, tok)))
                model.train()

    cfg = trl.GRPOConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=task.kernels * args.group,
                         num_generations=args.group, max_completion_length=1, learning_rate=args.lr, seed=args.seed,
                         beta=0.0, temperature=1.0, use_cpu=True, report_to="none", logging_steps=args.steps,
                         save_strategy="no", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                         disable_tqdm=True)
    data = datasets.Dataset.from_dict({"prompt": task.prompts * (args.steps + 1)})
    started = time.perf_counter()
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data, processing_class=tok,
                              callbacks=[Probe()])
    trainer.train()
    wall = time.perf_counter() - started
    per_step = task.kernels * args.group
    tail = rewards_seen[-max(per_step, per_step * (args.steps // 10)):]
    return {"reward": sum(tail) / len(tail), "optimal": task.optimal_fraction(trainer.model, tok), "wall_s": wall,
            "completions": len(rewards_seen), "curve": curve}


def time_to_gap(curve: list[tuple[int, float, float]], control: float, gap: float) -> tuple[str, str]:
    """(step, seconds) of the first probe where trained minus the final control reaches `gap`."""
    for step, seconds, optimal in curve:
        if optimal - control >= gap - 1e-9:
            return str(step), f"{seconds:.1f}"
    return "-", "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--group", type=int, default=8, help="completions per prompt")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--gap", type=float, default=0.6, help="the trained-vs-control gap to time")
    ap.add_argument("--probe-every", type=int, default=10, help="steps between greedy-choice probes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both trainers")
    ap.add_argument("--skip-trl", action="store_true")
    args = ap.parse_args()

    import torch

    from kopt.rl_finetune.toy import ToyTask

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    runners = {"kopt (group)": kopt_runner("group"), "kopt (median)": kopt_runner("median")}
    if not args.skip_trl:
        runners["trl"] = run_trl
    rows = []
    for name, fn in runners.items():
        with tempfile.TemporaryDirectory() as tmp:
            task = ToyTask(kernels=8, configs=8, seed=args.seed)
            trained = fn(task, task.reward, args, f"{tmp}/trained")
            task = ToyTask(kernels=8, configs=8, seed=args.seed)
            control = fn(task, task.shuffled_reward(seed=args.seed), args, f"{tmp}/control")
        rows.append((name, trained, control))
        print(f"done: {name}", flush=True)

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"GRPO on the toy task: 8 kernels x 8 configs, {args.group} completions/prompt, "
                    f"{args.steps} steps, seed {args.seed}, {args.threads} thread(s)")
    for col in ("trainer", "reward (last 10%)", "optimal: trained", "control", "gap", f"step to gap {args.gap}",
                f"s to gap {args.gap}", "completions/s", "wall s"):
        t.add_column(col, justify="right")
    for name, tr, co in rows:
        step, secs = time_to_gap(tr["curve"], co["optimal"], args.gap)
        t.add_row(name, f"{tr['reward']:.3f}", f"{tr['optimal']:.3f}", f"{co['optimal']:.3f}",
                  f"{tr['optimal'] - co['optimal']:.3f}", step, secs, f"{tr['completions'] / tr['wall_s']:.0f}",
                  f"{tr['wall_s']:.1f}")
    Console(width=130).print(t)


if __name__ == "__main__":
    main()
