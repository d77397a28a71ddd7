"""`kopt train`: GRPO fine-tuning of a local model on live, sandboxed speedup rewards (architecture §8)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.choices import (
    Advantage,
    Device,
    Downsample,
    Executor,
    LossAgg,
    OffPolicy,
    PromptSampling,
    ReportTo,
    RewardNorm,
    RolloutBudget,
    value,
)
from kopt.agent.cli.train_options import GRPO_SET_BY_TRAIN, TrainConfig, TrainOptions
from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.runs import config_file
from kopt.rl_finetune import GRPOConfig
from kopt.rl_finetune.kernel_prompts import from_runs as prompts_from_runs
from kopt.rl_finetune.kernel_prompts import from_suite
from kopt.rl_finetune.live_reward import KernelReward
from kopt.rl_finetune.planner import PlanReward, imitate_heuristic, planner_tasks
from kopt.rl_finetune.progress import LiveView
from kopt.rl_finetune.recipes.hints import StoreHints
from kopt.rl_finetune.tracking import make_tracker
from kopt.rl_finetune.trainer import GRPOTrainer, latest_checkpoint
from kopt.sandboxes.eval_cache import EvalCache
from kopt.sandboxes.evaluator import EvalConfig
from kopt.sandboxes.executor_factory import make_executor


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
    app.command("train")(train)


# train's flags -> the config key each one sets: [grpo] is GRPOConfig, [train] TrainOptions
TRAIN_FLAGS = {"steps": "grpo.max_steps", "rollout_budget": "grpo.budget", "micro_batch": "grpo.micro_batch_size",
               **{k: f"grpo.{k}" for k in ("prompts_per_step", "group_size", "advantage", "reward_norm",
                                           "prompt_sampling", "downsample", "partial_rollouts", "hints",
                                           "off_policy", "flawed_penalty", "loss_agg", "lr", "beta", "temperature",
                                           "max_new_tokens", "seed", "save_every")},
               **{k: f"train.{k}" for k in ("model", "lora_r", "executor", "jobs", "device", "report_to", "bf16",
                                             "imitate_steps")}}


def train(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, help="hf:<path> of the model to fine-tune (a saved transformers "
                                                   "causal LM); or [train] model in --config"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings ([grpo] [train] [eval]); "
                                                                 "flags given override it"),
    from_runs: Optional[list[Path]] = typer.Option(None, "--from-runs",
                                                   help="run directory (or folder of runs) whose stored prompts to "
                                                        "train on; repeat for several"),
    tasks: Optional[Path] = typer.Option(None, "--tasks", help="KernelBench checkout or folder of task files"),
    level: Optional[int] = typer.Option(None, help="KernelBench level, with --tasks"),
    steps: int = typer.Option(100, help="optimizer steps"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="output folder: model, checkpoints, metrics, "
                                                                   "config.json (default trained/<model>-grpo)"),
    old_out: Optional[Path] = typer.Option(None, "--out", hidden=True),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in --run-dir"),
    override: bool = typer.Option(False, "--override", help="with --resume: let flags change the stored config"),
    save_every: int = typer.Option(10, help="checkpoint every N steps"),
    prompts_per_step: int = typer.Option(4, help="prompts per step"),
    group_size: int = typer.Option(4, help="completions per prompt (G)"),
    advantage: Advantage = typer.Option("group", help="group (mean/std), median (MC-GRPO) or remax (greedy "
                                                      "baseline)"),
    rollout_budget: RolloutBudget = typer.Option("fixed", help="rollouts per prompt: fixed, knapsack (to prompts "
                                                               "whose groups will disagree) or gdro (square-root "
                                                               "rule over pass-rate groups)"),
    old_budget: Optional[str] = typer.Option(None, "--budget", hidden=True),
    reward_norm: RewardNorm = typer.Option("sum", help="sum, or gdpo (each reward part normalised in its group)"),
    prompt_sampling: PromptSampling = typer.Option("uniform", help="which prompts get rollouts"),
    downsample: Optional[Downsample] = typer.Option(None, help="d3s: train on the samples with the widest "
                                                               "advantage spread"),
    partial_rollouts: bool = typer.Option(False, "--partial-rollouts",
                                          help="APRIL: over-provision, resume unfinished rollouts next step"),
    hints: bool = typer.Option(False, "--hints", help="prefix prompts nothing solves with the start of the best "
                                                      "stored solution (needs --from-runs)"),
    off_policy: Optional[OffPolicy] = typer.Option(None, help="vcpo: truncated importance weights and ESS step "
                                                              "scaling for stale rollouts"),
    flawed_penalty: float = typer.Option(0.0, help="FAPO: taken off passing rewards the evaluator flags (kernel: "
                                                   "torch, static warnings)"),
    loss_agg: LossAgg = typer.Option("token-mean", help="token-mean (DAPO) or sequence"),
    lr: float = typer.Option(1e-5, help="learning rate"),
    beta: float = typer.Option(0.0, help="KL penalty to the starting model"),
    temperature: float = typer.Option(1.0, help="sampling temperature"),
    max_new_tokens: int = typer.Option(1024, help="completion length limit"),
    lora_r: int = typer.Option(16, help="LoRA rank (0 trains all weights)"),
    micro_batch: int = typer.Option(0, help="completions per forward/backward (0: all of a step at once)"),
    bf16: bool = typer.Option(False, "--bf16", help="load and train the model in bfloat16 (half the memory)"),
    report_to: ReportTo = typer.Option("none", help="also log metrics to this tracker (through accelerate); "
                                                    "tensorboard writes under RUN_DIR/tensorboard"),
    executor: Executor = typer.Option("local", help="where evaluations run"),
    jobs: int = typer.Option(2, help="evaluations at a time"),
    device: Device = typer.Option("cpu", help="device the candidates are evaluated on"),
    seed: int = typer.Option(0, help="seed"),
    planner: bool = typer.Option(False, "--planner", help="train a planner: one plan prompt per --tasks task, "
                                                          "completions are plans for the rules coder "
                                                          "(docs/training.md); try --max-new-tokens 48"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="--planner: reuse stored measurements while they "
                                                                "hold (--no-cache: a fresh cache in RUN_DIR)"),
    imitate_steps: int = typer.Option(0, "--imitate-steps", help="--planner: first teach the model the rules' "
                                                                 "heuristic plan for this many steps, then GRPO"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Fine-tune MODEL with GRPO on stored prompts (--from-runs) or tasks (--tasks); rewards are live evaluations."""

    if old_budget is not None:
        raise UserInputError("kopt train --budget is now --rollout-budget (fixed|knapsack|gdro); --budget "
                             "means evaluations in the other commands")
    if old_out is not None:
        raise UserInputError("kopt train --out is now --run-dir, as in the other commands")
    cfg = train_config(ctx, config, run_dir, resume, override, from_runs=from_runs, tasks=tasks, level=level,
                       planner=planner, cache=cache)
    prompts = _planner_prompts(cfg) if cfg.planner else _prompts(cfg)
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise EnvironmentMissing(f"kopt train needs torch, transformers and peft ({e.name} is missing): "
                                 f"pip install 'kopt[torch,train]'") from None

    out = cfg.run_dir
    if cfg.resume and latest_checkpoint(out) is None:
        raise UserInputError(f"--resume: no checkpoint in {out}/checkpoints; run without --resume to start")
    if not cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        raise UserInputError(f"{out} already holds checkpoints: add --resume to continue, or pick another "
                             f"--run-dir")
    cfg.grpo.prompts_per_step = min(cfg.grpo.prompts_per_step, len(prompts))
    cfg.grpo.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    config_file.write(out, cfg.sections())
    summary = _run(cfg, prompts, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"trained {summary['steps']} steps: reward {summary['reward_first']:.3f} -> "
                   f"{summary['reward_last']:.3f} (mean of the first/last 10 steps); {summary['evaluations']} "
                   f"evaluations {summary['verdicts']}", err=True)
        typer.echo(f"model: {summary['model']}  (use it with: kopt optimize TASK --model hf:{summary['model']})")
    if summary["interrupted"]:
        typer.echo(f"kopt: interrupted at step {summary['steps']}; checkpoint saved, continue with the same command "
                   f"and --resume", err=True)
        raise typer.Exit(130)


def train_config(ctx, config: Path | None, run_dir: Path | None, resume: bool, override: bool, *,
                 from_runs: list[Path] | None, tasks: Path | None, level: int | None, planner: bool,
                 cache: bool) -> TrainConfig:
    """The run's one TrainConfig from train's defaults, --config and the flags given (a resumed run
    starts from its stored config.json), and where its prompts come from. With hints on, the hints
    are the best solutions in the --from-runs stores."""
    where = f"--config {config}" if config else "flags"
    schemas = {"grpo": GRPOConfig, "train": TrainOptions, "eval": EvalConfig}
    exclude = {"grpo": set(GRPO_SET_BY_TRAIN), "eval": {"device", "hidden_paths"}}
    file_data = config_file.load(config) if config else {}
    config_file.check_keys(file_data, schemas, where, exclude)
    defaults = config_file.dotted_to_sections({d: value(ctx.params[p]) for p, d in TRAIN_FLAGS.items()})
    defaults["grpo"]["pass_threshold"] = 0.2  # a correct but not faster kernel is not a pass
    resumed = run_dir if resume else None
    sections = config_file.resolve(config_file.stored_config(resumed), file_data,
                                   config_file.given_flags(ctx, TRAIN_FLAGS), TRAIN_FLAGS, override, resumed,
                                   defaults)
    opts = config_file.build(TrainOptions, sections.get("train", {}), where)
    eval_overrides = sections.get("eval", {})
    config_file.build(EvalConfig, eval_overrides, where)
    grpo = sections.get("grpo", {})
    hints = _hint_source(from_runs) if grpo.get("hints") and from_runs else None
    lora = {"r": opts.lora_r, "lora_alpha": 2 * opts.lora_r, "lora_dropout": 0.0,
            "target_modules": "all-linear"} if opts.lora_r > 0 else None
    grpo_cfg = config_file.build(GRPOConfig, {**grpo, "log_every": 1, "hint_source": hints, "lora": lora}, where)
    model = opts.model
    if model is None:
        raise UserInputError("give the model to fine-tune: --model hf:<path> (or [train] model in --config)")
    if not model.startswith("hf:"):
        raise UserInputError(f"--model {model}: kopt train fine-tunes a local model; give hf:<path>")
    if bool(from_runs) == (tasks is not None):
        raise UserInputError("give the prompts with --from-runs RUN_DIR (repeatable) or --tasks SUITE (not both)")
    path = model[3:]
    if not path or (path.startswith(("/", ".", "~")) and not Path(path).expanduser().exists()):
        raise UserInputError(f"--model {model}: no such folder; give hf:<path to a saved transformers model>")
    if planner and from_runs:
        raise UserInputError("--planner trains on --tasks (one plan prompt per task), not on --from-runs")
    if opts.imitate_steps and not planner:
        raise UserInputError("--imitate-steps warms up a planner on the rules' heuristic plan: add --planner")
    return TrainConfig(options=opts, grpo=grpo_cfg, eval_overrides=eval_overrides, resume=resume,
                       run_dir=run_dir or Path("trained") / f"{Path(path).name or 'model'}-grpo",
                       from_runs=list(from_runs) if from_runs else None, tasks=tasks, level=level, planner=planner,
                       cache=cache)


def _planner_prompts(cfg: TrainConfig) -> list:
    """--planner: one plan prompt per task of --tasks, fitted to this machine (copies under RUN_DIR/fit/)."""
    found = planner_tasks(cfg.tasks, cfg.level, cfg.run_dir)
    if not found:
        raise UserInputError(f"no KernelBench task under {cfg.tasks} can run here (--planner fits each to this "
                             f"machine)")
    return found


def _prompts(cfg: TrainConfig) -> list:
    if cfg.from_runs:
        prompts = prompts_from_runs(cfg.from_runs)
        if not prompts:
            raise UserInputError(f"no usable prompts in {', '.join(map(str, cfg.from_runs))}: a prompt needs an LLM "
                                 f"proposal whose parent and task file are still there")
    else:
        prompts = from_suite(cfg.tasks, cfg.level)
        if not prompts:
            raise UserInputError(f"no KernelBench task files under {cfg.tasks}")
    return prompts


def _run(cfg: TrainConfig, prompts, quiet: bool) -> dict:
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the live view is the progress display

    opts, grpo, out = cfg.options, cfg.grpo, cfg.run_dir
    ex = make_executor(opts.executor, opts.jobs)
    eval_cfg = cfg.eval_config()
    reward_fn = PlanReward(prompts, eval_cfg, out / "solutions", EvalCache(None if cfg.cache else out / "evals.sqlite"),
                           jobs=opts.jobs) if cfg.planner else \
        KernelReward(prompts, ex, eval_cfg, out / "solutions", flag_flaws=grpo.flawed_penalty > 0)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under `accelerate launch`, one process shows progress
    view = None if quiet or not main_process else LiveView(f"kopt train {cfg.model_path}", grpo.max_steps)
    tracker = make_tracker(opts.report_to, out, {"train": opts.model_dump(), "grpo": cfg.grpo_section()}) \
        if main_process else None
    interrupted, model_dir = False, out
    try:
        try:
            model, tokenizer = _load_bf16(cfg.model_path) if opts.bf16 else (cfg.model_path, None)
            if cfg.planner and opts.imitate_steps and not cfg.resume:  # a resumed run's checkpoint has it
                model, tokenizer = _warm_start(cfg, model, tokenizer, prompts)
            trainer = GRPOTrainer(model, reward_fn, [p.chat for p in prompts], grpo, tokenizer=tokenizer,
                                  callbacks=[cb for cb in (view, tracker) if cb])
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise UserInputError(f"hf:{cfg.model_path}: could not load a causal LM: {first}"[:300]) from None
        started = time.time()
        try:
            history = trainer.train(resume=cfg.resume)
        except KeyboardInterrupt:
            interrupted = True
            model_dir = trainer.save_checkpoint()
            history = trainer.history
    finally:
        if view:
            view.close()
        if tracker:
            tracker.close()
        ex.shutdown()
    rewards = [m["reward"] for m in history]
    summary = {"model": str(model_dir), "steps": trainer.step, "interrupted": interrupted, "prompts": len(prompts),
               "reward_first": _mean(rewards[:10]), "reward_last": _mean(rewards[-10:]),
               "evaluations": reward_fn.evaluations, "verdicts": dict(reward_fn.verdicts),
               "seconds": round(time.time() - started, 1), "metrics_csv": str(out / "metrics.csv"),
               "plot": str(out / "training.png")}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _load(path: str, **kwargs):
    """The saved causal LM at PATH and its tokenizer (KWARGS go to the model's from_pretrained)."""
    import transformers

    src = str(Path(path).expanduser())
    return (transformers.AutoModelForCausalLM.from_pretrained(src, **kwargs),
            transformers.AutoTokenizer.from_pretrained(src))


def _load_bf16(path: str):
    """--bf16: the model's weights in bfloat16 (log-probabilities are still taken in float32)."""
    import torch

    return _load(path, dtype=torch.bfloat16)


def _warm_start(cfg: TrainConfig, model, tokenizer, tasks: list):
    """--imitate-steps: the planner taught the rules' heuristic plan before GRPO starts."""
    if isinstance(model, str):
        model, tokenizer = _load(model)
    imitate_heuristic(model, tokenizer, tasks, cfg.options.imitate_steps, seed=cfg.grpo.seed)
    return model, tokenizer


def _hint_source(hint_runs):
    """--hints: the fastest verified solution of each task in the --from-runs stores, as the start of an answer."""
    return StoreHints.for_runs(list(hint_runs), template="```python\n{code}\n```")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
