"""Every GRPO recipe on every toy task, against a shuffled-reward control: the learning check that
the tests and the grpo_recipes study share.

A run trains a tiny Llama (hidden 32, one layer, built here) for a few dozen steps on one toy task
with one recipe and one seed, then scores the greedy policy (share of prompts it solves). The
control is the same training on the task's shuffled reward (same reward distribution, no signal);
the *learned gap* is trained minus control. Runs call `train_step` directly: no metrics file, no
plot, no saved model, so a run takes about a second on one idle CPU thread.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass

from kopt.rl_finetune.config import GRPOConfig
from kopt.rl_finetune.recipes.hints import StaticHints
from kopt.rl_finetune.toy import ToyTask, toy_model, toy_tokenizer
from kopt.rl_finetune.toy_tasks import TASKS, word_tokenizer
from kopt.rl_finetune.trainer import GRPOTrainer

# each recipe as the GRPOConfig switches that turn it on, with its defaults
# (FAPO is left out: nothing in these tasks is flagged flawed, so it would be plain GRPO; its own test is on
# toy_plans' fallback answer. Hints act on `order` only: a one-token answer has nothing to hint.)
RECIPES: dict[str, dict] = {
    "plain": {},
    "median": {"advantage": "median"},
    "remax": {"advantage": "remax"},
    "gdpo": {"reward_norm": "gdpo"},
    "knapsack": {"budget": "knapsack"},
    "gdro": {"prompt_sampling": "gdro", "budget": "gdro"},
    "vade": {"prompt_sampling": "vade"},
    "dots+vcpo": {"prompt_sampling": "dots", "off_policy": "vcpo"},
    "d3s": {"downsample": "d3s"},
    "april+vcpo": {"partial_rollouts": True, "off_policy": "vcpo"},
    "hints": {"hints": True},
}


@dataclass(frozen=True)
class Settings:
    """One run's size: small enough that recipes x tasks x seeds fit in a test."""

    steps: int = 40
    prompts_per_step: int = 4  # of 6 prompts: the prompt-selection recipes have a choice to make
    group_size: int = 6
    lr: float = 1e-2
    hidden: int = 32


class TuneTask:
    """`kopt.rl_finetune.toy.ToyTask` (dense, noisy log-speedups, a penalty for a non-configuration) in the
    suite's interface."""

    max_new_tokens = 1

    def __init__(self, seed: int = 0, kernels: int = 6, configs: int = 8):
        self.toy = ToyTask(kernels=kernels, configs=configs, seed=seed)
        self.items, self.prompts = kernels, self.toy.prompts
        self.reward, self.shuffled_reward = self.toy.reward, self.toy.shuffled_reward

    def answer(self, item: int) -> str:
        return f"c{self.toy.best_config(item)}"

    def doomed(self, prompt, text: str) -> bool:
        return False

    def tokenizer(self):
        return toy_tokenizer(self.toy)

    def solved_fraction(self, model, tokenizer) -> float:
        return self.toy.optimal_fraction(model, tokenizer)


SUITE = {**TASKS, "tune": TuneTask}


def make_task(name: str, seed: int):
    return SUITE[name](seed=seed)


def train_run(task_name: str, recipe: str | dict, seed: int, settings: Settings = Settings(),
              shuffled: bool = False) -> tuple[float, GRPOTrainer]:
    """Train one recipe on one task (or its shuffled control) from a fresh model; (solved fraction, trainer)."""
    task = make_task(task_name, seed)
    tok = task.tokenizer() if hasattr(task, "tokenizer") else word_tokenizer(task)
    switches = dict(RECIPES[recipe] if isinstance(recipe, str) else recipe)
    extra = {}
    if switches.get("hints"):
        switches["hint_source"] = StaticHints({p: task.answer(k) for k, p in enumerate(task.prompts)})
    if switches.get("partial_rollouts"):
        extra["doomed"] = task.doomed
    cfg = GRPOConfig(**{"max_steps": settings.steps, "prompts_per_step": settings.prompts_per_step,
                        "group_size": settings.group_size, "lr": settings.lr, "max_new_tokens": task.max_new_tokens,
                        "seed": seed, "pass_threshold": 0.5, "log_every": settings.steps, **switches})
    reward = task.shuffled_reward(seed + 100) if shuffled else task.reward
    trainer = GRPOTrainer(toy_model(tok, hidden=settings.hidden, layers=1, seed=seed), reward, task.prompts, cfg,
                          tokenizer=tok, **extra)
    for _ in range(settings.steps):
        trainer.train_step()
    return task.solved_fraction(trainer.model, tok), trainer


def run_summary(task_name: str, recipe: str, seed: int, settings: Settings = Settings(),
                shuffled: bool = False) -> dict:
    """`train_run` as plain values (what a worker process can send back): the solved fraction and, per step,
    the metrics that show whether a recipe acted."""
    solved, trainer = train_run(task_name, recipe, seed, settings, shuffled)
    keys = ("rollouts", "completions", "prompts", "replayed_groups", "carried_groups", "hinted_groups", "reward")
    return {"solved": solved, "history": [{k: m[k] for k in keys} for m in trainer.history]}


def _one_thread() -> None:
    import torch  # heavy: imported when a worker starts, not with this module

    torch.set_num_threads(1)  # a tiny model is fastest on one thread; the parallelism is across runs


def _run_job(job: tuple) -> dict:
    return run_summary(*job)


def run_many(jobs: list[tuple], processes: int | None = None) -> list[dict]:
    """`run_summary(*job)` for every job, spread over worker processes (one per core, at most `processes`),
    in order. Each worker trains one run at a time on one thread."""
    n = max(1, min(processes or os.cpu_count() or 1, len(jobs)))
    if n == 1:
        _one_thread()
        return [_run_job(j) for j in jobs]
    with multiprocessing.get_context("spawn").Pool(n, initializer=_one_thread) as pool:
        return pool.map(_run_job, jobs, chunksize=1)
