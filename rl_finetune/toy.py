"""A tiny prompt-conditional task for checking that a trainer learns, in seconds on a CPU.

Each prompt names a "kernel"; the completion picks a "configuration" token; the reward is that
configuration's log-speedup for that kernel plus timing noise (anything that is not a
configuration scores below every configuration). Knowing the best configuration of one kernel
says nothing about another's, so only a policy that reads the prompt can win. Its control is
the same reward with the batch's rewards shuffled, which keeps their distribution and removes
the signal: a trainer that learns must end clearly above its control. Used by the tests, the
trainer benchmark and anyone checking their own training setup.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

SPECIALS = ("<unk>", "<pad>", "<s>", "</s>")


@dataclass
class ToyTask:
    kernels: int = 8
    configs: int = 8
    noise: float = 0.3  # std of the timing noise on each reward
    margin: float = 0.5  # how much the best configuration of a kernel beats its runner-up, at least
    invalid_reward: float = -1.5
    seed: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.log_speedup = []
        for _ in range(self.kernels):
            row = [rng.gauss(0.0, 0.4) for _ in range(self.configs)]
            best = rng.randrange(self.configs)
            row[best] = max(v for i, v in enumerate(row) if i != best) + self.margin
            self.log_speedup.append(row)
        self.noise_rng = random.Random(self.seed + 1)

    @property
    def prompts(self) -> list[str]:
        return [f"tune kernel k{k} with config" for k in range(self.kernels)]

    def words(self) -> list[str]:
        return ["tune", "kernel", "with", "config", *(f"k{k}" for k in range(self.kernels)),
                *(f"c{c}" for c in range(self.configs))]

    def best_config(self, kernel: int) -> int:
        row = self.log_speedup[kernel]
        return max(range(self.configs), key=row.__getitem__)

    def kernel_of(self, prompt: str) -> int:
        return int(prompt.split()[2][1:])

    def config_of(self, completion: str) -> int | None:
        words = completion.split()
        if not words or not words[0].startswith("c") or not words[0][1:].isdigit():
            return None
        c = int(words[0][1:])
        return c if c < self.configs else None

    def reward(self, prompts: list[str], completions: list[str]) -> list[float]:
        out = []
        for p, c in zip(prompts, completions):
            cfg = self.config_of(c)
            if cfg is None:
                out.append(self.invalid_reward)
            else:
                out.append(self.log_speedup[self.kernel_of(p)][cfg] + self.noise_rng.gauss(0.0, self.noise))
        return out

    def shuffled_reward(self, seed: int = 0):
        """The control: the same rewards, randomly reassigned among the batch's completions."""
        return shuffled(self.reward, seed)

    def optimal_fraction(self, model, tokenizer) -> float:
        """Share of kernels whose greedy (argmax) first completion token is their best configuration."""
        import torch

        hits = 0
        model.eval()
        with torch.no_grad():
            for k, p in enumerate(self.prompts):
                ids = torch.tensor([tokenizer(p).input_ids], device=model.device)
                token = int(model(input_ids=ids).logits[0, -1].argmax())
                hits += tokenizer.convert_ids_to_tokens(token) == f"c{self.best_config(k)}"
        return hits / self.kernels


def toy_tokenizer(task: ToyTask):
    """A word-level tokenizer over the task's words, made here (no download)."""
    return vocab_tokenizer(task.words())


def toy_model(tokenizer, hidden: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised Llama of about 100k parameters (hidden 64, 2 layers)."""
    return tiny_llama(tokenizer, hidden, layers, max_positions=64, seed=seed)


# -- what every toy task and the planner share ------------------------------------------------

def shuffled(reward, seed: int = 0):
    """A reward function's control: the same rewards, randomly reassigned among the batch's
    completions (their distribution kept, the signal removed)."""
    rng = random.Random(seed)

    def fn(prompts: list[str], completions: list[str]) -> list[float]:
        r = reward(prompts, completions)
        rng.shuffle(r)
        return r

    return fn


def vocab_tokenizer(words: list[str]):
    """A word-level tokenizer over SPECIALS and `words`, made here (no download)."""
    import transformers  # heavy optional dependency ([train])
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate([*SPECIALS, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>")


def tiny_llama(tokenizer, hidden: int, layers: int, max_positions: int, seed: int = 0):
    """A randomly initialised Llama built from a config over `tokenizer`'s vocabulary."""
    import torch  # heavy optional dependency ([train])
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                                   max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                   tie_word_embeddings=False)
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(cfg)
