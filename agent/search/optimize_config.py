"""OptimizeConfig: everything one `kopt optimize` run is set up with, in one object the CLI
builds (defaults, then `--config`, then flags) and `run_optimize(target, cfg)` takes.

Its sections are the config file's: [model] (proposer and LLM sampling), [run] (device, fit,
where evaluations run), [search] (SearchConfig), [eval] (EvalConfig), [target] (program and
repository options).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kopt.agent.runs import config_file
from kopt.agent.search.loop import SearchConfig
from kopt.sandboxes.evaluator import EvalConfig


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("rules", description="rules | openai/<name> | litellm/<provider>/<name> | hf:<path>")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL (or OPENAI_BASE_URL)")
    plan: str | None = Field(None, description="rules: apply these rule steps in order (card ids; 'a; b(opt=1)')")
    planner: str | None = Field(None, description="rules: ask this model for the plan (hf:<folder> | openai/<name> "
                                                  "| litellm/<name>)")
    temperature: float | None = Field(None, ge=0, description="LLM sampling temperature (None: the backend's 0.7)")
    samples: int | None = Field(None, ge=1, description="completions per proposal (None: the proposer's 2)")
    max_tokens: int | None = Field(None, ge=1, description="tokens per LLM response (None: the backend's)")
    max_prompt_tokens: int | None = Field(None, ge=1000, description="prompt size cap; history, skills and lessons "
                                                                     "are trimmed first (None: 24000)")
    edit_retries: int | None = Field(None, ge=0, description="re-asks after an answer that does not apply "
                                                             "(None: the proposer's 2)")


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: Literal["cpu", "cuda"] = "cpu"
    fit: Literal["auto", "none"] = "auto"
    cache: bool = Field(True, description="reuse stored measurements (the evaluation cache) where they still hold")
    kind: Literal["kernelbench", "program", "repo"] | None = None
    executor: Literal["local", "ray"] = "local"
    jobs: int = Field(1, ge=1)
    address: str | None = None
    sandbox: Literal["local", "docker"] = "local"
    gpus: str | None = None


class TargetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tests: str | None = None
    validator: str | None = None
    checker: str | None = None
    std: str | None = None
    stress: str | None = None
    test: str | None = None
    bench: str | None = None
    bench_metric: str | None = None
    higher_is_better: bool = False
    focus: str | None = None
    branch: bool = False
    include_dirty: bool = False
    editable: list[str] | None = None


def _default_eval() -> EvalConfig:
    # nvcc_filter: CUDA candidates that cannot run here are still compiled, so errors reach the model
    return EvalConfig(nvcc_filter=True)


class OptimizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelConfig = Field(default_factory=ModelConfig)
    run: RunOptions = Field(default_factory=RunOptions)
    search: SearchConfig = Field(default_factory=SearchConfig)
    eval: EvalConfig = Field(default_factory=_default_eval)
    target: TargetOptions = Field(default_factory=TargetOptions)

    def model_post_init(self, _) -> None:
        self.eval.device = self.run.device  # one device for the run, given once
        self.search.eval = self.eval

    def sections(self) -> dict:
        """The config as the file's sections (what config.json in the run dir holds)."""
        d = self.model_dump(mode="json")
        d["search"].pop("eval", None)
        for k in ("hidden_paths", "device"):  # set per run (the run dir) and by [run] device
            d["eval"].pop(k, None)
        return d

    def target_options(self) -> dict:
        return self.target.model_dump()


SCHEMAS = {"model": ModelConfig, "run": RunOptions, "search": SearchConfig, "eval": EvalConfig,
           "target": TargetOptions}
EXCLUDE = {"search": {"eval"}, "eval": {"hidden_paths", "device"}}


def from_sections(data: dict, where: str = "config") -> OptimizeConfig:
    """Build and validate; an unknown key or a bad value is one line naming it."""
    config_file.check_keys(data, SCHEMAS, where, EXCLUDE)
    try:
        return OptimizeConfig(**data)
    except ValidationError as e:
        raise config_file.one_line(e, where) from None
