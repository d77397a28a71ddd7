"""The closed sets of values the `kopt` flags accept, as enums, so `--help` lists them and a
bad value is refused by the parser (exit 2) before any work starts.

The training names are spelled out here rather than imported from `kopt.rl_finetune`, so
`kopt --help` does not load the trainer; tests/cli/test_flag_choices.py checks they match.
"""
from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A flag value; `str(x)` is the value itself (what configs and messages want)."""

    def __str__(self) -> str:
        return self.value


def value(x):
    """The plain value of a flag: an enum member's value, anything else unchanged."""
    return x.value if isinstance(x, Enum) else x


Device = Choice("Device", {"cpu": "cpu", "cuda": "cuda"})
Executor = Choice("Executor", {"local": "local", "ray": "ray"})
Sandbox = Choice("Sandbox", {"local": "local", "docker": "docker"})
Fit = Choice("Fit", {"auto": "auto", "none": "none"})
Kind = Choice("Kind", {"kernelbench": "kernelbench", "program": "program", "repo": "repo"})
Advantage = Choice("Advantage", {"group": "group", "median": "median", "remax": "remax"})
RolloutBudget = Choice("RolloutBudget", {"fixed": "fixed", "knapsack": "knapsack", "gdro": "gdro"})
RewardNorm = Choice("RewardNorm", {"sum": "sum", "gdpo": "gdpo"})
PromptSampling = Choice("PromptSampling", {v: v for v in ("uniform", "gdro", "vade", "dots")})
Downsample = Choice("Downsample", {"d3s": "d3s"})
OffPolicy = Choice("OffPolicy", {"vcpo": "vcpo"})
LossAgg = Choice("LossAgg", {"token-mean": "token-mean", "sequence": "sequence"})
ReportTo = Choice("ReportTo", {v: v for v in ("none", "tensorboard", "wandb", "mlflow")})
ExportFormat = Choice("ExportFormat", {"trl": "trl", "dpo": "dpo", "sft": "sft"})
