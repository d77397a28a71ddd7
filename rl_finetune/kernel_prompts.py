"""Training prompts for kernel optimization, and what an answer to each is applied to.

A prompt is the chat the optimizer model saw (or would see) plus the task it is about and the
code its answer edits, so a fresh completion can be turned into a solution and evaluated. From
stored runs: every LLM proposal's prompt, its parent's code and the run's task. From a suite of
tasks: the first coding step on each task's reference, as `kopt optimize` would ask it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.llm_proposer import code_messages
from kopt.agent.proposers.prompting.task_context import machine_sections
from kopt.agent.runs.store import STORE_FILE, Store, find_runs
from kopt.sandboxes.kernelbench_tasks import load_task, reference_solution, suite_tasks

ROLE_HEADER = re.compile(r"^\[(system|user|assistant)\]\n", re.M)
FIRST_STEP = "make the hottest operation faster with a custom kernel"


@dataclass(frozen=True)
class KernelPrompt:
    messages: tuple[tuple[str, str], ...]  # (role, content), hashable
    task: Path
    parent_code: str
    origin: str  # where it came from, for reports

    @property
    def chat(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


def prompt_key(prompt) -> str:
    """A string that identifies a prompt however the trainer hands it back (text or chat messages)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def parse_stored_prompt(text: str) -> list[dict]:
    """The chat messages of a prompt as the store keeps it ("[role]\\ncontent" blocks joined by blank lines)."""
    heads = list(ROLE_HEADER.finditer(text))
    if not heads or heads[0].start() != 0:
        return [{"role": "user", "content": text}]
    out = []
    for h, nxt in zip(heads, heads[1:] + [None]):
        end = nxt.start() if nxt else len(text)
        out.append({"role": h.group(1), "content": text[h.end():end].removesuffix("\n\n")})
    return out


def from_runs(run_dirs: list[Path]) -> list[KernelPrompt]:
    """One prompt per distinct stored LLM prompt whose parent code and task file are still there."""

    out, seen = [], set()
    for given in run_dirs:
        dirs = find_runs(given) if Path(given).is_dir() else []
        if not dirs:
            raise UserInputError(f"{given} holds no run ({STORE_FILE}); give a run directory or a folder of runs")
        for d in dirs:
            store = Store.open_run_dir(d)
            try:
                per_run = [(Path(r["target"] or ""), store.candidates(r["id"])) for r in store.runs()]
            finally:
                store.close()
            code = {c.id: c.code for _, cands in per_run for c in cands}
            for task, c in ((t, c) for t, cands in per_run for c in cands):
                if not c.prompt or not c.parent_ids or c.parent_ids[0] not in code or not task.is_file():
                    continue
                messages = tuple((m["role"], m["content"]) for m in parse_stored_prompt(c.prompt))
                key = (messages, str(task))
                if key in seen:
                    continue
                seen.add(key)
                out.append(KernelPrompt(messages, task.resolve(), code[c.parent_ids[0]], f"{d.name}:{c.id}"))
    return out


def from_suite(suite: Path, level: int | None = None, device: str = "cpu") -> list[KernelPrompt]:
    """The first coding step on each task of a suite (a KernelBench checkout or a folder of task
    files), as `kopt optimize` asks it, with the machine's context but without the per-task
    profile (that needs a run of every task)."""
    sections = machine_sections(device)
    out = []
    for path in suite_tasks(suite, level):
        try:
            task = load_task(path)
        except UserInputError:
            continue  # not a task file (a helper module next to the tasks)
        parent = reference_solution(task.source)
        messages = code_messages({"task_source": task.source, "parent": Candidate(code=parent), "lessons": "",
                                  "task_context": sections}, FIRST_STEP)
        out.append(KernelPrompt(tuple((m["role"], m["content"]) for m in messages), task.path, parent,
                                task.path.name))
    return out
