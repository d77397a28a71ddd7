"""`kopt optimize`: set up (or reopen) a run directory, run the search with live
progress, and leave best/, report.md and report.html behind -- also after Ctrl-C."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from kopt.agent.core import new_id
from kopt.agent.errors import UserInputError
from kopt.agent.proposers import make_proposer, model_label
from kopt.agent.report import write_reports
from kopt.agent.search import Search, SearchConfig
from kopt.agent.store import STORE_FILE, Store
from kopt.agent.targets import load_target
from kopt.sandboxes.evaluator import EvalConfig


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


def _evaluation_backends(kind: str, executor: str, jobs: int, address: str | None, sandbox: str,
                         gpus: str | None):
    """(executor or None, evaluator or None) for `--executor/--jobs/--gpus` and `--sandbox`."""
    if kind != "kernelbench" and (executor != "local" or jobs > 1 or sandbox != "local" or gpus):
        raise UserInputError("--executor, --jobs, --gpus and --sandbox apply to KernelBench tasks; "
                             f"a {kind} target is evaluated by the local sandbox one candidate at a time")
    from kopt.sandboxes.docker_sandbox import evaluator_for
    from kopt.sandboxes.evaluator import evaluate

    container = evaluator_for(sandbox, None, evaluate) if sandbox != "local" else None
    if executor == "local" and jobs <= 1 and not gpus:
        return None, container
    from kopt.sandboxes.executors import make_executor
    from kopt.sandboxes.gpu_timing import parse_gpus

    try:
        ids = parse_gpus(gpus)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    return make_executor(executor, jobs, address, gpus=ids or None), container


def run_optimize(target: Path, model: str = "rules", base_url: str | None = None, budget: int = 12,
                 max_time: float | None = None, max_tokens: int | None = None, max_cost: float | None = None,
                 run_dir: Path | None = None, resume: bool = False, device: str = "cpu",
                 quiet: bool = False, eval_cfg: EvalConfig | None = None, kind: str | None = None,
                 target_options: dict | None = None, executor: str = "local", jobs: int = 1,
                 address: str | None = None, sandbox: str = "local", gpus: str | None = None) -> dict:
    """`target_options` are the kind-specific flags (program: tests, validator, ...; repo: test, bench, ...).
    `executor`/`jobs`/`address`/`gpus` spread a KernelBench task's evaluations (local threads, Ray);
    `sandbox="docker"` runs each of them in a container."""
    # nvcc_filter: CUDA candidates that cannot run here are still compiled, so errors reach the model
    eval_cfg = eval_cfg or EvalConfig(device=device, nvcc_filter=True)
    task = load_target(target, kind, eval_cfg, target_options)
    if resume:
        if not (run_dir / STORE_FILE).exists():
            raise UserInputError(f"nothing to resume: {run_dir} has no {STORE_FILE}")
    else:
        run_dir = run_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{task.name}"
        if (run_dir / STORE_FILE).exists():
            raise UserInputError(f"{run_dir} already holds a run; add --resume to continue it, "
                                 f"or pick another --run-dir")
    if hasattr(task, "use_run_dir"):  # e.g. a repo target keeps its work trees under the run dir
        task.use_run_dir(run_dir)
    proposer = make_proposer(model, base_url, kind=task.kind)
    pool, container = _evaluation_backends(task.kind, executor, jobs, address, sandbox, gpus)
    store = Store.open_run_dir(run_dir)
    run_id = store.get_meta("run_id")
    if run_id is None:
        run_id = new_id()
        store.set_meta("run_id", run_id)
        store.start_run(run_id, "optimize", str(task.path), {"model": model, "budget": budget})
        store.add_target(run_id, str(task.path), task.kind, task.source)
    else:
        store.db.execute("UPDATE runs SET status='running' WHERE id=?", (run_id,))
    cfg = SearchConfig(budget=budget, max_time=max_time, max_tokens=max_tokens, max_cost=max_cost,
                       eval=eval_cfg)
    if not quiet:
        print(f"kopt optimize {task.path.name} with {model_label(model)}; run dir {run_dir}", file=sys.stderr)
    search = Search(task, proposer, store, run_id, run_dir, cfg, _progress(quiet), evaluator=container,
                    executor=pool)
    try:
        best = search.run()
    finally:
        if pool is not None:
            pool.shutdown()
    status = "interrupted" if search.stop_reason.startswith("interrupted") else "done"
    store.set_status(run_id, status)
    if best:
        out = run_dir / "best"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        (out / f"solution{task.suffix}").write_text(search.cands[best].code)
        if hasattr(task, "write_best"):  # e.g. a repo target also leaves best.patch / a branch
            task.write_best(run_dir, search.cands[best].code)
        (out / "evaluations.json").write_text(json.dumps(search.evals[best], indent=2))
    summary = write_reports(run_dir, store, run_id, best, search.stop_reason, model_label(model))
    summary["run_dir"] = str(run_dir)
    store.close()
    if not quiet:
        sp = f"{summary['best_speedup']:.3f}x" if summary.get("best_speedup") else "none"
        print(f"stopped: {search.stop_reason}\nbest verified speedup: {sp}  ->  {run_dir}/best/solution{task.suffix}\n"
              f"report: {run_dir}/report.md, {run_dir}/report.html", file=sys.stderr)
    return summary
