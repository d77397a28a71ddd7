"""The `kopt` command line. Imports stay inside commands so `kopt --help` is instant."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli import bench_cmd as bench
from kopt.agent.cli import cache_cmd
from kopt.agent.cli import skills_cmd as skills
from kopt.agent.cli import stress_cmd as stress
from kopt.agent.cli import train_cmd as train
from kopt.agent.cli.choices import Device, Executor, ExportFormat, Fit, Kind, Sandbox, value
from kopt.agent.cli.extras import extras_lines, extras_status
from kopt.agent.cli.failures import fail, fail_on
from kopt.agent.core import Candidate, Evaluation, new_id
from kopt.agent.errors import KoptError, UserInputError
from kopt.agent.runs import config_file
from kopt.agent.runs.store import STORE_FILE, Store, find_runs
from kopt.agent.search.optimize import run_optimize
from kopt.agent.search.optimize_config import from_sections
from kopt.agent.targets.kernelbench.fit import fit_for_optimize, fit_or_fail
from kopt.rl_finetune.export import ROWS, write_jsonl
from kopt.sandboxes.docker_sandbox import evaluator_for
from kopt.sandboxes.doctor import report
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.kernelbench_tasks import resolve_problem
from kopt.sandboxes.machine import fingerprint

# rich_markup_mode=None: help texts are plain text ("NAME.in [/ NAME.out]" is not markup)
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="kopt: find faster, verified versions of kernels and programs.")
runs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect run directories.")
app.add_typer(runs_app, name="runs")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kopt {version('kopt')}")
        except PackageNotFoundError:
            typer.echo("kopt (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="print kopt's version and exit")) -> None:
    """kopt: find faster, verified versions of kernels and programs."""


@app.command("eval")
def eval_cmd(
    task: Optional[Path] = typer.Argument(None, help="KernelBench task file (Model, get_inputs, get_init_inputs)"),
    solution: Optional[Path] = typer.Argument(None, help="solution file defining ModelNew"),
    device: Device = typer.Option("cpu", help="where the task runs"),
    suite: Optional[Path] = typer.Option(None, help="KernelBench checkout (with --level and --problem)"),
    level: Optional[int] = typer.Option(None, help="KernelBench level, with --suite"),
    problem: Optional[int] = typer.Option(None, help="problem number in the level, with --suite"),
    compile_only: bool = typer.Option(False, "--compile-only", help="build and load, do not run"),
    fit: Fit = typer.Option("auto", help="auto: scale the task's batch/spatial sizes to this machine; none: as is"),
    trials: int = typer.Option(5, help="correctness trials (random seeds)"),
    atol: float = typer.Option(1e-4, help="absolute tolerance (fp32)"),
    rtol: float = typer.Option(1e-4, help="relative tolerance (fp32)"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for both sides (default: half the cores)"),
    run_dir: Optional[Path] = typer.Option(None, help="also record the evaluation in this run directory"),
    sandbox: Sandbox = typer.Option("local", help="docker: the evaluation in a container (docs/gpu.md)"),
    gpus: Optional[str] = typer.Option(None, help="GPU indices to use, e.g. 0,1 (one evaluation per GPU)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Evaluate SOLUTION against TASK: correctness, tamper checks, speedup with a CI."""

    device, fit, sandbox = value(device), value(fit), value(sandbox)
    try:
        if suite is not None:
            if level is None or problem is None:
                raise UserInputError("--suite needs --level and --problem (e.g. --level 1 --problem 19)")
            if task is not None and solution is None:
                task, solution = None, task
            task = resolve_problem(suite, level, problem)
        if task is None or solution is None:
            raise UserInputError("usage: kopt eval TASK SOLUTION "
                                 "(or kopt eval --suite DIR --level L --problem N SOLUTION)")

        cfg = EvalConfig(device=device, compile_only=compile_only, trials=trials, atol=atol, rtol=rtol,
                         threads=threads, hidden_paths=[str(run_dir.resolve())] if run_dir else [])

        run = evaluator_for(sandbox, gpus, evaluate)  # fails first when no Docker engine answers

        # compile-only times nothing, and must work where the task cannot run (no GPU)
        cfg.hidden_paths += _originals(task, suite)  # the fitted copy is hidden by the evaluator
        task, fitted = fit_or_fail(task, "none" if compile_only else fit, device, run_dir)
        result = run(task, solution, cfg)
        if fitted is not None and fitted.changed:
            result["checks"]["fit"] = fitted.sizes
    except KoptError as e:
        fail_on(e)
    if run_dir is not None:
        _record_eval(run_dir, task, solution, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_eval(result)
    raise typer.Exit(0 if result["verdict"] in ("faster", "same", "slower", "unverified") else 1)


def _originals(task: Path, suite: Optional[Path]) -> list[str]:
    """What a candidate must not read besides the task it is judged on (the evaluator hides
    that one): the task as the user gave it, of which --fit judges a copy, and its suite."""
    return [str(Path(p).resolve()) for p in (task, suite) if p is not None and Path(p).exists()]


def _record_eval(run_dir: Path, task: Path, solution: Path, result: dict) -> None:
    store = Store.open_run_dir(run_dir)
    run_id = store.get_meta("run_id") or new_id()
    store.set_meta("run_id", run_id)
    store.start_run(run_id, "eval", str(task), {})
    cand = Candidate(code=Path(solution).read_text(), proposer={"model": "user"}, plan_step=str(solution))
    store.add_candidate(run_id, cand)
    store.add_evaluation(run_id, Evaluation(cand.id, result, machine=fingerprint()))
    store.set_status(run_id, "done")
    store.close()


def _print_eval(r: dict) -> None:
    from rich.console import Console

    con = Console()
    colour = {"faster": "green", "same": "yellow", "slower": "yellow"}.get(r["verdict"], "red")
    con.print(f"[bold {colour}]{r['verdict']}[/]  {r['solution']}  vs  {r['task']}  ({r['device']}, kernel: "
              f"{r['kernel']})")
    if r.get("speedup") is not None:
        lo, hi = r["speedup_ci"]
        con.print(f"speedup {r['speedup']:.3f}x  (95% CI {lo:.3f}-{hi:.3f})   reference {r['ref_ms']:.4f} ms"
                  f"   solution {r['new_ms']:.4f} ms")
    if r.get("reason"):
        con.print(f"reason: {r['reason']}", markup=False)
    c = r.get("checks", {})
    if "trials" in c:
        con.print(f"checks: {c['trials']} trials on {c['shapes']} shape(s), max abs err {c.get('max_abs_err', 0):.3g}, "
                  f"{c.get('timed_calls_checked', 0)} timed outputs checked", markup=False)
    if r.get("degenerate"):
        con.print(f"[red]degenerate task:[/] {r['degenerate_reason']}")
    for w in c.get("warnings", []):
        con.print(f"warning: {w}", markup=False)


# optimize's flags -> the config key each one sets (the file's [section] key)
OPTIMIZE_FLAGS = {"model": "model.name", "base_url": "model.base_url", "plan": "model.plan",
                  "planner": "model.planner", "cache": "run.cache",
                  "max_prompt_tokens": "model.max_prompt_tokens", "budget": "search.budget",
                  "max_time": "search.max_time", "max_tokens": "search.max_tokens", "max_cost": "search.max_cost",
                  **{k: f"run.{k}" for k in ("device", "fit", "kind", "executor", "jobs", "address", "sandbox",
                                             "gpus")},
                  **{k: f"target.{k}" for k in ("tests", "validator", "checker", "std", "stress", "test", "bench",
                                                "bench_metric", "higher_is_better", "focus", "branch",
                                                "include_dirty", "editable")}}
CONFIG_HELP = "TOML file of settings ([model] [run] [search] [eval] [target]); flags given override it"


@app.command("optimize")
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

    try:
        if resume and run_dir is None:
            raise UserInputError("--resume needs --run-dir DIR (the run to continue)")
        if override and not resume:
            raise UserInputError("--override is for --resume (a new run takes the flags as given)")
        stored = config_file.stored_config(run_dir) if resume else None
        file_data = config_file.load(config) if config else {}
        if config:
            from_sections(file_data, f"--config {config}")  # unknown keys are named against the file
        sections = config_file.resolve(stored, file_data, config_file.given_flags(ctx, OPTIMIZE_FLAGS),
                                       OPTIMIZE_FLAGS, override, run_dir)
        cfg = from_sections(sections, f"--config {config}" if config else "flags")

        original = target
        target, run_dir = fit_for_optimize(target, cfg.run.fit, cfg.run.device, run_dir, resume, cfg.run.kind)
        if target != original:
            cfg.eval.hidden_paths += _originals(original, None)
        summary = run_optimize(target, cfg, run_dir=run_dir, resume=resume, quiet=as_json)
    except KoptError as e:
        fail_on(e)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    raise typer.Exit(0 if summary.get("best_speedup") else 1)


@runs_app.command("list")
def runs_list(root: Path = typer.Argument(Path("runs"), help="folder holding run directories"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """List run directories with their status and best verified speedup."""

    rows = []
    for d in find_runs(root) if root.exists() else []:
        store = Store.open_run_dir(d)
        for run in store.runs():
            evals = store.evaluations(run["id"])
            best = max((e.speedup for e in evals if e.result.get("correct") and e.speedup), default=None)
            rows.append({"dir": str(d), "id": run["id"], "command": run["command"], "target": run["target"],
                         "status": run["status"], "evaluations": len(evals), "best_speedup": best})
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no runs under {root}")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("run dir", "command", "target", "status", "evals", "best")
    for r in rows:
        best = f"{r['best_speedup']:.3f}x" if r["best_speedup"] else "-"
        t.add_row(r["dir"], r["command"], Path(r["target"]).name, r["status"], str(r["evaluations"]), best)
    Console().print(t)


@runs_app.command("show")
def runs_show(run: Path = typer.Argument(..., help="run directory"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a run: its candidates and every evaluation."""

    if not (run / STORE_FILE).exists():
        fail(f"{run} is not a run directory (no {STORE_FILE}); see `kopt runs list`", 2)
    store = Store.open_run_dir(run)
    info = {"runs": store.runs(), "candidates": [], "evaluations": []}
    for c in store.candidates():
        info["candidates"].append({"id": c.id, "parents": c.parent_ids, "plan_step": c.plan_step,
                                   "skills": c.skills, "proposer": c.proposer})
    for e in store.evaluations():
        info["evaluations"].append({"candidate": e.candidate_id, **{k: e.result.get(k) for k in
                                    ("verdict", "speedup", "speedup_ci", "reason")}})
    store.close()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    con = Console()
    for r in info["runs"]:  # stored text comes from candidates and models: never read as markup
        con.print(f"[bold]{escape(str(r['id']))}[/] {escape(str(r['command']))} {escape(str(r['target']))} "
                  f"({escape(str(r['status']))})")
    t = Table("candidate", "verdict", "speedup", "CI", "reason")
    for e in info["evaluations"]:
        ci = e["speedup_ci"]
        t.add_row(Text(str(e["candidate"])), Text(str(e["verdict"] or "")),
                  f"{e['speedup']:.3f}" if e["speedup"] else "-",
                  f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-", Text((e["reason"] or "")[:80]))
    con.print(t)


@runs_app.command("export")
def runs_export(run: Path = typer.Argument(..., help="run directory"),
                fmt: ExportFormat = typer.Option("trl", "--format", help="trl: conversational prompt/completion/"
                                                 "reward; dpo: prompt/chosen/rejected pairs; sft: verified-faster "
                                                 "solutions as messages"),
                out: Optional[Path] = typer.Option(None, "--out", help="file to write (default: stdout)")) -> None:
    """Export a run's evaluated proposals as a training dataset (one JSON object a line)."""
    if not (run / STORE_FILE).exists():
        fail(f"{run} is not a run directory (no {STORE_FILE}); see `kopt runs list`", 2)
    store = Store.open_run_dir(run)
    try:
        rows = ROWS[value(fmt)](store)
    finally:
        store.close()
    if out is None:
        write_jsonl(rows, sys.stdout)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            n = write_jsonl(rows, fh)
    except OSError as e:
        fail(f"cannot write {out}: {e.strerror or e}", 2)
    typer.echo(f"wrote {n} example(s) to {out}", err=True)


@app.command("doctor")
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Report what this machine can do: sandbox isolation, compilers, GPU, valgrind, installed extras."""
    info = report()
    if as_json:
        typer.echo(json.dumps({**info, "extras": extras_status()}, indent=2))
        return
    for k, v in info.items():
        typer.echo(f"{k:<22} {v}")
    typer.echo("\noptional extras (pip install 'kopt[NAME]'):")
    for line in extras_lines():
        typer.echo(f"  {line}")


def _register_subcommands() -> None:
    for module in (skills, stress, bench, train, cache_cmd):
        module.register(app, runs_app)


_register_subcommands()


def _click_exceptions():
    """click's exceptions module: typer >= 0.26 ships its own copy of click."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main() -> None:
    """Run the app; a usage error (unknown flag, a value outside a flag's choices) is one line."""
    ex = _click_exceptions()
    try:
        rv = app(standalone_mode=False)
    except ex.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `kopt` / `kopt runs`: the help, as asked
            e.show()
            sys.exit(0)
        where = e.ctx.command_path if getattr(e, "ctx", None) else "kopt"
        typer.echo(f"kopt: {e.format_message().replace('Value error, ', '')} (see {where} --help)", err=True)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("kopt: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


if __name__ == "__main__":
    main()
