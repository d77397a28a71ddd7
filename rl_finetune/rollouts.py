"""Sampling groups of completions and scoring their tokens under the policy.

Completions keep their exact token ids (no decode/re-encode round trip), left-padded prompts
are followed by right-padded completions in one tensor, and a completion ends at its first
end-of-sequence token (included: stopping is a choice the model learns too).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kopt.agent.proposers.backends.hf_local import HFChat


@dataclass
class Rollouts:
    prompt_index: list[int]  # which prompt (index into the step's prompts) each completion answers
    input_ids: object  # [B, P+T] long: left-padded prompt, then the completion
    attention_mask: object  # [B, P+T]
    completion_mask: object  # [B, T] float: 1 on real completion tokens
    prompt_width: int  # P
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, sl: slice) -> Rollouts:
        return Rollouts(self.prompt_index[sl], self.input_ids[sl], self.attention_mask[sl],
                        self.completion_mask[sl], self.prompt_width, self.texts[sl])


def encode_prompt(tokenizer, prompt) -> list[int]:
    """Token ids of a prompt: a string as it is, or chat messages rendered exactly as `--model hf:` renders
    them when it proposes (so the trained model sees at inference the format it was trained on)."""
    if isinstance(prompt, str):
        return tokenizer(prompt).input_ids

    holder = _TokenizerHolder(tokenizer)
    text = HFChat.render(holder, list(prompt))
    return tokenizer(text, add_special_tokens=not getattr(tokenizer, "chat_template", None)).input_ids


@dataclass
class _TokenizerHolder:
    tokenizer: object


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def completion_mask_from(completion_ids, eos_ids: set[int]):
    """1 up to and including the first end-of-sequence token, 0 after it (generate's padding)."""
    import torch

    is_eos = torch.zeros_like(completion_ids, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= completion_ids == e
    ended_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~ended_before).float()


def sample(model, tokenizer, prompt_ids: Sequence[Sequence[int]], counts: Sequence[int], *, max_new_tokens: int,
           temperature: float, top_p: float, eos_ids: set[int], device) -> Rollouts:
    """counts[i] sampled completions of prompt i, in one batched `generate` call."""
    import torch

    index = [i for i, n in enumerate(counts) for _ in range(n)]
    ids, mask = left_pad([prompt_ids[i] for i in index], tokenizer.pad_token_id, device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                             top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, min_new_tokens=0,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos_ids) or None,
                             repetition_penalty=1.0, use_cache=True)
    out = out.clone()  # leave inference mode: these ids go through autograd-tracked forwards next
    width = ids.shape[1]
    completion = out[:, width:]
    cmask = completion_mask_from(completion, eos_ids)
    full_mask = torch.cat([mask, cmask.long()], dim=1)
    texts = tokenizer.batch_decode((completion * cmask.long() + tokenizer.pad_token_id * (1 - cmask.long())).tolist(),
                                   skip_special_tokens=True)
    return Rollouts(index, out, full_mask, cmask.to(device), width, texts)


def token_logprobs(model, rollouts: Rollouts, temperature: float, with_entropy: bool = False):
    """log pi(token) of every completion token ([B, T]) at the sampling temperature, and optionally the
    per-token entropy of the policy (detached; for logging)."""
    import torch

    ids, mask = rollouts.input_ids, rollouts.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    try:  # explicit positions: left padding must not shift where the prompt starts
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
    except TypeError:  # a model whose forward takes no position_ids
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    logits = logits[:, rollouts.prompt_width - 1:-1].float() / temperature
    targets = ids[:, rollouts.prompt_width:]
    logp = selective_log_softmax(logits, targets)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            logp_all = torch.log_softmax(logits, dim=-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def selective_log_softmax(logits, targets):
    """log_softmax(logits)[..., targets] without a second vocabulary-sized tensor: the chosen
    token's logit minus the row's logsumexp, one sequence at a time (a 7B model's vocabulary
    times a batch of completions no longer sits in memory twice)."""
    import torch

    rows = [row.gather(-1, t.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(row, dim=-1)
            for row, t in zip(logits, targets)]
    return torch.stack(rows)
