"""`--executor local|ray` (and `--gpus`): the executor a job's evaluations run on. Above both
executors, so neither imports the other."""
from __future__ import annotations

from kopt.agent.errors import UserInputError
from kopt.sandboxes.evaluator import evaluate
from kopt.sandboxes.executors import Executor, LocalExecutor
from kopt.sandboxes.gpu_timing import GpuLeases
from kopt.sandboxes.ray_executor import RayExecutor

EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", jobs: int = 1, address: str | None = None,
                  gpus: list[int] | None = None) -> Executor:
    """The executor named by `--executor` (local threads, or Ray; Ray imports lazily).
    `gpus` (from `--gpus 0,1`): locally, one evaluation per named GPU at a time."""
    if kind == "local" and gpus:
        return LocalExecutor(len(gpus), evaluator=GpuLeases(evaluate, gpus))
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(jobs=jobs, address=address)
    raise UserInputError(f"unknown executor {kind!r}; use one of: {', '.join(EXECUTORS)}")
