"""The small planner's tokenizer and its output vocabulary (issue 21).

A word-level vocabulary made from the training tasks reads every operator the training tasks
never use as `<unk>`, so a policy cannot tell one held-out task from another (the closed-loop
study's held-out prompts were a third `<unk>`). Here the rule ids and the prompt's own words
stay whole tokens, and operator names are byte-pair pieces learned from the training tasks'
operators over the letters, digits and `_`: an operator never seen in training
(`convtranspose3d`) reads as pieces that were (`conv`, `transpose`, `3d`), never `<unk>`.

A plan is written only with rule ids, `;` and the end token: the other tokens are suppressed
in the model's generation config (`plan_only`), which every `generate` call applies -- the
trainer's sampling, `greedy_plan` and `kopt optimize --planner hf:` -- so an untrained policy
explores plans instead of spending its tokens on operator pieces.
"""
from __future__ import annotations

import string
from collections import Counter

from kopt.agent.proposers.planning.prompt import forward_ops, plan_words
from kopt.agent.proposers.rules.registry import rule_ids
from kopt.rl_finetune.toy import SPECIALS, vocab_tokenizer

PROMPT_WORDS = ("rules:", "|", "forward:", "plan:", ";", "unknown")
ALPHABET = string.ascii_lowercase + string.digits + "_"
END_OF_WORD = "</w>"


def learn_merges(words: list[str], vocab_size: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Byte-pair merges over `words` (each word's last letter carries END_OF_WORD), the most frequent pair first and
    ties broken by the pair itself: the same words give the same vocabulary in every process.
    (The `tokenizers` trainer breaks ties by hash order, so the planner, and every closed-loop
    figure, changed from run to run at the same seed.)"""
    counts = Counter(w for w in words if w)
    seqs = {w: (*w[:-1], w[-1] + END_OF_WORD) for w in counts}
    pieces = set(ALPHABET) | {c + END_OF_WORD for c in ALPHABET} | {p for seq in seqs.values() for p in seq}
    vocab, merges = [*SPECIALS, *sorted(pieces)], []
    while len(vocab) < vocab_size:
        pairs: Counter = Counter()
        for w, seq in seqs.items():
            for pair in zip(seq, seq[1:]):
                pairs[pair] += counts[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        vocab.append(a + b)
        seqs = {w: _merged(seq, a, b) for w, seq in seqs.items()}
    return vocab, merges


def _merged(seq: tuple[str, ...], a: str, b: str) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def subword_tokenizer(task_sources: list[str], vocab_size: int = 160):
    """Rule ids and prompt words whole; operators as BPE pieces learned from these tasks (no download)."""
    import transformers  # heavy optional dependency ([train])
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab, merges = learn_merges([op for src in task_sources for op in forward_ops(src)], vocab_size)
    tok = Tokenizer(models.BPE(vocab={p: i for i, p in enumerate(dict.fromkeys(vocab))}, merges=merges,
                               unk_token="<unk>", end_of_word_suffix=END_OF_WORD))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(SPECIALS))
    tok.add_tokens([*PROMPT_WORDS, *rule_ids()])  # matched whole, before the pieces
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>")


def word_tokenizer(task_sources: list[str]):
    """The first planner's word-level tokenizer (kept to compare against: unseen operators are <unk>)."""
    return vocab_tokenizer(plan_words(task_sources))


def plan_token_ids(tokenizer) -> list[int]:
    """The tokens a plan is written with: the rule ids, ';' and the end token."""
    ids = [tokenizer.convert_tokens_to_ids(w) for w in (*rule_ids(), ";")]
    return [i for i in ids if i != tokenizer.unk_token_id] + [tokenizer.eos_token_id]


def plan_only(model, tokenizer) -> None:
    """Suppress every token a plan is not written with, in the model's generation config (saved with it)."""
    keep = set(plan_token_ids(tokenizer))
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in keep]


def unknown_share(tokenizer, prompts: list[str]) -> float:
    """Share of the operator words of the prompts (between 'forward:' and '|') read as or with an <unk>."""
    words = [w for p in prompts for w in p.split("forward:")[-1].split("|")[0].split()]
    return sum(tokenizer.unk_token_id in tokenizer(w).input_ids for w in words) / max(1, len(words))
