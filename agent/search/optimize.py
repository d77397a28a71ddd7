"""`kopt optimize`: set up (or reopen) a run directory, run the search with live
progress, and leave best/, report.md and report.html behind -- also after Ctrl-C."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from kopt.agent.core import Target, new_id
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.factory import make_proposer, model_label
from kopt.agent.proposers.planning.plans import parse_plan
from kopt.agent.proposers.planning.proposer import PlanProposer, make_planner
from kopt.agent.runs import config_file
from kopt.agent.runs.run_report import write_reports
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.agent.search.loop import Search, SearchConfig
from kopt.agent.search.optimize_config import ModelConfig, OptimizeConfig, RunOptions
from kopt.agent.targets.kinds import load_target
from kopt.sandboxes.docker_sandbox import evaluator_for
from kopt.sandboxes.eval_cache import CachedEvaluator, CachedExecutor, EvalCache
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.executor_factory import make_executor
from kopt.sandboxes.gpu_timing import parse_gpus


def _progress(quiet: bool):
    """A printer for search events: one plain line each (rich when on a terminal)."""
    if quiet:
        return lambda e: None
    from rich.console import Console

    con = Console(stderr=True, highlight=False, soft_wrap=True)

    def show(e: dict) -> None:
        if e["type"] == "evaluation":
            r, st = e["result"], e["stats"]
            sp = f"{r['speedup']:.3f}x" if r.get("speedup") else "-"
            best = f"{e['best_speedup']:.3f}x" if e.get("best_speedup") else "-"
            con.print(f"[iter {e['iteration']} eval {st.evaluations}] {e['candidate']} {r['verdict']:<13} {sp:>8}  "
                      f"best {best}  tokens {st.tokens}  ${st.cost:.4f}  {(r.get('reason') or '')[:70]}", markup=False)
        elif e["type"] == "duplicate":
            con.print(f"[skip] {e['candidate']} is a near-duplicate of {e['near']} (distance {e['distance']:.3f})",
                      markup=False)
        elif e["type"] == "expanded":
            con.print(f"[expand] {e['candidate']} -> {e['children']} new candidate(s)", markup=False)

    return show


def _evaluation_backends(task: Target, executor: str, jobs: int, address: str | None, sandbox: str,
                         gpus: str | None):
    """(executor or None, evaluator or None) for `--executor/--jobs/--gpus` and `--sandbox`: only
    for a target whose evaluations may run apart (`parallel_eval`)."""
    if not task.parallel_eval and (executor != "local" or jobs > 1 or sandbox != "local" or gpus):
        raise UserInputError("--executor, --jobs, --gpus and --sandbox apply to KernelBench tasks; "
                             f"a {task.kind} target is evaluated by the local sandbox one candidate at a time")
    container = evaluator_for(sandbox, None, evaluate) if sandbox != "local" else None
    if executor == "local" and jobs <= 1 and not gpus:
        return None, container
    try:
        ids = parse_gpus(gpus)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    return make_executor(executor, jobs, address, gpus=ids or None), container


def config_from_kwargs(model: str = "rules", base_url: str | None = None, budget: int = 12,
                      max_time: float | None = None, max_tokens: int | None = None, max_cost: float | None = None,
                      device: str = "cpu", eval_cfg: EvalConfig | None = None, kind: str | None = None,
                      target_options: dict | None = None, executor: str = "local", jobs: int = 1,
                      address: str | None = None, sandbox: str = "local", gpus: str | None = None) -> OptimizeConfig:
    """The OptimizeConfig the keyword form of `run_optimize` (library callers, benchmarks) means."""
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in (target_options or {}).items() if v is not None}
    cfg = OptimizeConfig(model=ModelConfig(name=model, base_url=base_url),
                         run=RunOptions(device=device, kind=kind, executor=executor, jobs=jobs, address=address,
                                        sandbox=sandbox, gpus=gpus),
                         search=SearchConfig(budget=budget, max_time=max_time, max_tokens=max_tokens,
                                             max_cost=max_cost),
                         eval=eval_cfg.model_copy() if eval_cfg else EvalConfig(device=device, nvcc_filter=True),
                         target=opts or None)  # read as the options of the run's kind
    cfg.eval.device = eval_cfg.device if eval_cfg else device  # an explicit eval_cfg keeps its device
    return cfg


def _proposer(cfg: OptimizeConfig, task: Target):
    """The proposer for `task`, with [model]'s sampling settings where the backend takes them;
    a plan (--plan / --planner) only where the target is `plannable`."""
    m = cfg.model
    kind = task.kind
    if m.plan or m.planner:
        return _plan_proposer(cfg, kind, task.plannable)
    kw = {} if m.temperature is None else {"temperature": m.temperature}
    if m.max_tokens is not None:
        kw["max_new_tokens" if m.name.startswith("hf:") else "max_tokens"] = m.max_tokens
    if (kw or m.max_prompt_tokens) and m.name == "rules":
        raise UserInputError("[model] temperature/max_tokens/max_prompt_tokens apply to an LLM; "
                             "--model rules samples nothing")
    proposer = make_proposer(m.name, m.base_url, kind=kind, max_prompt_tokens=m.max_prompt_tokens, **kw)
    for name in ("samples", "edit_retries"):
        if getattr(m, name) is not None:
            if not hasattr(proposer, name):
                raise UserInputError(f"[model] {name} applies to an LLM proposer, not to --model {m.name}")
            setattr(proposer, name, getattr(m, name))
    return proposer


def _plan_proposer(cfg: OptimizeConfig, kind: str, plannable: bool) -> PlanProposer:
    """--plan / --planner: the rules coder driven by a plan (issue 21)."""
    m = cfg.model
    if not plannable:
        raise UserInputError(f"--plan and --planner drive the rules coder on a KernelBench task; a {kind} target "
                             f"is optimized without a plan (drop --plan/--planner)")
    if m.name != "rules":
        raise UserInputError("--plan and --planner drive the rules coder on a KernelBench task: use --model rules")
    if m.plan and m.planner:
        raise UserInputError("give --plan or --planner, not both")
    if m.plan:
        return PlanProposer(parse_plan(m.plan))
    return PlanProposer(planner=make_planner(m.planner, m.base_url), planner_name=m.planner)


def _cached(cfg: OptimizeConfig, task, pool, container, store: Store, run_id: str):
    """(evaluator, executor) through the evaluation cache; a search's re-evaluation of a candidate
    is always a fresh measurement, also after --resume (the candidates the store holds
    measurements of are remembered as measured). Only for a `cacheable` target, not for Docker."""
    if not cfg.run.cache or not task.cacheable or container is not None:
        return container, pool
    cached = CachedEvaluator(EvalCache(), fresh_on_repeat=True)
    measured = {e.candidate_id for e in store.evaluations(run_id)}
    cached.remember(task.path, [c.code for c in store.candidates(run_id) if c.id in measured])
    return (cached, None) if pool is None else (None, CachedExecutor(pool, cached))


def _report_plan(proposer, run_dir: Path, quiet: bool) -> list[dict] | None:
    if not isinstance(proposer, PlanProposer) or not proposer.results:
        return None
    (run_dir / "plan.json").write_text(json.dumps({"planner": proposer.planner_name or "user",
                                                   "completion": proposer.completion,
                                                   "steps": proposer.results}, indent=2))
    if not quiet:
        for i, r in enumerate(proposer.results, 1):
            print(f"plan step {i} {r['step']}: {r['status']}  {r['reason'][:110]}", file=sys.stderr)
    return proposer.results


def run_optimize(target: Path, cfg: OptimizeConfig | None = None, *, run_dir: Path | None = None,
                 resume: bool = False, quiet: bool = False, **kwargs) -> dict:
    """Optimize `target` with `cfg` (built by the CLI from defaults, --config and flags).
    The older keyword form (model=, budget=, eval_cfg=, target_options=, executor=, ...) still
    works: `config_from_kwargs` turns it into a config. The resolved config is written to
    RUN_DIR/config.json, which `--resume` reads back."""
    if cfg is None:
        cfg = config_from_kwargs(**kwargs)
    elif kwargs:
        raise TypeError(f"run_optimize: pass either cfg or keyword settings, not both ({', '.join(kwargs)})")
    eval_cfg, kind = cfg.eval, cfg.run.kind
    model = cfg.model.name
    target_options = cfg.target_options()
    task = load_target(target, kind, eval_cfg, target_options)
    if resume:
        if not (run_dir / STORE_FILE).exists():
            raise UserInputError(f"nothing to resume: {run_dir} has no {STORE_FILE}")
    else:
        run_dir = run_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{task.name}"
        if (run_dir / STORE_FILE).exists():
            raise UserInputError(f"{run_dir} already holds a run; add --resume to continue it, "
                                 f"or pick another --run-dir")
    task.use_run_dir(run_dir)
    proposer = _proposer(cfg, task)
    r = cfg.run
    pool, container = _evaluation_backends(task, r.executor, r.jobs, r.address, r.sandbox, r.gpus)
    config_file.write(run_dir, cfg.sections())
    store = Store.open_run_dir(run_dir)
    run_id = store.get_meta("run_id")
    if run_id is None:
        run_id = new_id()
        store.set_meta("run_id", run_id)
        store.start_run(run_id, "optimize", str(task.path), {"model": model, "budget": cfg.search.budget})
        store.add_target(run_id, str(task.path), task.kind, task.source)
    else:
        store.db.execute("UPDATE runs SET status='running' WHERE id=?", (run_id,))
    if not quiet:
        print(f"kopt optimize {task.path.name} with {model_label(model)}; run dir {run_dir}", file=sys.stderr)
    evaluator, pool = _cached(cfg, task, pool, container, store, run_id)
    search = Search(task, proposer, store, run_id, run_dir, cfg.search, _progress(quiet), evaluator=evaluator,
                    executor=pool)
    try:
        best = search.run()
    finally:
        if pool is not None:
            pool.shutdown()
    status = "interrupted" if search.stop_reason.startswith("interrupted") else "done"
    store.set_status(run_id, status)
    _write_best(run_dir, task, search, best)
    summary = write_reports(run_dir, store, run_id, best, search.stop_reason, model_label(model))
    summary.update(_never_slower(search, best))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["run_dir"] = str(run_dir)
    if (plan := _report_plan(proposer, run_dir, quiet)) is not None:
        summary["plan"] = plan
    store.close()
    if not quiet:
        if best:
            sp = f"{summary['best_speedup']:.3f}x (verified faster)"
        else:
            raw = summary.get("best_candidate_speedup")
            sp = "none: no verified improvement, best/ is the reference" + (
                f" (the best correct candidate measured {raw:.3f}x, not verified faster)" if raw else "")
        print(f"stopped: {search.stop_reason}\nbest verified speedup: {sp}  ->  {run_dir}/best/solution{task.suffix}\n"
              f"report: {run_dir}/report.md, {run_dir}/report.html", file=sys.stderr)
    return summary


def _write_best(run_dir: Path, task: Target, search: Search, best: str | None) -> None:
    """best/: the verified-faster candidate, or the reference itself when there is none
    (never slower than what the user had)."""
    out = run_dir / "best"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    root = next((cid for cid, c in search.cands.items() if not c.parent_ids), None)
    code = search.cands[best].code if best else task.baseline_code()
    (out / f"solution{task.suffix}").write_text(code)
    task.write_best(run_dir, code)  # e.g. a repository also leaves best.patch and a branch
    (out / "evaluations.json").write_text(json.dumps(search.evals.get(best or root or "", []), indent=2))


def _never_slower(search: Search, best: str | None) -> dict:
    """The summary's verdict: `verified improvement` (best/ is a candidate) or `no verified
    improvement` (best/ is the reference); and the best correct candidate before that rule."""
    raw = search.best_correct()
    return {"verdict": "verified improvement" if best else "no verified improvement",
            "returned": "candidate" if best else "reference",
            "best_candidate": raw, "best_candidate_speedup": search.mean_speedup(raw) if raw else None}
