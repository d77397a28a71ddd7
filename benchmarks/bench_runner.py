"""The batch runner behind `kopt bench`: every task of a suite in its own run directory.

    BENCH_DIR/bench.json            the configuration and the task list (what --resume reads)
    BENCH_DIR/tasks/<id>/           one task: fit.json (+ task/<file> when fitted), run.sqlite,
                                    candidates/, report.md/html, result.json when finished
    BENCH_DIR/report.md, .html      the suite's tables and plots (benchmarks/bench_report.py)

A task is finished when its result.json exists (written atomically), so a bench killed
at any point resumes by skipping those. Budget 1 is one-shot (the proposer's first
candidate, evaluated once); larger budgets run the search (`run_optimize`) per task.
Anything that goes wrong inside one task -- its reference fails, the proposer gives up,
an evaluation worker dies -- becomes that task's recorded reason; the bench goes on.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kopt.agent.core import Candidate, new_id
from kopt.agent.errors import EnvironmentMissing, KoptError, UserInputError
from kopt.agent.proposers.factory import make_proposer, model_label
from kopt.agent.runs.run_report import write_reports
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.agent.search.loop import Search, SearchConfig
from kopt.agent.search.optimize import run_optimize
from kopt.agent.search.optimize_config import ModelConfig, OptimizeConfig, RunOptions, target_options_for
from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task
from kopt.agent.targets.kernelbench.size_probe import run_probe
from kopt.agent.targets.kinds import load_target
from kopt.benchmarks.bench_report import write_bench_report
from kopt.benchmarks.bench_results import (
    BENCH_FILE,
    RESULT_FILE,
    load_bench,
    load_results,
    result_from_store,
    task_dir,
    write_json,
)
from kopt.benchmarks.fastp import metrics
from kopt.benchmarks.suite import SuiteTask, find_tasks
from kopt.sandboxes.evaluator import EvalConfig
from kopt.sandboxes.executor_factory import make_executor

BASELINES = ("eager", "compile")


@dataclass
class BenchConfig:
    suite: str
    level: int | None = None
    tasks: str | None = None
    model: str = "rules"
    base_url: str | None = None
    budget: int = 1
    jobs: int = 1
    executor: str = "local"
    address: str | None = None
    fit: str = "auto"
    baselines: list[str] = field(default_factory=lambda: ["eager", "compile"])
    device: str = "cpu"
    compile_timeout_s: float = 300.0
    include_degenerate: bool = False
    eval: dict = field(default_factory=dict)  # EvalConfig overrides (trials, max_timing_s, ...)

    def check(self) -> None:
        if self.budget < 1:
            raise UserInputError(f"--budget must be at least 1 (got {self.budget}); 1 is one-shot")
        if self.jobs < 1:
            raise UserInputError(f"--jobs must be at least 1 (got {self.jobs})")
        if self.fit not in ("auto", "none"):
            raise UserInputError(f"unknown --fit {self.fit!r}; use auto or none")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise UserInputError(f"unknown baseline {', '.join(unknown)}; use a subset of {','.join(BASELINES)} "
                                 f"or none")


def optimize_config(cfg: BenchConfig) -> OptimizeConfig:
    """The OptimizeConfig a task's search runs with: the bench's model, budget, device and [eval]."""
    return OptimizeConfig(model=ModelConfig(name=cfg.model, base_url=cfg.base_url),
                          run=RunOptions(device=cfg.device), search=SearchConfig(budget=cfg.budget),
                          eval=EvalConfig(**{"device": cfg.device, **cfg.eval}))


def parse_baselines(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    return [] if items in ([], ["none"]) else items


# -- one task ---------------------------------------------------------------------------------------

class TaskRunner:
    """Runs one task end to end and returns its result record (never raises)."""

    def __init__(self, cfg: BenchConfig, bench_dir: Path, executor):
        self.cfg, self.bench_dir, self.executor = cfg, bench_dir, executor
        self.search_config = optimize_config(cfg)  # what a task's search (budget > 1) runs with

    def eval_config(self):
        return EvalConfig(**{"device": self.cfg.device, **self.cfg.eval})

    def _task_config(self, kind: str | None = None, options: dict | None = None) -> OptimizeConfig:
        """The bench's search config for one task (a copy: each task's run may adjust its own)."""
        cfg = self.search_config.model_copy(deep=True)
        cfg.run.kind = kind
        cfg.target = target_options_for(kind, {k: str(v) for k, v in (options or {}).items() if v is not None})
        return cfg

    def _evaluate(self, task: Path, solution: Path, cfg) -> dict:
        # every task's store and candidates stay out of reach, and the suite's own files (a
        # fitted task is a copy: the evaluator hides only that)
        hidden = [str(self.bench_dir.resolve()), str(Path(self.cfg.suite).resolve())]
        cfg = cfg.model_copy(update={"hidden_paths": list(dict.fromkeys([*cfg.hidden_paths, *hidden]))})
        return self.executor.submit(task, solution, cfg).result()

    def run(self, st: SuiteTask) -> dict:
        d = task_dir(self.bench_dir, st.id)
        d.mkdir(parents=True, exist_ok=True)
        started = time.time()
        rec = {"id": st.id, "name": st.name, "level": st.level, "number": st.number, "path": str(st.path)}
        try:
            rec.update(self._run(st, d))
        except KoptError as e:  # the task's reference fails here, a missing tool...
            rec.update(status="skipped", reason=str(e))
        except Exception as e:  # noqa: BLE001 - one task's crash is its result, the bench goes on
            (d / "error.txt").write_text(traceback.format_exc())
            first = (str(e).strip().splitlines() or ["no message"])[0][:300]
            rec.update(status="error", reason=f"{type(e).__name__}: {first}")
        rec.setdefault("correct", False)
        rec.setdefault("speedup", None)
        rec["wall_s"] = round(time.time() - started, 2)
        write_json(d / RESULT_FILE, rec)
        return rec

    def _run(self, st: SuiteTask, d: Path) -> dict:
        fit = None
        path = st.path
        if st.kind == "program":
            return self._run_program(st, d)
        if self.cfg.fit == "auto":
            fit = fit_task(st.path, d, FitConfig(device=self.cfg.device))
            if fit.skipped:
                return {"status": "skipped", "reason": fit.skipped, "fit": fit.record()}
            path = fit.path
        if self.cfg.budget == 1:
            self._one_shot(path, d)
        else:
            self._search(path, d)
        rec = {"status": "done", **result_from_store(d), "task_file": str(path)}
        if fit is not None:
            rec["fit"] = fit.record()
        baselines = {}
        if "eager" in self.cfg.baselines:
            baselines["eager"] = rec["eager"]
        if "compile" in self.cfg.baselines:
            baselines["compile"] = self._compile_baseline(path)
        rec["baselines"] = baselines
        if rec.get("degenerate") is None:
            rec["degenerate"] = False  # unknown (no verified run of the reference): counted as a real task
            rec["degenerate_unknown"] = True
        return rec

    def _run_program(self, st: SuiteTask, d: Path) -> dict:
        """A program target: no sizes to fit and no torch.compile; its reference's own
        evaluation is the eager baseline."""

        options = {"tests": st.tests, "validator": st.validator}
        if self.cfg.budget == 1:
            target = load_target(st.path, "program", self.eval_config(), options)
            self._one_shot(st.path, d, target)
        else:
            run_optimize(st.path, self._task_config("program", options), run_dir=d,
                         resume=(d / STORE_FILE).exists(), quiet=True)
        rec = {"status": "done", **result_from_store(d), "task_file": str(st.path)}
        rec["baselines"] = {"eager": rec["eager"]} if "eager" in self.cfg.baselines else {}
        if "compile" in self.cfg.baselines:
            rec["baselines"]["compile"] = {"skipped": "not a PyTorch task"}
        rec["degenerate"] = bool(rec.get("degenerate"))
        return rec

    def _fresh_store(self, d: Path) -> None:
        """A one-shot task interrupted half way starts again: one proposal, one evaluation."""

        for suffix in ("", "-wal", "-shm"):
            p = d / (STORE_FILE + suffix)
            if p.exists():
                p.unlink()

    def _one_shot(self, path: Path, d: Path, target=None) -> None:
        self._fresh_store(d)
        kind = target.kind if target is not None else "kernelbench"
        proposer = make_proposer(self.cfg.model, self.cfg.base_url, kind=kind)
        store = Store.open_run_dir(d)
        try:
            run_id = new_id()
            store.set_meta("run_id", run_id)
            store.start_run(run_id, "bench", str(path), {"model": self.cfg.model, "budget": 1})
            store.add_target(run_id, str(path), kind, Path(path).read_text())
            cfg = SearchConfig(budget=2, novelty="tokens", eval=self.eval_config())
            # KernelBench evaluations go through the executor (local threads or Ray); a
            # program target measures itself
            search = Search(target or path, proposer, store, run_id, d, cfg,
                            evaluator=None if target is not None else self._evaluate)
            root = Candidate(code=search.target.baseline_code(), plan_step="reference (baseline)",
                             proposer={"model": "reference"})
            search.add_candidate(root)
            if "eager" in self.cfg.baselines:
                search.evaluate(root.id)  # eager time, noise, and the task's degeneracy flags
            children = proposer.propose(search.context(root))
            if children:
                search.add_candidate(children[0])
                search.evaluate(children[0].id)
                stop = "one-shot: one proposal, evaluated once"
            else:
                stop = "one-shot: the proposer had nothing for this task"
            store.set_status(run_id, "done")
            self._task_report(d, store, run_id, search, stop)
        finally:
            store.close()

    def _task_report(self, d: Path, store, run_id: str, search, stop: str) -> None:
        best = search.best()  # never the reference itself
        write_reports(d, store, run_id, best, stop, model_label(self.cfg.model))

    def _search(self, path: Path, d: Path) -> None:
        run_optimize(path, self._task_config(), run_dir=d, resume=(d / STORE_FILE).exists(), quiet=True)

    def _compile_baseline(self, path: Path) -> dict:
        ev = self.eval_config()
        res = run_probe({"kind": "compile", "source": Path(path).read_text(), "path": str(path),
                         "device": self.cfg.device, "atol": ev.atol, "rtol": ev.rtol},
                        ev.threads, self.cfg.compile_timeout_s)
        if res.get("error"):
            res = {"skipped": res["error"]}
        return res


# -- the whole bench ------------------------------------------------------------------------------

def start_bench(cfg: BenchConfig, bench_dir: Path | None, resume: bool) -> tuple[Path, BenchConfig, list[SuiteTask]]:
    """Create (or reopen with --resume) a bench directory; returns its config and tasks."""
    if resume:
        if bench_dir is None:
            raise UserInputError("--resume needs --run-dir DIR (the bench to continue)")
        info = load_bench(bench_dir)
        stored = BenchConfig(**info["config"])
        stored.jobs, stored.executor, stored.address = cfg.jobs, cfg.executor, cfg.address  # where, not what
        tasks = [SuiteTask.from_record(t) for t in info["tasks"]]
        return bench_dir, stored, tasks
    cfg.check()
    tasks = find_tasks(cfg.suite, cfg.level, cfg.tasks)

    make_proposer(cfg.model, cfg.base_url)  # a bad --model fails here, not once per task
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise EnvironmentMissing("--device cuda but no CUDA GPU is visible to PyTorch; use --device cpu")
    if bench_dir is None:
        bench_dir = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-{Path(cfg.suite).resolve().name}"
    if (bench_dir / BENCH_FILE).exists():
        raise UserInputError(f"{bench_dir} already holds a bench; add --resume to continue it, or pick another "
                             f"--run-dir")
    bench_dir.mkdir(parents=True, exist_ok=True)
    write_json(bench_dir / BENCH_FILE, {
        "created": time.time(), "config": asdict(cfg),
        "tasks": [t.record() for t in tasks]})
    return bench_dir, cfg, tasks


def run_bench(cfg: BenchConfig, bench_dir: Path | None = None, resume: bool = False,
              on_event: Callable[[dict], None] | None = None) -> dict:
    """Run (or continue) a bench; returns the summary written next to the reports."""
    on_event = on_event or (lambda e: None)
    bench_dir, cfg, tasks = start_bench(cfg, bench_dir, resume)
    done = {t.id for t in tasks if (task_dir(bench_dir, t.id) / RESULT_FILE).exists()}
    todo = [t for t in tasks if t.id not in done]
    results = {r["id"]: r for r in load_results(bench_dir) if r.get("status") != "pending"}
    on_event({"type": "start", "bench_dir": str(bench_dir), "total": len(tasks), "done": len(done),
              "todo": len(todo), "fast_1": _fast1(list(results.values())), "config": cfg})
    try:
        executor = make_executor(cfg.executor, cfg.jobs, cfg.address)
    except ImportError as e:
        raise EnvironmentMissing(f"--executor {cfg.executor} needs {e.name or 'a missing package'}: "
                                 f"pip install 'kopt[dist]'") from None
    runner = TaskRunner(cfg, bench_dir, executor)
    pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="kopt-bench")
    try:
        pending = set()
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < cfg.jobs:
                t = queue.pop(0)
                on_event({"type": "task_start", "task": t.id})
                pending.add(pool.submit(runner.run, t))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                rec = f.result()
                results[rec["id"]] = rec
                on_event({"type": "task_done", "task": rec["id"], "result": rec, "done": len(results),
                          "total": len(tasks), "fast_1": _fast1(list(results.values()))})
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        executor.shutdown()
    return write_bench_report(bench_dir)


def _fast1(results: list[dict]) -> float | None:
    return metrics(results)["fast_p"]["1"]
