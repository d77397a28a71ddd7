"""Every GRPO recipe, with its defaults, on the toy suite: the learned gap (trained minus a
shuffled-reward control) per task, over several seeds.

The runs are `kopt.rl_finetune.toy_suite.train_run`, the same ones the learning tests make:
a tiny Llama (hidden 32, one layer), 40 steps of 4 prompts x 6 completions, lr 1e-2, one torch
thread. Tasks (kopt.rl_finetune.toy_tasks, plus `tune`, the older one-token toy): `lock`
(sparse: one key of ten earns 1), `order` (two steps whose order is scored by position),
`choice` (three good answers of twelve, worth 1.0/0.8/0.6, noisy). One control per task and
seed (plain GRPO on the shuffled reward) serves every recipe. Printed per recipe: the mean gap
on each task, the mean over all runs, the worst single run, and the mean wall time of a run.

    python benchmarks/studies/grpo_recipes.py [--tasks lock,order,choice] [--seeds 1,2,3]
                                              [--recipes plain,median,...] [--steps 40] [--set KEY=VALUE]

`--set` changes a setting of every run's GRPOConfig (say `--set advantage=median` to compare
one recipe's variant; numbers as JSON). Wall times depend on the machine and its load; compare
rows of one run only.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
import warnings

from kopt.rl_finetune.toy_suite import RECIPES, SUITE, Settings, train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="lock,order,choice", help=f"comma-separated, of {', '.join(SUITE)}")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--steps", type=int, default=Settings.steps)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a GRPOConfig setting for every run (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    tasks, recipes = args.tasks.split(","), args.recipes.split(",")
    seeds = [int(x) for x in args.seeds.split(",")]
    extra = {}
    for kv in args.set:
        key, _, value = kv.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    settings = Settings(steps=args.steps)
    gaps = {r: {t: [] for t in tasks} for r in recipes}
    wall = {r: [] for r in recipes}
    for t in tasks:
        for s in seeds:
            control, _ = train_run(t, "plain", s, settings, shuffled=True)
            for r in recipes:
                started = time.perf_counter()
                solved, _ = train_run(t, {**RECIPES[r], **extra}, s, settings)
                wall[r].append(time.perf_counter() - started)
                gaps[r][t].append(solved - control)
                print(f"done: {r} {t} seed {s}: solved {solved:.2f}, control {control:.2f}", flush=True)

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"GRPO recipes on the toy suite: learned gap (trained - shuffled control), {args.steps} steps, "
                    f"seeds {args.seeds}{', ' + ' '.join(args.set) if args.set else ''}; load average "
                    f"{os.getloadavg()[0]:.1f}")
    for col in ("recipe", *tasks, "mean", "worst run", "wall s / run"):
        t.add_column(col, justify="right")
    for r in recipes:
        every = [g for per in gaps[r].values() for g in per]
        t.add_row(r, *(f"{statistics.fmean(gaps[r][task]):.2f}" for task in tasks), f"{statistics.fmean(every):.2f}",
                  f"{min(every):.2f}", f"{statistics.fmean(wall[r]):.1f}")
    Console(width=140).print(t)


if __name__ == "__main__":
    main()
