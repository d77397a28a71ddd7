"""Every GRPO recipe on every toy task, against a shuffled-reward control: the learning check that
the tests and the grpo_recipes study share.

A run trains a tiny Llama (hidden 32, one layer, built here) for a few dozen steps on one toy task
with one recipe and one seed, then scores the greedy policy (share of prompts it solves). The
control is the same training on the task's shuffled reward (same reward distribution, no signal);
the *learned gap* is trained minus control. Runs call `train_step` directly: no metrics file, no
plot, no saved model, so a run takes about a second on one CPU thread.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from kopt.rl_finetune.config import GRPOConfig
from kopt.rl_finetune.recipes.hints import StaticHints
from kopt.rl_finetune.toy import toy_model
from kopt.rl_finetune.toy_tasks import TASKS, word_tokenizer
from kopt.rl_finetune.trainer import GRPOTrainer

# each recipe as the GRPOConfig switches that turn it on, with its defaults
RECIPES: dict[str, dict] = {
    "plain": {},
    "median": {"advantage": "median"},
    "remax": {"advantage": "remax"},
    "gdpo": {"reward_norm": "gdpo"},
    "knapsack": {"budget": "knapsack"},
    "gdro": {"prompt_sampling": "gdro", "budget": "gdro"},
    "vade": {"prompt_sampling": "vade"},
    "dots": {"prompt_sampling": "dots"},
    "dots+vcpo": {"prompt_sampling": "dots", "off_policy": "vcpo"},
    "d3s": {"downsample": "d3s"},
    "april": {"partial_rollouts": True},
    "april+vcpo": {"partial_rollouts": True, "off_policy": "vcpo"},
    "hints": {"hints": True},
    "fapo": {"flawed_penalty": 0.5},
}


@dataclass(frozen=True)
class Settings:
    """One run's size: small enough that recipes x tasks x seeds fit in a test."""

    steps: int = 40
    group_size: int = 6
    lr: float = 1e-2
    hidden: int = 32


def make_task(name: str, seed: int):
    return TASKS[name](seed=seed)


def train_run(task_name: str, recipe: str | dict, seed: int, settings: Settings = Settings(),
              shuffled: bool = False) -> tuple[float, GRPOTrainer]:
    """Train one recipe on one task (or its shuffled control) from a fresh model; (solved fraction, trainer)."""
    task = make_task(task_name, seed)
    tok = word_tokenizer(task)
    switches = dict(RECIPES[recipe] if isinstance(recipe, str) else recipe)
    extra = {}
    if switches.get("hints"):
        switches["hint_source"] = StaticHints({p: task.answer(k) for k, p in enumerate(task.prompts)})
    if switches.get("partial_rollouts"):
        extra["doomed"] = task.doomed
    cfg = GRPOConfig(**{"max_steps": settings.steps, "prompts_per_step": task.items,
                        "group_size": settings.group_size, "lr": settings.lr, "max_new_tokens": task.max_new_tokens,
                        "seed": seed, "pass_threshold": 0.5, "log_every": settings.steps, **switches})
    reward = task.shuffled_reward(seed + 100) if shuffled else task.reward
    trainer = GRPOTrainer(toy_model(tok, hidden=settings.hidden, layers=1, seed=seed), reward, task.prompts, cfg,
                          tokenizer=tok, **extra)
    for _ in range(settings.steps):
        trainer.train_step()
    return task.solved_fraction(trainer.model, tok), trainer


def learned_gaps(recipes, tasks=tuple(TASKS), seeds=(1, 2, 3), settings: Settings = Settings(),
                 progress=None) -> dict[str, dict[str, list[float]]]:
    """gaps[recipe][task] = the learned gap (trained minus control) of each seed; one control per task and
    seed, shared by the recipes."""
    gaps: dict[str, dict[str, list[float]]] = {r: {t: [] for t in tasks} for r in recipes}
    for t in tasks:
        for s in seeds:
            control, _ = train_run(t, "plain", s, settings, shuffled=True)
            for r in recipes:
                solved, _ = train_run(t, r, s, settings)
                gaps[r][t].append(solved - control)
                if progress:
                    progress(r, t, s, solved, control)
    return gaps


def mean_gap(gaps: dict[str, list[float]]) -> float:
    return statistics.fmean(g for per_seed in gaps.values() for g in per_seed)
