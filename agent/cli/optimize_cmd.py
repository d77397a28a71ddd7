"""`kopt optimize TARGET`: the flags and `--config` become one OptimizeConfig, built here once
and handed to the optimize job (architecture §1, §5)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.choices import Device, Executor, Fit, Kind, Sandbox
from kopt.agent.cli.eval_cmd import original_paths
from kopt.agent.errors import UserInputError
from kopt.agent.runs import config_file
from kopt.agent.search.optimize import run_optimize
from kopt.agent.search.optimize_config import PROGRAM_KEYS, REPO_KEYS, OptimizeConfig, from_sections
from kopt.agent.targets.kernelbench.fit import fit_for_optimize

# optimize's flags -> the config key each one sets (the file's [section] key)
OPTIMIZE_FLAGS = {"model": "model.name", "base_url": "model.base_url", "plan": "model.plan",
                  "planner": "model.planner", "cache": "run.cache",
                  "max_prompt_tokens": "model.max_prompt_tokens", "budget": "search.budget",
                  "max_time": "search.max_time", "max_tokens": "search.max_tokens", "max_cost": "search.max_cost",
                  **{k: f"run.{k}" for k in ("device", "fit", "kind", "executor", "jobs", "address", "sandbox",
                                             "gpus")},
                  **{k: f"target.{k}" for k in (*PROGRAM_KEYS, *REPO_KEYS)}}
CONFIG_HELP = "TOML file of settings ([model] [run] [search] [eval] [target]); flags given override it"


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
    app.command("optimize")(optimize)


def optimize(
    ctx: typer.Context,
    target: Path = typer.Argument(..., help="KernelBench task file, program source, or git repository folder"),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    model: str = typer.Option("rules", help="rules | openai/<name> | litellm/<provider>/<name> | hf:<path>"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL (or OPENAI_BASE_URL)"),
    plan: Optional[str] = typer.Option(None, help="rules: these steps in order, e.g. \"cpu-fold-affine-chain; "
                                                  "cpu-fuse-elementwise-chain\" (skill card ids)"),
    planner: Optional[str] = typer.Option(None, help="rules: the plan comes from this model (hf:<folder>, "
                                                     "openai/<name>, litellm/<name>)"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="reuse stored measurements while they hold "
                                                                "(kopt runs cache stats)"),
    budget: int = typer.Option(12, help="evaluations (re-evaluations included)"),
    max_time: Optional[float] = typer.Option(None, help="seconds"),
    max_tokens: Optional[int] = typer.Option(None, help="LLM tokens, the whole run"),
    max_prompt_tokens: Optional[int] = typer.Option(None, help="LLM prompt size cap in tokens (default 24000: "
                                                              "history, skills and lessons trimmed first)"),
    max_cost: Optional[float] = typer.Option(None, help="dollars"),
    run_dir: Optional[Path] = typer.Option(None, help="default runs/<timestamp>-<target>"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir with its stored config"),
    override: bool = typer.Option(False, "--override", help="with --resume: let flags change the stored config"),
    device: Device = typer.Option("cpu", help="where candidates run"),
    fit: Fit = typer.Option("auto", help="auto: scale a task's batch/spatial sizes to this machine; none: as is"),
    kind: Optional[Kind] = typer.Option(None, help="target kind (default: detected)"),
    tests: Optional[Path] = typer.Option(None, help="program: folder of NAME.in [/ NAME.out] test files"),
    validator: Optional[Path] = typer.Option(None, help="program: input validator (exit 0 = legal input)"),
    checker: Optional[str] = typer.Option(None, help="program: exact | tokens | float:TOL (output comparison)"),
    std: Optional[str] = typer.Option(None, help="program: C/C++ standard, e.g. c++17"),
    stress: Optional[Path] = typer.Option(None, help="program: extra inputs (e.g. from kopt stress --out)"),
    test: Optional[str] = typer.Option(None, help="repo: test command (must pass on the original)"),
    bench: Optional[str] = typer.Option(None, help="repo: benchmark command"),
    bench_metric: Optional[str] = typer.Option(None, help="repo: regex whose group 1 is the bench's number"),
    higher_is_better: bool = typer.Option(False, "--higher-is-better", help="repo: the bench number is a rate"),
    focus: Optional[str] = typer.Option(None, help="repo: path.py:func to optimize instead of the profile's pick"),
    branch: bool = typer.Option(False, "--branch", help="repo: also create branch kopt/<run> with the best patch"),
    include_dirty: bool = typer.Option(False, "--include-dirty", help="repo: start from HEAD plus the dirty diff"),
    editable: Optional[list[str]] = typer.Option(None, "--editable", help="repo: GLOB a patch may change too"),
    executor: Executor = typer.Option("local", help="where a task's new candidates are evaluated"),
    jobs: int = typer.Option(1, help="candidates evaluated at once (local threads or Ray tasks)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local runtime)"),
    sandbox: Sandbox = typer.Option("local", help="docker: each evaluation in a container (docs/gpu.md)"),
    gpus: Optional[str] = typer.Option(None, help="GPU indices, e.g. 0,1 (one evaluation per GPU at a time)"),
    as_json: bool = typer.Option(False, "--json", help="print the run summary as JSON"),
) -> None:
    """Search for a faster verified version of TARGET; leaves best/ and reports in the run dir."""

    if resume and run_dir is None:
        raise UserInputError("--resume needs --run-dir DIR (the run to continue)")
    if override and not resume:
        raise UserInputError("--override is for --resume (a new run takes the flags as given)")
    cfg = optimize_config(ctx, config, run_dir if resume else None, override)
    original = target
    target, run_dir = fit_for_optimize(target, cfg.run.fit, cfg.run.device, run_dir, resume, cfg.run.kind)
    if target != original:
        cfg.eval.hidden_paths += original_paths(original, None)
    summary = run_optimize(target, cfg, run_dir=run_dir, resume=resume, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    raise typer.Exit(0 if summary.get("best_speedup") else 1)


def optimize_config(ctx: typer.Context, config: Path | None, resumed: Path | None, override: bool) -> OptimizeConfig:
    """The run's one config: defaults, then --config, then the flags given (a resumed run starts
    from its stored config.json, changed only with --override)."""
    stored = config_file.stored_config(resumed)
    file_data = config_file.load(config) if config else {}
    if config:
        from_sections(file_data, f"--config {config}")  # unknown keys are named against the file
    sections = config_file.resolve(stored, file_data, config_file.given_flags(ctx, OPTIMIZE_FLAGS),
                                   OPTIMIZE_FLAGS, override, resumed)
    return from_sections(sections, f"--config {config}" if config else "flags")
