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
from kopt.agent.proposers.prompting.answers import strip_reasoning
from kopt.agent.proposers.prompting.edits import EditError, code_from_answer
from kopt.agent.proposers.prompting.feedback import describe
from kopt.agent.proposers.prompting.task_context import render, task_context
from kopt.agent.targets.kernelbench.kernelbench_target import KERNELBENCH_INSTRUCTIONS
from kopt.skills.prompt_sections import skills_of_step, skills_section

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
    text = strip_reasoning(text)
    steps = [m.group(1).strip() for m in re.finditer(r"^\s*(?:\d+[.)]|-)\s+(.+)$", text, re.M)]
    return steps[:limit] or [text.strip().splitlines()[0][:200] if text.strip() else "optimize the hottest op"]


def estimate_tokens(text: str) -> int:
    """About 3.5 characters per token for code and English (a backend with a tokenizer counts exactly)."""
    return len(text) * 2 // 7 + 1


def message_tokens(messages: list[dict]) -> int:
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


@dataclass
class Attempt:
    """One earlier answer in the lineage and what the evaluator said about it."""

    step: str
    answer: str
    results: list[dict]
    kept: bool  # an ancestor of the current solution, or an attempt from it that was not built on
    code: str = ""


def lineage_attempts(parent: Candidate, candidates: dict[str, Candidate], evaluations: dict[str, list[dict]],
                     limit: int = 6) -> list[Attempt]:
    """The parent's LLM-written ancestors (oldest first, the parent last), then the evaluated
    attempts already made from the parent; the last `limit` of them."""
    chain, c, seen = [], parent, set()
    while c is not None and c.completion and c.id not in seen:
        seen.add(c.id)
        chain.append(Attempt(c.plan_step, c.completion, evaluations.get(c.id, []), True, c.code))
        c = candidates.get(c.parent_ids[0]) if c.parent_ids else None
    chain.reverse()
    tried = sorted((k for k in candidates.values() if parent.id in k.parent_ids and k.completion
                    and evaluations.get(k.id)), key=lambda k: k.created)
    chain += [Attempt(k.plan_step, k.completion, evaluations[k.id], False, k.code) for k in tried]
    return chain[-limit:] if limit else []


@dataclass
class _Parts:
    """The droppable parts of a prompt; the task and the current code are not among them."""

    sections: dict
    attempts: list
    lessons: str
    skills: str
    dropped: list = field(default_factory=list)

    def drop_next(self) -> bool:
        """Drop the least useful remaining part; False when nothing is left to drop."""
        if len(self.attempts) > 1:
            self.attempts.pop(0)
            self.dropped.append("oldest attempt")
            return True
        for name in ("skills", "lessons"):
            if getattr(self, name):
                setattr(self, name, "")
                self.dropped.append(name)
                return True
        for name in ("example", "profile"):
            if self.sections.get(name):
                del self.sections[name]
                self.dropped.append(name)
                return True
        if self.attempts:
            self.attempts.pop(0)
            self.dropped.append("last attempt")
            return True
        if self.sections:
            self.dropped.append(self.sections.popitem()[0])
            return True
        return False


def build_messages(context: dict, step: str | None = None, max_prompt_tokens: int | None = None,
                   count=message_tokens) -> list[dict]:
    """The chat kopt sends for one coding step (`step`) or, with step=None, for a plan.

    `context` is what the search hands a proposer; the keys read are: task_source, parent (a
    Candidate), parent_results, lessons, and optionally target (the Target: system prompt,
    language, view of the code), task_context (named sections from
    `kopt.agent.proposers.prompting.task_context.task_context(target)`), and candidates / evaluations (dicts by
    candidate id, as the store holds them) from which the lineage's earlier attempts are read
    (or `attempts`, a list of `Attempt`, to give them directly).
    An exporter rebuilding the prompt of a stored candidate C passes its parent as `parent`,
    `C.plan_step` as `step`, and the store's candidates and evaluations made before C.

    The result is [system, user, (assistant, user)*]: the task and its context once, then
    each earlier attempt of the lineage as the model's answer followed by what the evaluator
    found, then the current code and the request. Over `max_prompt_tokens` (counted with
    `count`), parts are dropped in this order: older attempts, skills, lessons, the example,
    the profile, the last attempt, the hardware; never the task or the current code."""
    return _build(context, step, max_prompt_tokens, count)[0]


def _build(context: dict, step: str | None, max_prompt_tokens: int | None, count) -> tuple[list[dict], list[str]]:
    parent: Candidate = context["parent"]
    attempts = context.get("attempts")
    if attempts is None:
        attempts = lineage_attempts(parent, context.get("candidates") or {}, context.get("evaluations") or {})
    parts = _Parts(dict(context.get("task_context") or {}), list(attempts), context.get("lessons") or "",
                   skills_section(context) if step is None else "")
    while True:
        messages = _render(context, step, parts)
        if not max_prompt_tokens or count(messages) <= max_prompt_tokens or not parts.drop_next():
            return messages, parts.dropped


def _render(context: dict, step: str | None, parts: _Parts) -> list[dict]:
    lang, checks = _lang(context), getattr(context.get("target"), "checks_in_prompt", True)
    parent: Candidate = context["parent"]
    head = f"Task (reference):\n```{lang}\n{context['task_source'].rstrip()}\n```"
    if parts.sections:
        head += "\n\n" + render(parts.sections)
    turns: list[dict] = []
    for a in parts.attempts:
        lead = head + "\n\n" if not turns else _verdict_of(turns, checks) + "\n\n"
        turns.append({"role": "user", "content": lead + f"Plan step: {a.step}"})
        turns.append({"role": "assistant", "content": a.answer, "attempt": a})
    final = head if not turns else _verdict_of(turns, checks)
    last = (context.get("parent_results") or [{}])[-1]
    status = describe(last, parent.code, checks).splitlines()[0] if last else "not evaluated yet"
    final += f"\n\nCurrent solution ({status}):\n```{lang}\n{_view(context, parent.code)}\n```"
    if parts.skills:
        final += f"\n\nSkills that may apply (kopt's skill library):\n{parts.skills}"
    final += f"\n\nLessons so far:\n{parts.lessons or '(none)'}\n\n"
    if step is None:
        final += ("Write a short ordered plan (2-4 numbered steps, one line each) to make this faster, hottest "
                  "operation first; start each step with the [id] of the skill it applies, or [none]. Plan only, "
                  "no code.")
    else:
        final += (f"Implement only this plan step as a small change: {step}\n"
                  "Answer with SEARCH/REPLACE blocks against the current solution:\n"
                  "<<<<<<< SEARCH\n(exact lines)\n=======\n(new lines)\n>>>>>>> REPLACE\n"
                  f"or with one ```{lang} block holding the whole new file.")
    messages = [{"role": "system", "content": _system(context)}, *turns, {"role": "user", "content": final}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _verdict_of(turns: list[dict], checks: bool) -> str:
    """What the evaluator found for the answer in the last turn."""
    a: Attempt = turns[-1]["attempt"]
    text = "Evaluation of that answer:\n" + describe(a.results[-1] if a.results else None, a.code, checks)
    if not a.kept:
        text += "\nThat attempt was not built on; the next request starts again from the current solution."
    return text


def plan_messages(context: dict, max_prompt_tokens: int | None = None) -> list[dict]:
    return build_messages(context, None, max_prompt_tokens)


def code_messages(context: dict, step: str, max_prompt_tokens: int | None = None) -> list[dict]:
    return build_messages(context, step, max_prompt_tokens)


DEFAULT_MAX_PROMPT_TOKENS = 24_000  # a 32k-context model, less a 4k answer and the chat template's overhead


class LLMProposer:
    """Proposer protocol over any ChatModel backend. Each prompt is kept under
    `max_prompt_tokens` (counted by the backend's tokenizer when it has one)."""

    def __init__(self, chat: ChatModel, samples: int = 2, edit_retries: int = 2,
                 max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS, task_context: bool = True):
        self.chat, self.samples, self.edit_retries = chat, samples, edit_retries
        self.max_prompt_tokens, self.use_task_context = max_prompt_tokens, task_context
        self.name = chat.name
        self.ledger = Ledger()
        self.count = getattr(chat, "count_tokens", None) or message_tokens

    def _ask(self, messages: list[dict]) -> ChatResult:
        r = self.chat.complete(messages)
        self.ledger.add(r)
        self._log(messages, r)
        return r

    def _log(self, messages: list[dict], r: ChatResult) -> None:
        """The ledger's per-call record: the prompt's size as counted here and as the server billed it."""
        self.ledger.log.append({"prompt_tokens": self.count(messages), "tokens_in": r.tokens_in,
                                "tokens_out": r.tokens_out, "turns": len(messages)})

    def _messages(self, context: dict, step: str | None) -> list[dict]:
        messages, dropped = _build(context, step, self.max_prompt_tokens, self.count)
        self.last_dropped = dropped
        return messages

    def _with_task_context(self, context: dict) -> dict:
        if "task_context" in context or not self.use_task_context:
            return context

        try:
            sections = task_context(context.get("target"))
        except Exception as e:  # noqa: BLE001 - a prompt without the profile is still a prompt
            sections = {"profile": f"(not available: {type(e).__name__}: {e})"[:300]}
        return {**context, "task_context": sections}

    def propose(self, context: dict) -> list[Candidate]:
        context = self._with_task_context(context)
        parent: Candidate = context["parent"]
        plan = parent.proposer.get("plan")
        step_index = parent.proposer.get("step", -1) + 1
        plan_cost = ChatResult("")
        if not plan or step_index >= len(plan):
            plan_cost = self._ask(self._messages(context, None))
            plan, step_index = parse_plan(plan_cost.text), 0
        step = plan[step_index]
        messages = self._messages(context, step)
        firsts = self._first_answers(messages)
        out = []
        for k in range(self.samples):
            cand = self._one(context, messages, step, plan, step_index, plan_cost if k == 0 else ChatResult(""),
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
            self._log(messages, r)
        return answers

    def _one(self, context: dict, messages: list[dict], step: str, plan: list[str], step_index: int,
             extra: ChatResult, first: ChatResult | None = None):
        parent: Candidate = context["parent"]
        dropped = list(self.last_dropped)
        tokens_in, tokens_out, cost = extra.tokens_in, extra.tokens_out, extra.cost
        prompt_tokens = [extra.tokens_in] if extra.tokens_in else []
        errors = []
        for attempt in range(self.edit_retries + 1):
            r = first if attempt == 0 and first is not None else self._ask(messages)
            tokens_in, tokens_out, cost = tokens_in + r.tokens_in, tokens_out + r.tokens_out, cost + r.cost
            prompt_tokens.append(r.tokens_in or self.count(messages))
            try:
                code, kind = _apply(context, r.text, parent.code)
            except EditError as e:
                errors.append(str(e))
                messages = messages + [{"role": "assistant", "content": r.text},
                                       {"role": "user", "content": f"That answer could not be applied: {e}. "
                                                                   "Try again."}]
                continue
            kind, *notes = kind.split("; ")
            prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)

            return Candidate(code=code, parent_ids=[parent.id], plan_step=step, prompt=prompt, completion=r.text,
                             skills=skills_of_step(step),
                             proposer={"model": self.name, "tokens_in": tokens_in, "tokens_out": tokens_out,
                                       "cost": cost, "plan": plan, "step": step_index, "edit": kind,
                                       "edit_errors": errors, "edit_notes": notes, "prompt_tokens": prompt_tokens,
                                       "prompt_trimmed": dropped,
                                       "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest()[:16]})
        return None
