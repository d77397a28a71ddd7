"""A harder toy for the GRPO recipes: multi-token answers, and prompts that start out unsolvable.

Each prompt names a kernel; the answer is a "plan" of moves (m0, m1, ...), then the end token.
Every kernel has a secret plan: short (one move) for the easy kernels, longer for the hard ones.
An answer passes when its first moves are the kernel's plan. A random policy passes an easy
prompt now and then, but a hard prompt almost never, so plain GRPO sees all-fail groups there
(no signal) — the situation that rollout budgets, prompt selection and hints are meant for.
Answers are of uneven length (the policy decides when to stop), which partial rollouts use.

The reward comes as named parts: `plan` (1 for a passing answer), `format` (a small bonus for
an answer made of moves only). With `fallback=True` an extra move `torch`
passes any kernel for a smaller reward but is flagged `flawed` (the toy's `kernel: torch`).
`reward(..)` returns those dicts; `scalar_reward(..)` their sums; `shuffled_reward(..)` is the
control, with the batch's rewards randomly reassigned.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from kopt.rl_finetune.toy import shuffled, vocab_tokenizer

END = "</s>"
FALLBACK = "torch"


@dataclass
class PlanTask:
    easy: int = 3  # kernels whose plan is `easy_len` moves
    hard: int = 3  # kernels whose plan is `hard_len` moves
    easy_len: int = 1
    hard_len: int = 2
    moves: int = 4
    format_bonus: float = 0.1
    fallback: bool = False
    fallback_reward: float = 0.6
    seed: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        lengths = [self.easy_len] * self.easy + [self.hard_len] * self.hard
        self.plans = [[rng.randrange(self.moves) for _ in range(n)] for n in lengths]

    @property
    def kernels(self) -> int:
        return self.easy + self.hard

    @property
    def max_new_tokens(self) -> int:
        return max(self.easy_len, self.hard_len) + 1

    @property
    def prompts(self) -> list[str]:
        return [f"plan kernel k{k}" for k in range(self.kernels)]

    def is_hard(self, kernel: int) -> bool:
        return kernel >= self.easy

    def words(self) -> list[str]:
        return ["plan", "kernel", *(f"k{k}" for k in range(self.kernels)), *(f"m{m}" for m in range(self.moves)),
                FALLBACK]

    def kernel_of(self, prompt: str) -> int:
        return int(prompt.split()[2][1:])

    def answer(self, kernel: int) -> str:
        """The passing answer of a kernel (what a hint source knows)."""
        return " ".join(f"m{m}" for m in self.plans[kernel]) + f" {END}"

    def parts(self, prompt: str, completion: str) -> dict:
        body = completion.replace(END, " ").split()
        plan = [f"m{m}" for m in self.plans[self.kernel_of(prompt)]]
        moves_only = all(w.startswith("m") or w == FALLBACK for w in body)
        out = {"plan": 0.0, "format": self.format_bonus if (body and moves_only) else 0.0}
        if body[:len(plan)] == plan:
            out["plan"] = 1.0
        elif self.fallback and body[:1] == [FALLBACK]:
            out["plan"], out["flawed"] = self.fallback_reward, True
        return out

    def reward(self, prompts: list[str], completions: list[str]) -> list[dict]:
        return [self.parts(p, c) for p, c in zip(prompts, completions)]

    def scalar_reward(self, prompts: list[str], completions: list[str]) -> list[float]:
        return [sum(v for k, v in d.items() if k != "flawed") for d in self.reward(prompts, completions)]

    def shuffled_reward(self, seed: int = 0):
        return shuffled(self.scalar_reward, seed)

    def doomed(self, prompt, text: str) -> bool:
        """A prefix that can no longer pass: a word that is not a move before the plan is complete (a format
        check, no knowledge of the plan)."""
        words = text.split()[:max(self.easy_len, self.hard_len)]
        return any(not (w.startswith("m") or w == FALLBACK) for w in words)

    def solved_fraction(self, model, tokenizer, kernels: list[int] | None = None) -> float:
        """Share of kernels (all, or those given) whose greedy answer passes."""
        import torch

        kernels = list(range(self.kernels)) if kernels is None else kernels
        hits = 0
        model.eval()
        with torch.no_grad():
            for k in kernels:
                ids = torch.tensor([tokenizer(self.prompts[k]).input_ids], device=model.device)
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=self.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
                text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
                hits += self.parts(self.prompts[k], text)["plan"] == 1.0
        return hits / max(1, len(kernels))


def plan_tokenizer(task: PlanTask):
    """A word-level tokenizer over the task's words (no download)."""
    return vocab_tokenizer(task.words())
