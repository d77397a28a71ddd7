"""Trajectories of a run as datasets in the formats TRL's trainers read (architecture §8).

- trl: conversational prompt/completion with a reward (GRPO/online trainers, reward models):
  `prompt` is the list of chat messages the model saw, `completion` the assistant's answer.
- dpo: preference pairs from proposals to the same prompt, `chosen` the better rewarded answer.
- sft: `messages` of the proposals whose measured evaluations all say `faster`.

`datasets.load_dataset("json", data_files=PATH)` reads the JSONL that `write_jsonl` writes.
Pure functions over a Store.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from typing import IO

from kopt.agent.runs.store import Store
from kopt.rl_finetune.kernel_prompts import parse_stored_prompt
from kopt.rl_finetune.rewards import RewardConfig, reward

FORMATS = ("trl", "dpo", "sft")
MEASURED = ("faster", "same", "slower")


def messages_of(prompt: str) -> list[dict]:
    """The chat messages of a stored prompt: a JSON list of {"role", "content"} as is, else the
    store's "[role]\\ncontent" blocks (agent/proposers/llm_proposer.py's format) parsed back."""
    if prompt.startswith("["):
        try:
            msgs = json.loads(prompt)
        except json.JSONDecodeError:
            msgs = None
        if isinstance(msgs, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in msgs):
            return msgs
    return parse_stored_prompt(prompt)


def trl_rows(store: Store, run_id: str | None = None, cfg: RewardConfig = RewardConfig()) -> list[dict]:
    """{"prompt": [messages], "completion": [assistant message], "reward", "candidate_id", "verdict",
    "speedup", "model"} per proposal.

    reward: the mean over the candidate's evaluations that have one (`unverified` ones do
    not); a candidate with none is left out, as is one without a prompt (the reference,
    hand-written solutions) or never evaluated (a near-duplicate). verdict: its latest
    evaluation's. speedup: the mean over its evaluations that measured one, else None.
    """
    return [_public(r) for r in _scored(store, run_id, cfg)]


def _scored(store: Store, run_id: str | None, cfg: RewardConfig) -> list[dict]:
    results: dict[str, list[dict]] = {}
    for e in store.evaluations(run_id):
        results.setdefault(e.candidate_id, []).append(e.result)
    rows = []
    for c in store.candidates(run_id):
        evals = results.get(c.id)
        if not c.prompt or not evals:
            continue
        rewards = [r for r in (reward(x, cfg) for x in evals) if r is not None]
        if not rewards:
            continue
        speedups = [float(x["speedup"]) for x in evals if x.get("speedup")]
        rows.append({"prompt": messages_of(c.prompt),
                     "completion": [{"role": "assistant", "content": c.completion}],
                     "reward": float(statistics.fmean(rewards)), "candidate_id": c.id,
                     "verdict": evals[-1].get("verdict"),
                     "speedup": statistics.fmean(speedups) if speedups else None,
                     "model": c.proposer.get("model"),
                     "_key": c.prompt, "_verdicts": [x.get("verdict") for x in evals]})
    return rows


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def dpo_rows(store: Store, run_id: str | None = None, cfg: RewardConfig = RewardConfig()) -> list[dict]:
    """{"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"}: per stored prompt with
    two or more rewarded proposals, the best rewarded against the worst (ties make no pair)."""
    groups: dict[str, list[dict]] = {}
    for r in _scored(store, run_id, cfg):
        groups.setdefault(r["_key"], []).append(r)
    pairs = []
    for rows in groups.values():
        best = max(rows, key=lambda r: r["reward"])
        worst = min(rows, key=lambda r: r["reward"])
        if best["reward"] > worst["reward"]:
            pairs.append({"prompt": best["prompt"], "chosen": best["completion"], "rejected": worst["completion"],
                          "chosen_reward": best["reward"], "rejected_reward": worst["reward"],
                          "chosen_id": best["candidate_id"], "rejected_id": worst["candidate_id"]})
    return pairs


def sft_rows(store: Store, run_id: str | None = None, cfg: RewardConfig = RewardConfig()) -> list[dict]:
    """{"messages": prompt + answer, "candidate_id", "speedup"} for each proposal verified faster:
    at least one evaluation measured it, and every measured one says `faster`."""
    out = []
    for r in _scored(store, run_id, cfg):
        measured = [v for v in r["_verdicts"] if v != "unverified"]
        if measured and all(v == "faster" for v in measured):
            out.append({"messages": r["prompt"] + r["completion"], "candidate_id": r["candidate_id"],
                        "speedup": r["speedup"]})
    return out


ROWS = {"trl": trl_rows, "dpo": dpo_rows, "sft": sft_rows}


def write_jsonl(rows: Iterable[dict], out: IO[str]) -> int:
    """One JSON object a line; returns how many."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n
