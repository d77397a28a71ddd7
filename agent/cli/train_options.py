"""[train] of a `kopt train` config: the settings outside GRPOConfig (the model, where rewards are
evaluated, tracking), checked like the other sections."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="hf:<path> of the model to fine-tune")
    lora_r: int = Field(16, ge=0, description="LoRA rank (0 trains all weights)")
    executor: Literal["local", "ray"] = "local"
    jobs: int = Field(2, ge=1, description="evaluations at a time")
    device: Literal["cpu", "cuda"] = "cpu"
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    bf16: bool = False
    eval_overrides: dict = Field(default_factory=dict, exclude=True, description="[eval]: EvalConfig fields")
