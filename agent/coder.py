"""The LLM side of the macro-plan / micro-code split.

The planner asks once per lineage for a short ordered plan; the coder implements one
step per child as a small edit (SEARCH/REPLACE, or a whole file) that the evaluator
then compiles and checks before the next step builds on it. An edit that does not apply
goes back to the model with the error, a bounded number of times.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

from kopt.agent.core import Candidate
from kopt.agent.edits import EditError, code_from_answer
from kopt.agent.targets.kernelbench import KERNELBENCH_INSTRUCTIONS

SYSTEM = KERNELBENCH_INSTRUCTIONS  # a context without a target is a KernelBench task


def _system(context: dict) -> str:
    target = context.get("target")
    return target.instructions if target is not None else SYSTEM


def _lang(context: dict) -> str:
    target = context.get("target")
    return target.language if target is not None else "python"


def _view(context: dict, code: str) -> str:
    target = context.get("target")
    return target.view(code) if target is not None else code


def _apply(context: dict, answer: str, parent_code: str) -> tuple[str, str]:
    target = context.get("target")
    return target.apply_answer(answer, parent_code) if target is not None else code_from_answer(answer, parent_code)


@dataclass
class ChatResult:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


class ChatModel(Protocol):
    name: str

    def complete(self, messages: list[dict]) -> ChatResult: ...


class ProposerUnavailable(Exception):
    """The model backend gave up (after its retries): the run stops cleanly."""


@dataclass
class Ledger:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    calls: int = 0
    log: list = field(default_factory=list)

    def add(self, r: ChatResult) -> None:
        self.tokens_in += r.tokens_in
        self.tokens_out += r.tokens_out
        self.cost += r.cost
        self.calls += 1


def parse_plan(text: str, limit: int = 4) -> list[str]:
    steps = [m.group(1).strip() for m in re.finditer(r"^\s*(?:\d+[.)]|-)\s+(.+)$", text, re.M)]
    return steps[:limit] or [text.strip().splitlines()[0][:200] if text.strip() else "optimize the hottest op"]


def plan_messages(context: dict) -> list[dict]:
    from kopt.skills.prompt import skills_section

    return [{"role": "system", "content": _system(context)},
            {"role": "user", "content": f"Task:\n```{_lang(context)}\n{context['task_source']}\n```\n\n"
                                        f"Skills that may apply (kopt's skill library):\n{skills_section(context)}\n\n"
                                        f"Lessons so far:\n{context.get('lessons') or '(none)'}\n\n"
                                        "Write a short ordered plan (2-4 numbered steps, one line each) to make "
                                        "this faster, hottest operation first; start each step with the [id] of "
                                        "the skill it applies, or [none]. Plan only, no code."}]


def code_messages(context: dict, step: str) -> list[dict]:
    parent: Candidate = context["parent"]
    last = (context.get("parent_results") or [{}])[-1]
    status = f"verdict {last.get('verdict')}, speedup {last.get('speedup')}" if last else "not evaluated"
    lang = _lang(context)
    return [{"role": "system", "content": _system(context)},
            {"role": "user", "content":
                f"Task (reference):\n```{lang}\n{context['task_source']}\n```\n\n"
                f"Current solution ({status}):\n```{lang}\n{_view(context, parent.code)}\n```\n\n"
                f"Lessons so far:\n{context.get('lessons') or '(none)'}\n\n"
                f"Implement only this plan step as a small change: {step}\n"
                "Answer with SEARCH/REPLACE blocks against the current solution:\n"
                "<<<<<<< SEARCH\n(exact lines)\n=======\n(new lines)\n>>>>>>> REPLACE\n"
                f"or with one ```{lang} block holding the whole new file."}]


class LLMProposer:
    """Proposer protocol over any ChatModel backend."""

    def __init__(self, chat: ChatModel, samples: int = 2, edit_retries: int = 2):
        self.chat, self.samples, self.edit_retries = chat, samples, edit_retries
        self.name = chat.name
        self.ledger = Ledger()

    def _ask(self, messages: list[dict]) -> ChatResult:
        r = self.chat.complete(messages)
        self.ledger.add(r)
        return r

    def propose(self, context: dict) -> list[Candidate]:
        parent: Candidate = context["parent"]
        plan = parent.proposer.get("plan")
        step_index = parent.proposer.get("step", -1) + 1
        plan_cost = ChatResult("")
        if not plan or step_index >= len(plan):
            plan_cost = self._ask(plan_messages(context))
            plan, step_index = parse_plan(plan_cost.text), 0
        step = plan[step_index]
        firsts = self._first_answers(code_messages(context, step))
        out = []
        for k in range(self.samples):
            cand = self._one(context, step, plan, step_index, plan_cost if k == 0 else ChatResult(""),
                             firsts[k] if firsts else None)
            if cand is not None:
                out.append(cand)
        return out

    def _first_answers(self, messages: list[dict]) -> list[ChatResult] | None:
        """All samples' first answers in one batched generation when the backend can (a local
        model: one forward pass per token for the whole group); retries go one at a time."""
        batch = getattr(self.chat, "generate_batch", None)
        if batch is None or self.samples < 2:
            return None
        answers = batch([messages], n=self.samples)[0]
        for r in answers:
            self.ledger.add(r)
        return answers

    def _one(self, context: dict, step: str, plan: list[str], step_index: int, extra: ChatResult,
             first: ChatResult | None = None):
        parent: Candidate = context["parent"]
        messages = code_messages(context, step)
        tokens_in, tokens_out, cost = extra.tokens_in, extra.tokens_out, extra.cost
        errors = []
        for attempt in range(self.edit_retries + 1):
            r = first if attempt == 0 and first is not None else self._ask(messages)
            tokens_in, tokens_out, cost = tokens_in + r.tokens_in, tokens_out + r.tokens_out, cost + r.cost
            try:
                code, kind = _apply(context, r.text, parent.code)
            except EditError as e:
                errors.append(str(e))
                messages = messages + [{"role": "assistant", "content": r.text},
                                       {"role": "user", "content": f"That answer could not be applied: {e}. "
                                                                   "Try again."}]
                continue
            prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
            from kopt.skills.prompt import skills_of_step

            return Candidate(code=code, parent_ids=[parent.id], plan_step=step, prompt=prompt, completion=r.text,
                             skills=skills_of_step(step),
                             proposer={"model": self.name, "tokens_in": tokens_in, "tokens_out": tokens_out,
                                       "cost": cost, "plan": plan, "step": step_index, "edit": kind,
                                       "edit_errors": errors,
                                       "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest()[:16]})
        return None
