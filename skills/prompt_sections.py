"""What the search loop takes from the library: the skills section of the planner's prompt,
the skill ids a plan step names, and the order in which `rules` tries its templates."""
from __future__ import annotations

import os
import re
from functools import lru_cache

from kopt.skills.library import Library

# a mined card was written from a run's code (by a model or by rules), not reviewed by a person
MINED_MARK = " (mined, unreviewed)"
STEP_SKILL = re.compile(r"\[([a-z0-9]+(?:-[a-z0-9]+)*)\]")


@lru_cache(maxsize=4)
def _library(similarity: str) -> Library:
    return Library.load(similarity=similarity)


def library(similarity: str | None = None) -> Library:
    """The curated + user library, loaded once per process. Similarity: `auto` (embeddings
    when the local model is installed, else BM25) unless $KOPT_SKILLS_SIMILARITY says."""
    return _library(similarity or os.environ.get("KOPT_SKILLS_SIMILARITY", "auto"))


def skills_section(context: dict, operators: int = 4, metas: int = 2) -> str:
    """The retrieved cards as prompt text (cached in `context`, so the plan and its steps
    see the same list); records their ids in context["skill_ids"]."""
    if "skills_text" in context:
        return context["skills_text"]
    target = context.get("target")
    if target is None or not getattr(target, "source", None):
        target = context.get("task_source", "")
    lib = library()
    cards = lib.retrieve(target, k=operators, types={"operator"}) + lib.retrieve(target, k=metas, types={"meta"})
    lines = []
    for c in cards:
        sp = c.measured()
        seen = f" (helped {len(sp)} time(s), best {max(sp):.2f}x)" if sp else ""
        after = "\n".join("    " + ln[:140] for ln in c.how.after.strip().splitlines()[:6])
        mark = MINED_MARK if c.origin == "mined" else ""
        lines.append(f"- [{c.id}]{mark} {c.title}{seen}: {' '.join(c.how.summary.split())}\n  after:\n{after}\n"
                     f"  risk: {c.risks[0]}")
    context["skill_ids"] = [c.id for c in cards]
    context["skills_text"] = "\n".join(lines) or "(none)"
    return context["skills_text"]


def skills_of_step(step: str, known: list[str] | None = None) -> list[str]:
    """Skill ids a plan step names as `[id]` (only ids the library knows)."""
    if known is not None:
        return [s for s in dict.fromkeys(STEP_SKILL.findall(step)) if s in known]
    lib = library()
    return [s for s in dict.fromkeys(STEP_SKILL.findall(step)) if lib.resolve(s)]


def order_templates(target, templates: list, skills_of) -> list:
    """Templates sorted by the retrieval score of the skill each one mainly applies (its
    first skill id), best first; ties and unknown skills keep their given order."""
    lib = library("bm25")
    scores = {m.card.id: m.score for m in lib.rank(target)}

    def key(item):
        ids = skills_of(item)
        return -scores.get(lib.resolve(ids[0]) or ids[0], float("-inf")) if ids else float("inf")

    return sorted(templates, key=key)
