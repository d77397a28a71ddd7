"""The CLI's choice enums name exactly what the code behind them accepts (they are spelled out
in agent/cli/choices.py so `kopt --help` does not import the trainer)."""
from __future__ import annotations

from kopt.agent.cli import choices
from kopt.rl_finetune import config as grpo
from kopt.rl_finetune.advantages import ADVANTAGES
from kopt.rl_finetune.budget import BUDGETS
from kopt.rl_finetune.export import FORMATS
from kopt.rl_finetune.losses import LOSS_AGGS
from kopt.rl_finetune.tracking import REPORT_TO


def names(enum) -> list[str]:
    return [m.value for m in enum]


def test_training_choices_match_the_trainer():
    assert names(choices.Advantage) == [*ADVANTAGES, "remax"]
    assert names(choices.RolloutBudget) == list(BUDGETS)
    assert names(choices.LossAgg) == list(LOSS_AGGS)
    assert names(choices.RewardNorm) == list(grpo.REWARD_NORMS)
    assert names(choices.PromptSampling) == list(grpo.PROMPT_SAMPLING)
    assert [None, *names(choices.Downsample)] == list(grpo.DOWNSAMPLE)
    assert [None, *names(choices.OffPolicy)] == list(grpo.OFF_POLICY)
    assert names(choices.ReportTo) == list(REPORT_TO)
    assert names(choices.ExportFormat) == list(FORMATS)


def test_run_choices_match_the_config_models():
    from typing import get_args

    from kopt.agent.search.optimize_config import RunOptions

    for flag, enum in (("device", choices.Device), ("executor", choices.Executor), ("sandbox", choices.Sandbox),
                       ("fit", choices.Fit)):
        assert list(get_args(RunOptions.model_fields[flag].annotation)) == names(enum), flag
    kinds = [a for a in get_args(RunOptions.model_fields["kind"].annotation) if a is not type(None)]
    assert list(get_args(kinds[0])) == names(choices.Kind)


def test_a_choice_prints_as_its_value():
    assert str(choices.Device.cuda) == "cuda" and choices.value(choices.Fit.none) == "none"
    assert choices.value("plain") == "plain"
