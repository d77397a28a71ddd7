"""The one place GRPO's knobs live (architecture §8). Plain values with defaults that work on a tiny
model; every field says what it does, TRL-style, so `GRPOConfig(**yaml)` needs no manual."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from kopt.rl_finetune.advantages import ADVANTAGES
from kopt.rl_finetune.budget import BUDGETS
from kopt.rl_finetune.losses import LOSS_AGGS
from kopt.rl_finetune.recipes.hints import StaticHints

REWARD_NORMS = ("sum", "gdpo")
PROMPT_SAMPLING = ("uniform", "gdro", "vade", "dots")
DOWNSAMPLE = (None, "d3s")
OFF_POLICY = (None, "vcpo")


def _opt(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


# a recipe's own setting -> (is its recipe on?, the switch to name): set while the switch is off, it would be
# silently ignored
SETTING_NEEDS = {
    "d3s_keep": (lambda c: c.downsample == "d3s", "downsample='d3s'"),
    "d3s_token_keep": (lambda c: c.downsample == "d3s", "downsample='d3s'"),
    "replay_fraction": (lambda c: c.prompt_sampling == "dots", "prompt_sampling='dots'"),
    "over_provision": (lambda c: c.partial_rollouts, "partial_rollouts=True"),
    "is_cap": (lambda c: c.off_policy == "vcpo", "off_policy='vcpo'"),
    "min_group": (lambda c: c.budget != "fixed", "budget='knapsack' or 'gdro'"),
    "max_group": (lambda c: c.budget != "fixed", "budget='knapsack' or 'gdro'"),
}


@dataclass
class GRPOConfig:
    max_steps: int = _opt(100, "optimizer steps to train for")
    prompts_per_step: int = _opt(8, "prompts drawn per step (cycling through a seeded shuffle of all prompts)")
    group_size: int = _opt(8, "completions per prompt (G); the 'median' advantage samples G+1")
    advantage: str = _opt("group", "baseline/scale of a group: 'group' (mean, std) or 'median' (MC-GRPO: "
                                   "median baseline, MAD scale, the median sample left out of the loss)")
    clip_eps: float = _opt(0.2, "PPO clip range of the probability ratio")
    beta: float = _opt(0.0, "weight of the KL penalty to the reference (initial) model; 0 needs no reference")
    loss_agg: str = _opt("token-mean", "'token-mean' (DAPO: every completion token of the batch weighs the same) "
                                       "or 'sequence' (mean over tokens per completion, then over completions)")
    lr: float = _opt(1e-5, "AdamW learning rate")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0 turns it off)")
    updates_per_step: int = _opt(1, "gradient steps on each batch of rollouts (>1 makes the clip matter)")
    micro_batch_size: int = _opt(0, "completions per forward/backward pass, gradients accumulated (0: the whole "
                                    "step at once); lower it when the update runs out of memory")
    max_new_tokens: int = _opt(256, "completion length limit")
    temperature: float = _opt(1.0, "sampling temperature (log-probabilities are taken at the same temperature)")
    top_p: float = _opt(1.0, "nucleus sampling; 1.0 samples from the whole distribution GRPO scores")
    budget: str = _opt("fixed", "'fixed' (group_size per prompt) or 'knapsack' (the step's rollouts go to prompts "
                                "whose estimated pass rate makes a group informative)")
    min_group: int = _opt(2, "fewest completions any prompt of a step gets under the knapsack budget")
    max_group: int = _opt(0, "most completions one prompt gets under the knapsack budget (0: 4 x group_size)")
    pass_threshold: float = _opt(0.0, "a reward above this counts as a pass for the pass-rate estimates")
    lora: Any = _opt(None, "a peft LoraConfig (or a dict of its fields) to train an adapter; None trains all weights")
    seed: int = _opt(0, "seeds prompt order, sampling and any initialisation")
    output_dir: str = _opt("grpo-output", "where the trained model, checkpoints, metrics.csv and the plot go")
    log_every: int = _opt(10, "call the callbacks (progress display) every this many steps; metrics.csv gets all")
    save_every: int = _opt(0, "write a resumable checkpoint every this many steps and at the end (0: none)")
    keep_checkpoints: int = _opt(2, "how many recent checkpoints to keep on disk")
    # recipes from the literature (rl_finetune/recipes; docs/grpo-recipes.md)
    reward_norm: str = _opt("sum", "'sum' (a reward dict's parts are summed, then normalised) or 'gdpo' (each part "
                                   "normalised within its group, then summed and normalised over the batch)")
    prompt_sampling: str = _opt("uniform", "'uniform', 'gdro' (multiplicative weights over pass-rate bins), 'vade' "
                                           "(Thompson sampling of informative prompts) or 'dots' (difficulty near "
                                           "0.5, plus replay of recent informative groups)")
    replay_fraction: float = _opt(0.25, "with 'dots': share of a step's groups taken from the replay buffer")
    downsample: Optional[str] = _opt(None, "None or 'd3s' (train on the samples with the widest advantage spread)")
    d3s_keep: float = _opt(0.5, "with 'd3s': share of each group kept at the start, relaxed to 1 by the end")
    d3s_token_keep: float = _opt(1.0, "with 'd3s': share of tokens kept by |advantage| x entropy (1: all)")
    partial_rollouts: bool = _opt(False, "APRIL: start over_provision x the groups, train on the first to finish, "
                                         "resume the rest next step (and prune doomed prefixes)")
    over_provision: float = _opt(1.5, "with partial_rollouts: groups in flight per group trained on")
    hints: bool = _opt(False, "prefix prompts nothing solves with the start of a known answer (needs hint_source)")
    hint_source: Any = _opt(None, "with hints: where known answers come from: an object with best_answer(prompt) "
                                  "(recipes.hints.StaticHints, StoreHints) or a dict {prompt: answer}")
    off_policy: Optional[str] = _opt(None, "None or 'vcpo' (truncated importance weights on stale rollouts, step "
                                           "scaled by their effective sample size)")
    is_cap: float = _opt(2.0, "with 'vcpo': the importance-weight cap")
    flawed_penalty: float = _opt(0.0, "FAPO: subtracted from passing rewards the reward function flags 'flawed'")

    def __post_init__(self) -> None:
        choices = {"advantage": (*ADVANTAGES, "remax"), "loss_agg": LOSS_AGGS, "budget": BUDGETS,
                   "reward_norm": REWARD_NORMS, "prompt_sampling": PROMPT_SAMPLING, "downsample": DOWNSAMPLE,
                   "off_policy": OFF_POLICY}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GRPOConfig.{name}={getattr(self, name)!r}: use one of "
                                 f"{', '.join(map(str, allowed))}")
        for name in ("micro_batch_size", "save_every", "max_group"):
            if getattr(self, name) < 0:
                raise ValueError(f"GRPOConfig.{name} must be 0 or more (got {getattr(self, name)})")
        for name in ("max_steps", "prompts_per_step", "max_new_tokens", "updates_per_step", "log_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"GRPOConfig.{name} must be at least 1 (got {getattr(self, name)})")
        if self.group_size < 2:
            raise ValueError(f"GRPOConfig.group_size must be at least 2 to compare completions (got {self.group_size})")
        if self.min_group < 1:
            raise ValueError(f"GRPOConfig.min_group must be at least 1 (got {self.min_group})")
        if self.temperature <= 0:
            raise ValueError("GRPOConfig.temperature must be > 0: GRPO needs sampled, scored completions")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GRPOConfig.top_p must be in (0, 1] (got {self.top_p})")
        self._check_recipes()

    def _check_recipes(self) -> None:
        if self.reward_norm == "gdpo" and self.advantage != "group":
            raise ValueError("GRPOConfig.reward_norm='gdpo' normalises by group mean/std itself: use advantage='group'")
        for name in ("d3s_keep", "d3s_token_keep"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"GRPOConfig.{name} must be in (0, 1] (got {getattr(self, name)})")
        if not 0 <= self.replay_fraction < 1:
            raise ValueError(f"GRPOConfig.replay_fraction must be in [0, 1) (got {self.replay_fraction})")
        if self.over_provision < 1:
            raise ValueError(f"GRPOConfig.over_provision must be at least 1 (got {self.over_provision})")
        if self.is_cap <= 0:
            raise ValueError(f"GRPOConfig.is_cap must be > 0 (got {self.is_cap})")
        if self.flawed_penalty < 0:
            raise ValueError(f"GRPOConfig.flawed_penalty must be >= 0 (got {self.flawed_penalty})")
        self._check_companions()

    def _check_companions(self) -> None:
        """A switch that cannot act without another setting is an error here, not a crash (or a silent no-op)
        steps into training."""
        if isinstance(self.hint_source, dict):
            self.hint_source = StaticHints(self.hint_source)
        if self.hints and self.hint_source is None:
            raise ValueError("GRPOConfig.hints=True needs hint_source= (an object with best_answer(prompt), or a "
                             "dict {prompt: answer}); in kopt train, --hints needs --from-runs (the stored best "
                             "solutions are the hints)")
        if self.hint_source is not None and not callable(getattr(self.hint_source, "best_answer", None)):
            raise ValueError(f"GRPOConfig.hint_source must have a best_answer(prompt) method or be a dict "
                             f"(got {type(self.hint_source).__name__})")
        if self.off_policy == "vcpo" and not (self.partial_rollouts or self.prompt_sampling == "dots"):
            raise ValueError("GRPOConfig.off_policy='vcpo' corrects stale rollouts, and only partial_rollouts=True "
                             "or prompt_sampling='dots' (replay) makes any: switch one on, or drop off_policy")
        defaults = {f.name: f.default for f in fields(self)}
        for name, (on, switch) in SETTING_NEEDS.items():
            if getattr(self, name) != defaults[name] and not on(self):
                raise ValueError(f"GRPOConfig.{name}={getattr(self, name)!r} acts only with {switch}, which is off: "
                                 f"switch it on, or leave {name} at its default")

    @property
    def samples_per_prompt(self) -> int:
        """The fixed group size actually sampled: G, or G+1 for the median baseline (an odd group has a
        median sample to leave out)."""
        return self.group_size + 1 if self.advantage == "median" else self.group_size

    def to_dict(self) -> dict:
        """Plain values (JSON-able): LoRA settings as a dict, the hint source as its type's name."""
        source, self.hint_source = self.hint_source, None
        try:
            d = asdict(self)
        finally:
            self.hint_source = source
        d["hint_source"] = None if source is None else type(source).__name__
        if self.lora is not None and not isinstance(self.lora, dict):
            d["lora"] = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(self.lora).items()
                         if isinstance(v, (int, float, str, bool, list, set, type(None)))}
        return d

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}
