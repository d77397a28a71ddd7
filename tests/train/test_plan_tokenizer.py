"""The small planner's tokenizer: an operator the training tasks never use must still be readable
(pieces, not <unk>), and the model writes only plan tokens, in training and when it plans."""
from __future__ import annotations

import pytest

from kopt.agent.proposers.planning.plans import PlanStep
from kopt.agent.proposers.planning.prompt import plan_from_completion, plan_prompt
from kopt.agent.proposers.rules.registry import rule_ids

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.{layer}(4, 8, 3)

    def forward(self, x):
        x = self.conv(x)
        x = torch.{act}(x)
        return x * 2.0


def get_inputs():
    return [torch.randn(2, 4, 8, 8, 8)]


def get_init_inputs():
    return []
'''
TRAIN = [TASK.format(layer=layer, act=act) for layer, act in
         (("Conv2d", "relu"), ("Conv3d", "sigmoid"), ("ConvTranspose2d", "tanh"))]
HELD_OUT = TASK.format(layer="ConvTranspose3d", act="softplus")  # neither word is in TRAIN


def test_unseen_operators_read_as_pieces_not_unknown():
    pytest.importorskip("transformers")
    from kopt.rl_finetune.plan_tokenizer import subword_tokenizer, unknown_share, word_tokenizer

    prompt = plan_prompt(HELD_OUT)
    assert unknown_share(word_tokenizer(TRAIN), [prompt]) > 0.3  # the first tokenizer: 2 of 3 operators unknown
    tok = subword_tokenizer(TRAIN)
    assert unknown_share(tok, [prompt]) == 0.0
    assert "<unk>" not in tok.convert_ids_to_tokens(tok(prompt).input_ids)
    every_rule = tok.convert_ids_to_tokens(tok(plan_prompt(HELD_OUT, rules=rule_ids())).input_ids)
    assert set(rule_ids()) <= set(every_rule)  # rule ids are whole tokens
    # two different held-out tasks read differently
    other = plan_prompt(TASK.format(layer="ConvTranspose3d", act="hardswish"))
    assert tok(prompt).input_ids != tok(other).input_ids


def test_a_plan_round_trips_through_the_tokenizer():
    pytest.importorskip("transformers")
    from kopt.rl_finetune.plan_tokenizer import subword_tokenizer
    from kopt.rl_finetune.planner import plan_text

    tok = subword_tokenizer(TRAIN)
    steps = [PlanStep(rule_ids()[0]), PlanStep(rule_ids()[-1])]
    ids = tok(plan_text(steps)).input_ids + [tok.eos_token_id]
    assert plan_from_completion(tok.decode(ids, skip_special_tokens=True)) == steps


def test_the_model_writes_only_plan_tokens():
    pytest.importorskip("transformers")
    import torch

    from kopt.rl_finetune.plan_tokenizer import plan_token_ids, subword_tokenizer
    from kopt.rl_finetune.planner import planner_model

    tok = subword_tokenizer(TRAIN)
    model = planner_model(tok, hidden=32, seed=1)
    ids = torch.tensor([tok(plan_prompt(HELD_OUT)).input_ids])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=4,
                         num_return_sequences=32, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    written = set(out[:, ids.shape[1]:].flatten().tolist()) - {tok.pad_token_id}
    assert written and written <= set(plan_token_ids(tok))
    free = planner_model(tok, hidden=32, seed=1, plan_tokens_only=False)
    out = free.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=4,
                        num_return_sequences=32, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    assert set(out[:, ids.shape[1]:].flatten().tolist()) - set(plan_token_ids(tok)) - {tok.pad_token_id}


def test_batched_plan_scores_match_one_at_a_time():
    pytest.importorskip("transformers")
    import torch

    from kopt.agent.proposers.planning.plans import plan_space
    from kopt.rl_finetune.plan_tokenizer import subword_tokenizer
    from kopt.rl_finetune.planner import plan_logprobs, plan_text, planner_model

    tok = subword_tokenizer(TRAIN)
    model = planner_model(tok, hidden=32, seed=2)
    prompt, plans = plan_prompt(HELD_OUT), plan_space(2)[:12]
    batched = plan_logprobs(model, tok, prompt, plans)
    for steps, got in zip(plans, batched):
        ids = torch.tensor([tok(prompt).input_ids + tok(plan_text(steps)).input_ids + [tok.eos_token_id]])
        n = len(tok(prompt).input_ids)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        want = float(logp.gather(-1, ids[0, 1:, None])[n - 1:, 0].sum())
        assert got == pytest.approx(want, abs=1e-4)


def test_the_same_tasks_give_the_same_tokenizer_in_every_process():
    """The planner's vocabulary must not depend on the process (hash seed): the trainer of
    `tokenizers` broke ties in hash order and made every closed-loop figure unrepeatable."""
    pytest.importorskip("transformers")
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; from kopt.rl_finetune.plan_tokenizer import subword_tokenizer; "
            "t = subword_tokenizer(json.loads(sys.stdin.read())); print(sorted(t.get_vocab().items()))")
    tasks = TRAIN + [TASK.format(layer=a, act=b) for a, b in (("Conv1d", "gelu"), ("Linear", "hardtanh"))]
    vocabs = {subprocess.run([sys.executable, "-c", code], input=json.dumps(tasks), text=True,
                             capture_output=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
              for seed in ("1", "2", "3")}
    assert len(vocabs) == 1
