"""Three more toy tasks for checking that each GRPO recipe learns beyond one reward shape.

`kopt.rl_finetune.toy` has a dense, noisy reward and one-token answers; `toy_plans` a prefix
reward. A recipe tuned on those can still fail on other shapes (a median baseline when most
rewards tie, a greedy baseline when the greedy answer is one noisy draw), so these differ on
purpose:

- `LockTask`: one token out of many; the reward is sparse and exact (1 for the prompt's key,
  0 for anything else), so most groups all-fail at first and a group that passes has one
  passing sample among ties.
- `OrderTask`: several tokens whose *order* is scored: each position earns its share only when
  it holds the step the prompt's secret order puts there (the right steps in the wrong order
  earn nothing, a repeated step voids the answer); solved means the whole order is right.
- `ChoiceTask`: several good answers per prompt, worth different amounts (plus timing noise);
  solved means the greedy answer is any of the good ones.

Every task has the same small interface: `prompts`, `words()`, `max_new_tokens`,
`reward(prompts, completions)`, `shuffled_reward(seed)` (the control: the batch's rewards
randomly reassigned), `answer(k)` (a passing answer, what a hint source knows),
`doomed(prompt, text)` (a prefix that can no longer pass) and `solved_fraction(model, tok)`
(share of prompts whose greedy answer passes). `word_tokenizer(task)` builds its tokenizer.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from kopt.rl_finetune.toy import shuffled, vocab_tokenizer

END = "</s>"


class WordTask:
    """What the three tasks share: prompts "<verb> <item> x<k>", answers made of `symbols`."""

    verb = "task"
    symbol = "a"
    items = 6

    @property
    def prompts(self) -> list[str]:
        return [f"{self.verb} x{k}" for k in range(self.items)]

    @property
    def symbols(self) -> list[str]:
        return [f"{self.symbol}{i}" for i in range(self.alphabet)]

    def words(self) -> list[str]:
        return [self.verb, *(f"x{k}" for k in range(self.items)), *self.symbols]

    def item_of(self, prompt: str) -> int:
        return int(prompt.split()[1][1:])

    def body(self, completion: str) -> list[str]:
        return completion.replace(END, " ").split()

    def reward(self, prompts: list[str], completions: list[str]) -> list[float]:
        return [self.score(self.item_of(p), self.body(c)) for p, c in zip(prompts, completions)]

    def shuffled_reward(self, seed: int = 0):
        """The control: the same rewards, randomly reassigned among the batch's completions."""
        return shuffled(self.reward, seed)

    def doomed(self, prompt, text: str) -> bool:
        """A prefix with a word that is not a symbol can no longer pass (a format check, no answer known)."""
        return any(w not in self.symbols for w in text.split()[:self.max_new_tokens])

    def answer(self, item: int) -> str:
        return " ".join(self.answer_words(item)) + f" {END}"

    def solved_fraction(self, model, tokenizer) -> float:
        """Share of prompts whose greedy answer passes."""
        import torch

        hits = 0
        model.eval()
        with torch.no_grad():
            for k, p in enumerate(self.prompts):
                ids = torch.tensor([tokenizer(p).input_ids], device=model.device)
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=self.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
                hits += self.passes(k, self.body(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
        return hits / self.items


@dataclass
class LockTask(WordTask):
    """Sparse: the prompt's key earns 1, anything else 0."""

    items: int = 6
    alphabet: int = 10
    seed: int = 0
    verb = "open"
    symbol = "key"
    max_new_tokens = 1

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.keys = [rng.randrange(self.alphabet) for _ in range(self.items)]

    def answer_words(self, item: int) -> list[str]:
        return [f"key{self.keys[item]}"]

    def score(self, item: int, body: list[str]) -> float:
        return 1.0 if body[:1] == self.answer_words(item) else 0.0

    def passes(self, item: int, body: list[str]) -> bool:
        return self.score(item, body) == 1.0


@dataclass
class OrderTask(WordTask):
    """Order-dependent: `length` steps, each position worth 1/length when it holds the right step."""

    items: int = 6
    alphabet: int = 4
    length: int = 2
    seed: int = 0
    verb = "order"
    symbol = "s"

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.orders = [rng.sample(range(self.alphabet), self.length) for _ in range(self.items)]

    @property
    def max_new_tokens(self) -> int:
        return self.length

    def answer_words(self, item: int) -> list[str]:
        return [f"s{s}" for s in self.orders[item]]

    def score(self, item: int, body: list[str]) -> float:
        """Each position's share when it holds the right step; an answer that repeats a step is not an order
        and earns nothing (else one step everywhere would earn a share on every prompt)."""
        steps = body[:self.length]
        if len(set(steps)) < len(steps):
            return 0.0
        return sum(a == b for a, b in zip(steps, self.answer_words(item))) / self.length

    def passes(self, item: int, body: list[str]) -> bool:
        return body[:self.length] == self.answer_words(item)


@dataclass
class ChoiceTask(WordTask):
    """Several good answers: `good` options per prompt worth 1.0, 0.8, 0.6, ... (plus noise); the rest 0."""

    items: int = 6
    alphabet: int = 12
    good: int = 3
    noise: float = 0.1
    seed: int = 0
    verb = "pick"
    symbol = "o"
    max_new_tokens = 1

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.values = []
        for _ in range(self.items):
            options = rng.sample(range(self.alphabet), self.good)
            self.values.append({f"o{o}": 1.0 - 0.2 * rank for rank, o in enumerate(options)})
        self.noise_rng = random.Random(self.seed + 1)

    def answer_words(self, item: int) -> list[str]:
        return [max(self.values[item], key=self.values[item].get)]

    def score(self, item: int, body: list[str]) -> float:
        value = self.values[item].get(body[0], 0.0) if body else 0.0
        return value + self.noise_rng.gauss(0.0, self.noise)

    def passes(self, item: int, body: list[str]) -> bool:
        return bool(body) and body[0] in self.values[item]


TASKS = {"lock": LockTask, "order": OrderTask, "choice": ChoiceTask}


def word_tokenizer(task: WordTask):
    """A word-level tokenizer over the task's words, made here (no download)."""
    return vocab_tokenizer(task.words())
