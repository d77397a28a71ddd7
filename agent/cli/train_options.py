"""`kopt train`'s one config: [train] (TrainOptions: the model, where rewards are evaluated,
tracking), [grpo] (GRPOConfig) and [eval] (EvalConfig overrides), plus where the job's prompts
come from and its run dir. `kopt train` builds it once from defaults, --config and the flags
given; the job reads nothing else."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kopt.rl_finetune import GRPOConfig
from kopt.sandboxes.evaluator import EvalConfig

# GRPOConfig fields `kopt train` sets itself ([train] lora_r, the run dir, a line of progress per step)
GRPO_SET_BY_TRAIN = ("lora", "output_dir", "log_every", "hint_source")


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="hf:<path> of the model to fine-tune")
    lora_r: int = Field(16, ge=0, description="LoRA rank (0 trains all weights)")
    executor: Literal["local", "ray"] = "local"
    jobs: int = Field(2, ge=1, description="evaluations at a time")
    device: Literal["cpu", "cuda"] = "cpu"
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    bf16: bool = False
    imitate_steps: int = Field(0, ge=0, description="--planner: steps of cross-entropy on the rules' heuristic plan "
                                                    "before GRPO (a warm start; 0: none)")


class TrainConfig(BaseModel):
    """Everything one `kopt train` run is set up with."""
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    options: TrainOptions
    grpo: GRPOConfig
    eval_overrides: dict[str, Any] = Field(default_factory=dict, description="[eval]: EvalConfig fields")
    run_dir: Path
    resume: bool = False
    from_runs: list[Path] | None = Field(None, description="run dirs whose stored prompts to train on")
    tasks: Path | None = Field(None, description="KernelBench checkout or folder of task files")
    level: int | None = None
    planner: bool = Field(False, description="train a planner on one plan prompt per --tasks task")
    cache: bool = Field(True, description="--planner: reuse stored measurements while they hold")

    @property
    def model_path(self) -> str:
        """The folder of the model to fine-tune (the part after hf:)."""
        return (self.options.model or "")[3:]

    def eval_config(self) -> EvalConfig:
        """How rewards are measured: [eval] on the chosen device, the run dir out of a candidate's reach."""
        return EvalConfig(**{**self.eval_overrides, "device": self.options.device,
                             "hidden_paths": [str(self.run_dir.resolve())]})

    def grpo_section(self) -> dict:
        d = self.grpo.to_dict()
        for k in GRPO_SET_BY_TRAIN:
            d.pop(k, None)
        return d

    def sections(self) -> dict:
        """The config as the file's sections (what RUN_DIR/config.json holds, what --resume reads)."""
        return {"train": self.options.model_dump(), "grpo": self.grpo_section(), "eval": self.eval_overrides}
