"""A recipe switch that cannot act without a companion setting fails when the config is built, as
one line naming the missing piece, not when a trainer is built or steps into training (issue 21
item 5): hints need a hint source, VCPO needs stale rollouts to correct."""
from __future__ import annotations

import json

import pytest

from kopt.rl_finetune.config import GRPOConfig
from kopt.rl_finetune.recipes.hints import StaticHints


def test_hints_without_a_source_is_a_one_line_config_error():
    with pytest.raises(ValueError) as e:
        GRPOConfig(hints=True)
    msg = str(e.value)
    assert "\n" not in msg and "hints=True needs hint_source" in msg and "--from-runs" in msg


def test_a_hint_source_can_be_a_dict_or_an_object_with_best_answer():
    cfg = GRPOConfig(hints=True, hint_source={"plan kernel k0": "m1 m2"})
    assert isinstance(cfg.hint_source, StaticHints) and cfg.hint_source.best_answer("plan kernel k0") == "m1 m2"
    hints = StaticHints({})
    assert GRPOConfig(hints=True, hint_source=hints).hint_source is hints
    with pytest.raises(ValueError, match="best_answer"):
        GRPOConfig(hints=True, hint_source=["m1 m2"])


def test_config_with_a_hint_source_stays_plain_json():
    cfg = GRPOConfig(hints=True, hint_source={"p": "a"})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["hints"] is True and d["hint_source"] == "StaticHints"
    assert isinstance(cfg.hint_source, StaticHints)  # to_dict leaves the config itself as it was


def test_vcpo_needs_stale_rollouts_to_correct():
    with pytest.raises(ValueError) as e:
        GRPOConfig(off_policy="vcpo")
    assert "\n" not in str(e.value) and "partial_rollouts" in str(e.value) and "dots" in str(e.value)
    assert GRPOConfig(off_policy="vcpo", partial_rollouts=True).off_policy == "vcpo"
    assert GRPOConfig(off_policy="vcpo", prompt_sampling="dots").off_policy == "vcpo"


def test_trainer_never_gets_a_hints_config_without_a_source():
    """The trainer no longer checks (the config did): a hints config it receives always has a source."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from kopt.rl_finetune import GRPOTrainer
    from kopt.rl_finetune.toy import toy_model
    from kopt.rl_finetune.toy_tasks import OrderTask, word_tokenizer

    task = OrderTask(seed=0)
    tok = word_tokenizer(task)
    cfg = GRPOConfig(max_steps=4, prompts_per_step=6, group_size=8, max_new_tokens=task.max_new_tokens,
                     pass_threshold=0.9, hints=True,
                     hint_source={p: task.answer(k) for k, p in enumerate(task.prompts)})
    trainer = GRPOTrainer(toy_model(tok, hidden=16, layers=1), task.reward, task.prompts, cfg, tokenizer=tok)
    hinted = [trainer.train_step()["hinted_groups"] for _ in range(4)]
    assert hinted[0] == 0 and sum(hinted) > 0  # once a prompt is seen to fail, its groups start from a hint


@pytest.mark.parametrize("setting, switch", [
    ({"d3s_keep": 0.3}, {"downsample": "d3s"}), ({"d3s_token_keep": 0.5}, {"downsample": "d3s"}),
    ({"replay_fraction": 0.5}, {"prompt_sampling": "dots"}), ({"over_provision": 2.0}, {"partial_rollouts": True}),
    ({"is_cap": 3.0}, {"off_policy": "vcpo", "partial_rollouts": True}), ({"max_group": 16}, {"budget": "knapsack"}),
    ({"min_group": 3}, {"budget": "gdro"})])
def test_a_recipe_setting_without_its_switch_is_an_error_not_ignored(setting, switch):
    with pytest.raises(ValueError) as e:
        GRPOConfig(**setting)
    name = next(iter(setting))
    assert "\n" not in str(e.value) and name in str(e.value) and "which is off" in str(e.value)
    cfg = GRPOConfig(**setting, **switch)
    assert getattr(cfg, name) == setting[name]
