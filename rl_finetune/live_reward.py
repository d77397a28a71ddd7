"""Rewards measured live: each completion is applied to its prompt's code and the result is
evaluated by the sandboxed evaluator, in parallel on an executor (local threads or Ray).

An answer that cannot be applied (no code, a SEARCH block that does not match) scores like a
build failure, with no evaluation spent on it. Identical code for the same task is evaluated
once per run and its reward reused: a policy that keeps producing the same solution does not
buy fresh timing noise, and the evaluator's cost goes to new code.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from kopt.agent.errors import KoptError
from kopt.agent.proposers.prompting.edits import EditError, code_from_answer
from kopt.rl_finetune.kernel_prompts import KernelPrompt, prompt_key
from kopt.rl_finetune.recipes.flawed import flaws_of
from kopt.rl_finetune.rewards import RewardConfig, reward


class KernelReward:
    """A `reward_fn(prompts, completions)` for GRPOTrainer over KernelPrompts' chats."""

    def __init__(self, prompts: Sequence[KernelPrompt], executor, eval_cfg, workdir: Path,
                 reward_cfg: RewardConfig = RewardConfig(), flag_flaws: bool = False):
        self.by_key = {prompt_key(p.chat): p for p in prompts}
        self.flag_flaws = flag_flaws  # return {"reward", "flawed"} dicts for the flawed-positive penalty (FAPO)
        self.flaws: dict[tuple[str, str], list[str]] = {}
        self.executor, self.eval_cfg, self.reward_cfg = executor, eval_cfg, reward_cfg
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cache: dict[tuple[str, str], float] = {}
        self.verdicts: Counter = Counter()
        self.evaluations = 0

    def __call__(self, prompts: Sequence, completions: Sequence[str]) -> list:
        rewards: list[float | None] = [None] * len(completions)
        keys: dict[int, tuple[str, str]] = {}
        pending: dict[tuple[str, str], Future] = {}
        waiting: list[tuple[int, tuple[str, str]]] = []
        for i, (prompt, answer) in enumerate(zip(prompts, completions)):
            kp = self.by_key[prompt_key(prompt)]
            try:
                code, _ = code_from_answer(answer, kp.parent_code)
            except EditError:
                self.verdicts["no_code"] += 1
                rewards[i] = self.reward_cfg.failed
                continue
            key = keys[i] = (str(kp.task), hashlib.sha256(code.encode()).hexdigest()[:20])
            if key in self.cache:
                rewards[i] = self.cache[key]
                continue
            if key not in pending:
                solution = self.workdir / f"{key[1]}.py"
                solution.write_text(code)
                pending[key] = self.executor.submit(kp.task, solution, self.eval_cfg)
            waiting.append((i, key))
        for key, fut in pending.items():
            self.cache[key] = self._score(fut, key)
        for i, key in waiting:
            rewards[i] = self.cache[key]
        if self.flag_flaws:
            return [{"reward": float(r), "flawed": bool(self.flaws.get(keys.get(i)))} for i, r in enumerate(rewards)]
        return [float(r) for r in rewards]

    def _score(self, fut: Future, key: tuple[str, str] | None = None) -> float:
        self.evaluations += 1
        try:
            result = fut.result()
        except KoptError:
            raise  # a broken task or a missing toolchain: stop, do not train on it
        except Exception as e:  # noqa: BLE001 - a worker or Ray failure is one lost rollout, not a lost run
            self.verdicts[f"error: {type(e).__name__}"] += 1
            return self.reward_cfg.failed
        self.verdicts[result.get("verdict") or "unknown"] += 1
        if key is not None:
            self.flaws[key] = flaws_of(result)  # e.g. kernel: torch where a custom kernel was asked
        r = reward(result, self.reward_cfg)
        return self.reward_cfg.failed if r is None else r  # unverified: nothing measured, nothing earned
