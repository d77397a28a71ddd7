"""OptimizeConfig: everything one `kopt optimize` run is set up with, in one object the CLI
builds (defaults, then `--config`, then flags) and `run_optimize(target, cfg)` takes.

Its sections are the config file's: [model] (proposer and LLM sampling), [run] (device, fit,
where evaluations run), [search] (SearchConfig), [eval] (EvalConfig), [target] (the target
kind's own options: ProgramOptions or RepoOptions; a KernelBench task takes none).
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class KindOptions(BaseModel):
    """[target]: the options of one target kind (`kind`), nothing else."""
    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str]


class ProgramOptions(KindOptions):
    """[target] of a program (a C/C++ or Python source reading stdin)."""
    kind: ClassVar[str] = "program"
    tests: str | None = Field(None, description="folder of NAME.in [/ NAME.out] test files")
    validator: str | None = Field(None, description="input validator (exit 0 = legal input)")
    checker: str | None = Field(None, description="exact | tokens | float:TOL (output comparison)")
    std: str | None = Field(None, description="C/C++ standard, e.g. c++17")
    stress: str | None = Field(None, description="extra inputs (e.g. from kopt stress --out)")


class RepoOptions(KindOptions):
    """[target] of a git repository."""
    kind: ClassVar[str] = "repo"
    test: str | None = Field(None, description="test command (must pass on the original)")
    bench: str | None = Field(None, description="benchmark command")
    bench_metric: str | None = Field(None, description="regex whose group 1 is the bench's number")
    higher_is_better: bool = Field(False, description="the bench number is a rate")
    focus: str | None = Field(None, description="path.py:func to optimize instead of the profile's pick")
    branch: bool = Field(False, description="also create branch kopt/<run> with the best patch")
    include_dirty: bool = Field(False, description="start from HEAD plus the dirty diff")
    editable: list[str] | None = Field(None, description="GLOBs a patch may change too")


TARGET_OPTIONS = {"program": ProgramOptions, "repo": RepoOptions}  # a KernelBench task takes no options
PROGRAM_KEYS = tuple(ProgramOptions.model_fields)
REPO_KEYS = tuple(RepoOptions.model_fields)


def _given(values: dict) -> dict:
    """The options actually set: a key at its unset value (None, false, []) sets nothing, so an
    older run's config.json, which listed every kind's keys, still reads."""
    return {k: v for k, v in values.items() if v not in (None, False, [], ())}


def target_options_for(kind: str | None, values: dict | BaseModel | None) -> ProgramOptions | RepoOptions | None:
    """The [target] section as the options of `kind` (None: the kind the keys given belong to,
    the path's own kind being checked when the target loads). A key of another kind is one line
    naming it."""
    if isinstance(values, BaseModel):
        values = values.model_dump()
    given = _given(values or {})
    for key in given:
        if key not in PROGRAM_KEYS and key not in REPO_KEYS:
            raise ValueError(f"unknown key {key!r} in [target] (program: {', '.join(PROGRAM_KEYS)}; "
                             f"repo: {', '.join(REPO_KEYS)})")
    kinds = {"program" if k in PROGRAM_KEYS else "repo" for k in given}
    if kind is None and len(kinds) > 1:
        raise ValueError(f"[target] mixes program options ({', '.join(k for k in given if k in PROGRAM_KEYS)}) "
                         f"and repo options ({', '.join(k for k in given if k in REPO_KEYS)}); give one kind's")
    kind = kind or next(iter(kinds), None)
    schema = TARGET_OPTIONS.get(kind)
    foreign = [k for k in given if schema is None or k not in schema.model_fields]
    if foreign:
        what = f"a {kind} target takes {', '.join(schema.model_fields)}" if schema else \
            "a KernelBench task takes none"
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ValueError(f"[target] {', '.join(foreign)} ({flags}) does not apply to a {kind} target; {what}")
    return None if schema is None else schema(**given)


def _default_eval() -> EvalConfig:
    # nvcc_filter: CUDA candidates that cannot run here are still compiled, so errors reach the model
    return EvalConfig(nvcc_filter=True)


class OptimizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelConfig = Field(default_factory=ModelConfig)
    run: RunOptions = Field(default_factory=RunOptions)
    search: SearchConfig = Field(default_factory=SearchConfig)
    eval: EvalConfig = Field(default_factory=_default_eval)
    target: ProgramOptions | RepoOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _target_of_its_kind(cls, data):
        """[target] is read as the options of the run's kind (--kind, else the kind its keys name)."""
        if not isinstance(data, dict) or data.get("target") is None:
            return data
        run = data.get("run") or {}
        kind = run.kind if isinstance(run, RunOptions) else run.get("kind") if isinstance(run, dict) else None
        return {**data, "target": target_options_for(kind, data["target"])}

    def model_post_init(self, _) -> None:
        self.eval.device = self.run.device  # one device for the run, given once
        self.search.eval = self.eval

    def sections(self) -> dict:
        """The config as the file's sections (what config.json in the run dir holds)."""
        d = self.model_dump(mode="json")
        d["search"].pop("eval", None)
        for k in ("hidden_paths", "device"):  # set per run (the run dir) and by [run] device
            d["eval"].pop(k, None)
        d["target"] = _given(d["target"] or {})  # only what was set: [target] stays one kind's
        return d

    def target_options(self) -> dict:
        """The target kind's options as keywords for `load_target` (empty for a KernelBench task)."""
        return {} if self.target is None else self.target.model_dump()


SCHEMAS = {"model": ModelConfig, "run": RunOptions, "search": SearchConfig, "eval": EvalConfig,
           "target": PROGRAM_KEYS + REPO_KEYS}  # which kind's keys: OptimizeConfig's [target] check
EXCLUDE = {"search": {"eval"}, "eval": {"hidden_paths", "device"}}


def from_sections(data: dict, where: str = "config") -> OptimizeConfig:
    """Build and validate; an unknown key or a bad value is one line naming it."""
    config_file.check_keys(data, SCHEMAS, where, EXCLUDE)
    try:
        return OptimizeConfig(**data)
    except ValidationError as e:
        raise config_file.one_line(e, where) from None
