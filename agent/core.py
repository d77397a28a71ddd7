"""The few objects everything else passes around (architecture §3)."""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


@dataclass
class Candidate:
    """One proposed solution: whole-file code plus where it came from."""

    code: str
    parent_ids: list[str] = field(default_factory=list)
    plan_step: str = ""
    skills: list[str] = field(default_factory=list)
    proposer: dict = field(default_factory=dict)  # model, prompt_hash, tokens_in/out, cost
    prompt: str = ""
    completion: str = ""
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)


@dataclass
class Evaluation:
    """One sandboxed measurement of one candidate (the `kopt eval --json` dict inside)."""

    candidate_id: str
    result: dict
    seed: int | None = None
    machine: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def verdict(self) -> str:
        return self.result.get("verdict", "")

    @property
    def speedup(self) -> float | None:
        return self.result.get("speedup")


class Proposer(Protocol):
    """Anything that turns a search context into new candidates (LLM backends, rules)."""

    name: str

    def propose(self, context: dict) -> list[Candidate]: ...


class Target(Protocol):
    """What is optimized (architecture §3): a KernelBench task, a program, or a repository.

    The search loop only talks to this interface, so every kind gets the same queue,
    store, novelty filter, proposers and reports.
    """

    name: str          # short, for run-dir names
    kind: str          # "kernelbench" | "program" | "repo": a name (store, messages, `--model rules`'s rule set)
    path: Path         # what the user pointed at
    source: str        # the reference code a proposer reads
    language: str      # code-fence language of candidates: python | cpp | c | diff
    suffix: str        # file suffix a candidate is written with: .py | .cpp | .patch
    instructions: str  # system prompt for LLM proposers: what a valid candidate is

    # What the jobs may do with it: the search and `kopt optimize` ask these, never the kind.
    # parallel_eval: an evaluation is `sandboxes.evaluator.evaluate(path, solution, EvalConfig)`,
    #   self-contained, so an executor pool (--jobs, Ray), --gpus or a Docker sandbox may run it.
    # cacheable: the evaluation cache may serve it (keyed by task, solution, config, toolchain).
    # plannable: the rules coder can follow a plan on it (--plan / --planner).
    # checks_in_prompt: the feedback a model gets on a result reads its `checks` (compiler
    #   errors, mismatches, profiles); False: verdict and reason only (a program's checks
    #   describe hidden tests, a repository's are for the user).
    # profiled: a model's prompt also gets the reference's profile, what a solution can use on
    #   the device and an example solution (a PyTorch task); False: the machine only.
    parallel_eval: bool
    cacheable: bool
    plannable: bool
    checks_in_prompt: bool
    profiled: bool

    def baseline_code(self) -> str:
        """The root candidate's code: the reference itself, as a candidate."""

    def evaluate(self, candidate_file: Path, hidden_paths: list[str]) -> dict:
        """One sandboxed measurement: a dict in the `kopt eval --json` shape (architecture §1).
        `hidden_paths` (the run dir, ...) must be out of the candidate's reach."""

    def view(self, code: str) -> str:
        """What a proposer is shown of a candidate's code (a repo target shows files, not a diff)."""

    def apply_answer(self, answer: str, parent_code: str) -> tuple[str, str]:
        """(new candidate code, edit kind) from a model's answer; raises EditError."""

    def use_run_dir(self, run_dir: Path) -> None:
        """Called once the run dir is known, before anything is evaluated (a repository keeps
        its work trees there; a no-op elsewhere)."""

    def write_best(self, run_dir: Path, code: str) -> None:
        """Called after best/solution<suffix> is written with CODE: what else the answer leaves
        (a repository: best.patch, best/SUMMARY.md, a branch; a no-op elsewhere)."""
