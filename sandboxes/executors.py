"""Where evaluations run: in local threads (each evaluation spawns its own sandboxed
workers) or, with `--executor ray`, as tasks on a Ray cluster (see `ray_executor`).

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


EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", jobs: int = 1, address: str | None = None,
                  gpus: list[int] | None = None) -> Executor:
    """The executor named by `--executor` (local threads, or Ray; Ray imports lazily).
    `gpus` (from `--gpus 0,1`): locally, one evaluation per named GPU at a time."""
    if kind == "local" and gpus:
        from kopt.sandboxes.gpu_timing import GpuLeases

        return LocalExecutor(len(gpus), evaluator=GpuLeases(evaluate, gpus))
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        from kopt.sandboxes.ray_executor import RayExecutor

        return RayExecutor(jobs=jobs, address=address)
    raise UserInputError(f"unknown executor {kind!r}; use one of: {', '.join(EXECUTORS)}")
