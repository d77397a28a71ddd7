"""The few objects everything else passes around (design §3)."""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
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
    """What is optimized: knows its reference, how to evaluate a candidate."""

    name: str
    kind: str

    def reference_code(self) -> str: ...

    def evaluate(self, candidate: Candidate) -> dict: ...
