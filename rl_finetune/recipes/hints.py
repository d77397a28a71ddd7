"""Privileged hints for prompts nothing solves yet (POPE / ADHint style).

A prompt whose every rollout fails gives GRPO no signal, however many rollouts it gets. Feeding
the start of a known good answer (the first lines of the best stored solution) after the prompt,
and letting the model continue from there, makes some rollouts pass, so the group disagrees and
the policy learns from its own tokens after the hint (the hint tokens themselves are not trained
on; the reward scores hint + continuation against the original prompt). The hint is a crutch:
its share of the answer shrinks as the prompt's own pass rate rises and is gone once the prompt
is solvable without it, and the whole schedule decays over training. Learning the end of an
answer given its start, then a shorter start, is a backward curriculum toward the full answer.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from kopt.agent.runs.store import Store, find_runs
from kopt.rl_finetune.kernel_prompts import from_runs as prompts_from_runs
from kopt.rl_finetune.kernel_prompts import prompt_key


def hint_fraction(pass_rate: float, step: int = 0, max_steps: int = 0, solved_at: float = 0.3,
                  full_below: float = 0.05, max_share: float = 0.5) -> float:
    """How much of the known answer to reveal, in [0, max_share]: `max_share` while the estimated pass rate is
    at most `full_below`, falling linearly to none at `solved_at` (the rest of the answer is always the
    policy's to find: that is what it learns from). Over training the schedule is held for the first half of
    `max_steps`, then decays linearly to 0 at the end (max_steps=0 turns that off), so nothing depends on a
    hint when training stops."""
    p = min(1.0, max(0.0, float(pass_rate)))
    if p >= solved_at:
        return 0.0
    by_rate = 1.0 if p <= full_below else (solved_at - p) / (solved_at - full_below)
    by_time = 1.0 if max_steps <= 0 else min(1.0, max(0.0, 2.0 * (1.0 - step / max_steps)))
    return max_share * by_rate * by_time


def hint_prefix(solution: Sequence, fraction: float) -> Sequence:
    """The first floor(fraction x len) units (characters of a string, items of a token list) of a solution,
    never all of it."""
    n = min(len(solution) - 1, math.floor(min(1.0, max(0.0, fraction)) * len(solution)))
    return solution[:max(0, n)]


class HintSource(Protocol):
    """Where known good answers come from: the best one for a prompt, or None."""

    def best_answer(self, prompt) -> Sequence | None: ...


class StaticHints:
    """Known answers given up front (a dict from prompt key to answer)."""

    def __init__(self, answers: dict):
        self.answers = answers

    def best_answer(self, prompt):
        return self.answers.get(prompt_key(prompt))


class StoreHints:
    """The best verified solution of each task in stored runs (the run store, `kopt train --from-runs`): the
    fastest correct candidate, by its mean measured speedup. `task_of(prompt)` maps a training prompt to its
    task file (None: no hint); `template` turns the code into the start of an answer in the expected format."""

    def __init__(self, run_dirs: Sequence[Path], task_of, template: str = "{code}"):
        self.task_of, self.template = task_of, template
        self.best = best_solutions(run_dirs)

    @classmethod
    def for_runs(cls, run_dirs: Sequence[Path], template: str = "{code}") -> StoreHints:
        """Hints for the prompts stored in the same runs (`kopt train --from-runs --hints`): each prompt's task
        is the one it was stored with."""
        task_by_prompt = {prompt_key(p.chat): p.task for p in prompts_from_runs(list(run_dirs))}
        return cls(run_dirs, task_of=lambda prompt: task_by_prompt.get(prompt_key(prompt)), template=template)

    def best_answer(self, prompt):
        task = self.task_of(prompt)
        code = None if task is None else self.best.get(str(Path(task).resolve()))
        return None if code is None else self.template.format(code=code)


def best_solutions(run_dirs: Sequence[Path]) -> dict[str, str]:
    """task path -> code of the candidate with the best mean speedup among its verified-correct evaluations."""
    best: dict[str, tuple[float, str]] = {}
    for given in run_dirs:
        for d in find_runs(given):
            store = Store.open_run_dir(d)
            try:
                for run in store.runs():
                    task = str(Path(run["target"] or "").resolve())
                    speed: dict[str, list[float]] = {}
                    for e in store.evaluations(run["id"]):
                        if e.result.get("correct") and e.verdict in ("faster", "same", "slower") and e.speedup:
                            speed.setdefault(e.candidate_id, []).append(float(e.speedup))
                    code = {c.id: c.code for c in store.candidates(run["id"])}
                    for cid, s in speed.items():
                        mean = sum(s) / len(s)
                        if cid in code and mean > best.get(task, (-math.inf, ""))[0]:
                            best[task] = (mean, code[cid])
            finally:
                store.close()
    return {t: c for t, (_, c) in best.items()}
