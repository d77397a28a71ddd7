"""The skill card format (architecture §6), checked by pydantic when a card is loaded.

A card is data a person (or a model, when mining) writes in YAML; everything that reads
cards -- retrieval, the planner's prompt, the `rules` proposer -- relies on these fields
being present and well formed, so a bad card is refused at load time with the file, the
field and the fix rather than failing later inside a search.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

DOMAINS = ("cuda", "triton", "cpp", "python", "any")
TYPES = ("operator", "meta")
ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class When(Strict):
    """Triggers: a card applies when its regexes match the target's code (or profile text)
    or its keywords appear in it."""

    code: list[str] = Field(default_factory=list, description="regexes searched in the target's source")
    profile: list[str] = Field(default_factory=list, description="regexes searched in profiler output")
    keywords: list[str] = Field(default_factory=list, description="plain words or phrases, case-insensitive")

    @field_validator("code", "profile")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"regex {p!r} does not compile ({e}); escape ( [ . + with a backslash") from None
        return patterns


class How(Strict):
    summary: str = Field(min_length=10, description="the transformation in a few sentences")
    before: str = Field(min_length=1, description="a short sketch of the slow form")
    after: str = Field(min_length=1, description="the same sketch after the change")


class Evidence(Strict):
    """One observation of the skill at work. `speedup` is only ever a measured number;
    an observation that could not be measured keeps `speedup: null` and says so in `method`."""

    source: str = Field(min_length=1, description="run directory, pairs folder or 'curated'")
    task: str = ""
    speedup: Optional[float] = Field(None, gt=0)
    method: Literal["eval", "instructions", "cpu-time", "wall-time", "unmeasured"] = "unmeasured"
    note: str = ""
    date: str = ""


class Card(Strict):
    id: str = Field(pattern=ID_PATTERN, description="lowercase words joined by '-', unique")
    type: Literal["operator", "meta"]
    domain: Literal["cuda", "triton", "cpp", "python", "any"]
    title: str = Field(min_length=5)
    tags: list[str] = Field(default_factory=list)
    when: When
    how: How
    risks: list[str] = Field(min_length=1)
    evidence: list[Evidence] = Field(default_factory=list)
    aliases: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default_factory=list, description="other ids proposers may record for this skill")
    origin: Literal["curated", "mined"] = "curated"
    signature: list[str] = Field(default_factory=list, description="change kinds a mined card came from")

    def text(self) -> str:
        """What text similarity reads: everything a person would search for."""
        w = self.when
        return " ".join([self.title, " ".join(self.tags), " ".join(w.keywords), self.how.summary,
                         self.how.before, self.how.after, " ".join(self.risks)])

    def measured(self) -> list[float]:
        return [e.speedup for e in self.evidence if e.speedup is not None]


FIXES = {
    "id": "use lowercase words joined by '-', e.g. cpp-fast-io",
    "type": "use one of: operator, meta",
    "domain": "use one of: " + ", ".join(DOMAINS),
    "title": "give a short title (at least 5 characters)",
    "when": "give `when:` with `code:` regexes and/or `keywords:`",
    "how": "give `how:` with `summary:`, `before:` and `after:`",
    "risks": "list at least one risk under `risks:`",
    "evidence": "each evidence entry needs `source:`; `speedup:` must be a positive measured number or null",
}


def fix_for(loc: tuple, error: dict | None = None) -> str:
    """The one-line advice for a pydantic error at `loc`."""
    head = str(loc[0]) if loc else ""
    if error and error.get("type") == "string_type" and isinstance(error.get("input"), dict):
        return "quote the text: a ': ' inside an unquoted value makes YAML read it as a mapping"
    if head == "when" and len(loc) > 1 and loc[1] in ("code", "profile"):
        return "write a valid Python regular expression"
    return FIXES.get(head, "remove the unknown field (known: " + ", ".join(Card.model_fields) + ")")
