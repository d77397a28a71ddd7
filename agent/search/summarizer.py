"""Carries lessons across iterations: what worked, what failed and why, in a few lines
that go into the next prompts. Deterministic (no LLM needed)."""
from __future__ import annotations

from collections import Counter

from kopt.agent.core import Candidate
from kopt.agent.proposers.prompting.feedback import short_paths


def summarize(cands: dict[str, Candidate], evals: dict[str, list[dict]], duplicates: dict[str, str],
              limit: int = 8) -> str:
    lines: list[str] = []
    verdicts = Counter(r.get("verdict") for rs in evals.values() for r in rs)
    if verdicts:
        lines.append("Evaluations so far: " + ", ".join(f"{v} x{n}" for v, n in verdicts.most_common()))
    worked = sorted(((max(r.get("speedup") or 0 for r in rs), cid) for cid, rs in evals.items()
                     if rs and all(r.get("correct") for r in rs)), reverse=True)
    for sp, cid in worked[:3]:
        if cands[cid].plan_step:
            label = "WORKED" if sp > 1.0 else "CORRECT BUT NOT FASTER"
            lines.append(f"{label} ({sp:.2f}x): {cands[cid].plan_step[:160]}")
    failures = Counter()
    for rs in evals.values():
        for r in rs:
            if not r.get("correct") and r.get("reason"):
                failures[(r.get("verdict"), short_paths(r["reason"])[:160])] += 1
    for (verdict, reason), n in failures.most_common(4):
        lines.append(f"FAILED ({verdict}, x{n}): {reason}")
    if duplicates:
        lines.append(f"{len(duplicates)} proposal(s) were near-duplicates of earlier ones: "
                     f"propose something different.")
    return "\n".join(lines[:limit])
