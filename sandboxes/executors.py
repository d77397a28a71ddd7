"""Where evaluations run: in local threads (each evaluation spawns its own sandboxed
workers) or, with `--executor ray`, as tasks on a Ray cluster (`ray_executor`);
`executor_factory.make_executor` picks one.

Every executor hands back `concurrent.futures.Future`s of `kopt eval --json` dicts, so the
search loop and `kopt bench` stream results into the store as each one completes.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from kopt.agent.errors import UserInputError
from kopt.sandboxes.evaluator import EvalConfig, evaluate

EvalFn = Callable[[Path, Path, EvalConfig], dict]


class Executor(Protocol):
    """Runs `evaluate(task, solution, cfg)` somewhere and returns a future of its dict."""

    name: str
    jobs: int

    def submit(self, task: Path, solution: Path, cfg: EvalConfig) -> Future: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """`jobs` evaluations at a time on this machine; threads suffice because the work
    happens in the sandboxed worker processes each evaluation starts."""

    name = "local"

    def __init__(self, jobs: int = 1, evaluator: EvalFn = evaluate):
        if jobs < 1:
            raise UserInputError(f"--jobs must be at least 1 (got {jobs})")
        self.jobs, self.evaluator = jobs, evaluator
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kopt-eval")

    def submit(self, task: Path, solution: Path, cfg: EvalConfig) -> Future:
        return self._pool.submit(self.evaluator, Path(task), Path(solution), cfg)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
