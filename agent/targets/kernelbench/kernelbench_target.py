"""A KernelBench task as a search target: candidates are whole `ModelNew` files, judged by
kopt's sandboxed evaluator."""
from __future__ import annotations

from pathlib import Path

from kopt.agent.proposers.prompting.edits import code_from_answer
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.kernelbench_tasks import KernelBenchTask, load_task, reference_solution

KERNELBENCH_INSTRUCTIONS = (
    "You optimize PyTorch models for speed. You write a drop-in `ModelNew` (same constructor "
    "arguments and outputs as `Model`) that uses custom kernels (C++ via ctypes or "
    "torch.utils.cpp_extension.load_inline, CUDA, Triton) or better algorithms. Outputs must match "
    "the reference within 1e-4 on random signed inputs of several shapes; never return inputs, "
    "cached or constant results, never import the task file or call the reference Model.")


class KernelBenchTarget:
    """A KernelBench task as a search target: candidates are whole `ModelNew` files judged
    by kopt's sandboxed evaluator."""

    kind = "kernelbench"
    language = "python"
    suffix = ".py"
    instructions = KERNELBENCH_INSTRUCTIONS
    # an evaluation is the evaluator's self-contained function of (task file, solution,
    # EvalConfig); its `checks` (compiler errors, mismatches, profiles) are written for the model
    parallel_eval = cacheable = plannable = checks_in_prompt = profiled = True

    def __init__(self, task: KernelBenchTask, eval_cfg=None):
        self.task, self.eval_cfg = task, eval_cfg or EvalConfig()
        self.path, self.source, self.name = task.path, task.source, task.name

    @classmethod
    def from_path(cls, path: str | Path, eval_cfg=None) -> KernelBenchTarget:
        return cls(load_task(path), eval_cfg)

    def baseline_code(self) -> str:
        return reference_solution(self.source)

    def evaluate(self, candidate_file: Path, hidden_paths: list[str]) -> dict:
        hidden = list(dict.fromkeys([*self.eval_cfg.hidden_paths, *hidden_paths]))
        return evaluate(self.path, candidate_file, self.eval_cfg.model_copy(update={"hidden_paths": hidden}))

    def view(self, code: str) -> str:
        return code

    def apply_answer(self, answer: str, parent_code: str) -> tuple[str, str]:
        return code_from_answer(answer, parent_code)

    def use_run_dir(self, run_dir: Path) -> None:
        pass  # nothing of its own to keep there

    def write_best(self, run_dir: Path, code: str) -> None:
        pass  # best/solution.py is the whole answer
