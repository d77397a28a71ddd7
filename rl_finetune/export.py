"""Trajectories of a run as a TRL-compatible dataset (design §8).

One example per evaluated proposal that has a prompt, in TRL's prompt/completion format
plus what a trainer or an analysis wants next to it. `datasets.load_dataset("json",
data_files=PATH)` reads the JSONL that `write_jsonl` writes. Pure functions over a Store.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from typing import IO

from kopt.agent.store import Store
from kopt.rl_finetune.rewards import RewardConfig, reward

FORMATS = ("trl",)


def trl_rows(store: Store, run_id: str | None = None, cfg: RewardConfig = RewardConfig()) -> list[dict]:
    """{"prompt", "completion", "reward", "candidate_id", "verdict", "speedup", "model"} per proposal.

    reward: the mean over the candidate's evaluations that have one (`unverified` ones do
    not); a candidate with none is left out, as is one without a prompt (the reference,
    hand-written solutions) or never evaluated (a near-duplicate). verdict: its latest
    evaluation's. speedup: the mean over its evaluations that measured one, else None.
    """
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
        rows.append({"prompt": c.prompt, "completion": c.completion, "reward": float(statistics.fmean(rewards)),
                     "candidate_id": c.id, "verdict": evals[-1].get("verdict"),
                     "speedup": statistics.fmean(speedups) if speedups else None,
                     "model": c.proposer.get("model")})
    return rows


def write_jsonl(rows: Iterable[dict], out: IO[str]) -> int:
    """One JSON object a line; returns how many."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n
