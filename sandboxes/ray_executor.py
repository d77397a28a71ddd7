"""`--executor ray`: evaluations as Ray tasks, on a cluster or on a local Ray runtime.

Each evaluation is one task that asks Ray for CPUs (and one GPU when it evaluates on
`cuda`), so Ray places it where those resources are free and never runs two GPU
evaluations on one GPU. The task carries the task and solution *text*, not paths, so a
node that shares no file system with this one can run it. A node or worker process that
dies mid-evaluation is a system failure to Ray: the task is retried on another worker
(`max_retries`), and only when retries run out does its future raise `WorkerCrashedError`.
"""
from __future__ import annotations

import os
import socket
import tempfile
from concurrent.futures import Future
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.executors import EvalFn


def _evaluate_on_worker(task_name: str, task_text: str, solution_name: str, solution_text: str,
                        cfg: dict, evaluator: EvalFn, origin: tuple[str, str]) -> dict:
    """Runs inside a Ray worker: rebuild the two files, evaluate, say where it ran."""
    import ray

    with tempfile.TemporaryDirectory(prefix="kopt-ray-") as d:
        task, solution = Path(d) / "task" / task_name, Path(d) / "solution" / solution_name
        for path, text in ((task, task_text), (solution, solution_text)):
            path.parent.mkdir()
            path.write_text(text)
        # Ray chose the GPU (CUDA_VISIBLE_DEVICES of this worker); a local --gpus index means nothing here
        result = evaluator(task, solution, EvalConfig(**{**cfg, "gpu": None}))
    result["task"], result["solution"] = origin
    ctx = ray.get_runtime_context()
    result["executor"] = {"name": "ray", "node": ctx.get_node_id(), "host": socket.gethostname(),
                          "pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()]}
    return result


class RayExecutor:
    """Submits evaluations to Ray; `submit` returns a `concurrent.futures.Future`."""

    name = "ray"

    def __init__(self, jobs: int = 1, address: str | None = None, cpus_per_eval: float = 1.0,
                 max_retries: int = 2, evaluator: EvalFn = evaluate):
        if jobs < 1:
            raise UserInputError(f"--jobs must be at least 1 (got {jobs})")
        try:
            import ray
        except ImportError:
            raise EnvironmentMissing("--executor ray needs Ray: pip install 'kopt[dist]'") from None
        self.jobs, self.address, self.cpus_per_eval = jobs, address, cpus_per_eval
        self.max_retries, self.evaluator = max_retries, evaluator
        self._started_here = not ray.is_initialized()
        if self._started_here:
            self._connect(ray, address)
        self._remote = ray.remote(_evaluate_on_worker)

    def _connect(self, ray, address: str | None) -> None:
        """A cluster at `address`, or a local runtime sized to `jobs` evaluations at a time."""
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=max(1, round(self.jobs * self.cpus_per_eval)), **kwargs)
        except ConnectionError as e:
            raise EnvironmentMissing(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0]}") from None

    def submit(self, task: Path, solution: Path, cfg: EvalConfig) -> Future:
        task, solution = Path(task), Path(solution)
        try:
            task_text, solution_text = task.read_text(), solution.read_text()
        except OSError as e:
            raise UserInputError(f"cannot read {e.filename}: {e.strerror}") from None
        gpus = 1 if cfg.device == "cuda" and not cfg.compile_only else 0
        ref = self._remote.options(num_cpus=self.cpus_per_eval, num_gpus=gpus, max_retries=self.max_retries,
                                   retry_exceptions=False, name=f"kopt-eval:{solution.name}").remote(
            task.name, task_text, solution.name, solution_text, cfg.model_dump(), self.evaluator,
            (str(task), str(solution)))
        return ref.future()

    def shutdown(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
