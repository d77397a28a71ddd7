"""`rules`: the built-in proposer that needs no LLM.

It applies the mechanical skills it can prove it understands -- today, fusing runs of
elementwise statements in `forward` into one OpenMP C++ pass (in place when the value
is a temporary) -- and says so in every candidate it makes. The evaluator keeps what is
really faster; when no rule applies it proposes nothing rather than guessing.
"""
from __future__ import annotations

import ast

from kopt.agent.core import Candidate
from kopt.agent.cpu_codegen import describe, generate
from kopt.agent.forward_analysis import find_fusable_runs, forward_of, model_class

BASE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno")
# name, extra flags, skill ids; each one child of the reference. Without -ffast-math GCC
# keeps expf/erff/tanhf scalar and the fused loop measured ~8x *slower* than eager
# PyTorch (whose kernels are vectorised), so only the vectorised variant is proposed.
VARIANTS = [
    ("vectorised math (-ffast-math: SIMD exp/erf/tanh)", ("-ffast-math",),
     ["cpu-fuse-elementwise-chain", "cpu-fast-math-simd"]),
]


class RulesProposer:
    name = "rules"

    def __init__(self) -> None:
        self.tokens = 0
        self.cost = 0.0

    def plan(self, task_source: str) -> list[str]:
        runs = self._runs(task_source)
        if not runs:
            return []
        return [f"{describe(runs)} into one OpenMP C++ pass over memory; {name}" for name, _, _ in VARIANTS]

    def propose(self, context: dict) -> list[Candidate]:
        parent: Candidate = context["parent"]
        if parent.parent_ids:  # only the reference is expanded: no rule builds on a fused kernel yet
            return []
        src = context["task_source"]
        runs = self._runs(src)
        out = []
        for name, extra, skills in VARIANTS:
            code = generate(src, runs, BASE_FLAGS + extra)
            step = f"{describe(runs)} into one OpenMP C++ pass over memory; {name}"
            out.append(Candidate(code=code, parent_ids=[parent.id], plan_step=step, skills=list(skills),
                                 proposer={"model": "rules", "tokens_in": 0, "tokens_out": 0, "cost": 0.0}))
        return out if runs else []

    @staticmethod
    def _runs(task_source: str):
        try:
            return find_fusable_runs(forward_of(model_class(ast.parse(task_source))))
        except (ValueError, SyntaxError):
            return []
