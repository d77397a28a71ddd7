"""`kopt eval TASK SOLUTION`: one candidate judged against its KernelBench task (architecture §1, §4)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.choices import Device, Fit, Sandbox, value
from kopt.agent.core import Candidate, Evaluation, new_id
from kopt.agent.errors import UserInputError
from kopt.agent.runs.store import Store
from kopt.agent.targets.kernelbench.fit import fit_or_fail
from kopt.sandboxes.docker_sandbox import evaluator_for
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.kernelbench_tasks import resolve_problem
from kopt.sandboxes.machine import fingerprint


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
    app.command("eval")(eval_cmd)


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
    cfg.hidden_paths += original_paths(task, suite)  # the fitted copy is hidden by the evaluator
    task, fitted = fit_or_fail(task, "none" if compile_only else fit, device, run_dir)
    result = run(task, solution, cfg)
    if fitted is not None and fitted.changed:
        result["checks"]["fit"] = fitted.sizes
    if run_dir is not None:
        _record_eval(run_dir, task, solution, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_eval(result)
    # `unverified` is ok where it is what was asked (--compile-only) or its correctness was checked
    # (Triton under the interpreter); a CUDA kernel on a CPU, or an output the float64 second
    # opinion had no time for, passed no check: `kopt eval ... && ship` must not go on
    checked = result["verdict"] == "unverified" and (compile_only or result["correct"])
    raise typer.Exit(0 if result["verdict"] in ("faster", "same", "slower") or checked else 1)


def original_paths(task: Path, suite: Optional[Path]) -> list[str]:
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
