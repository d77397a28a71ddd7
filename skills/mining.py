"""Mining: slow -> fast pairs become new skill cards or evidence on existing ones.

Pairs come from a run (a parent -> child step whose child is verified -- every evaluation
correct -- and at least 1.1x faster than its parent by median speedup) or from a folder of
`NAME.slow.EXT` / `NAME.fast.EXT` files (gain measured by `kopt.skills.measure`). For each
pair: if the run already knows which skills the child applied, the gain is evidence on those
cards; otherwise a card writer proposes a card -- the LLM from the diff and the measured
gain, or, under `rules`, the tree-sitter diff classifier -- and a near-duplicate of an
existing card is merged into it (evidence, triggers) instead of added. Nothing is written
over a curated card: curated cards only receive evidence, in the user's overlay.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import KoptError, UserInputError
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.sandboxes.evaluator import evaluate
from kopt.skills.bm25 import tokens
from kopt.skills.card_writers import KINDS, Pair, _slug
from kopt.skills.diff_classifier import classify, language_of
from kopt.skills.library import CardError, Library
from kopt.skills.measure import Gain, measure_pair
from kopt.skills.schema import Card, Evidence, When

MIN_GAIN = 1.1


class NothingMined(KoptError):
    """The work ran but found nothing to learn from (exit 1)."""

    exit_code = 1


@dataclass
class Outcome:
    pair: str
    action: str  # evidence | new | merged | skipped
    card: str | None
    kinds: list[str]
    speedup: float | None
    method: str
    note: str

    def line(self) -> str:
        gain = f"{self.speedup:.3f}x ({self.method})" if self.speedup else "unmeasured"
        what = {"evidence": f"evidence on {self.card}", "new": f"new card {self.card}",
                "merged": f"merged into {self.card}", "skipped": "skipped"}[self.action]
        kinds = f" [{', '.join(self.kinds)}]" if self.kinds else ""
        return f"{self.pair}: {what}{kinds}, {gain}" + (f" -- {self.note}" if self.note else "")


# -- pairs -------------------------------------------------------------------------------------
def pairs_from_dir(folder: Path, measure: bool = True) -> list[Pair]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"--pairs {folder}: not a folder (give a folder of NAME.slow.EXT / NAME.fast.EXT files)")
    pairs = []
    for slow in sorted(folder.glob("*.slow.*")):
        name, ext = slow.name.split(".slow.", 1)
        fast = folder / f"{name}.fast.{ext}"
        language = language_of("." + ext)
        if not fast.exists():
            raise UserInputError(f"{slow} has no partner: add {fast.name} (pairs are NAME.slow.EXT and NAME.fast.EXT)")
        if language is None:
            raise UserInputError(f"{slow.name}: unsupported extension .{ext} (use .c, .cpp, .cc, .cu or .py)")
        stdin = folder / f"{name}.in"
        if ext.lower() in ("cu", "cuh"):
            gain = Gain(None, "unmeasured", "CUDA sources are classified, not run")
        elif measure:
            gain = measure_pair(slow, fast, language, stdin if stdin.exists() else None)
        else:
            gain = Gain(None, "unmeasured", "not measured")
        pairs.append(Pair(name, slow.read_text(errors="replace"), fast.read_text(errors="replace"), language, gain,
                          str(folder.resolve())))
    if not pairs:
        raise UserInputError(f"no pairs in {folder}: name them NAME.slow.EXT and NAME.fast.EXT "
                             f"(optional NAME.in: the input both read, used to check and measure them)")
    return pairs


def pairs_from_run(run_dir: Path) -> tuple[list[Pair], str]:
    """Verified parent -> child improvements of at least MIN_GAIN, and a one-line summary."""

    run_dir = Path(run_dir)
    if not (run_dir / STORE_FILE).exists():
        raise UserInputError(f"{run_dir} is not a run directory (no {STORE_FILE}); see `kopt runs list`")
    store = Store.open_run_dir(run_dir)
    try:
        cands = {c.id: c for c in store.candidates()}
        evals: dict[str, list[dict]] = {}
        for e in store.evaluations():
            evals.setdefault(e.candidate_id, []).append(e.result)
        targets = store.db.execute("SELECT path, kind, source FROM targets").fetchall()
    finally:
        store.close()
    task = Path(targets[0][0]).stem if targets else run_dir.name
    kind, task_source = (targets[0][1], targets[0][2]) if targets else ("", "")
    language = (language_of(Path(targets[0][0]).suffix) if targets else None) or "python"

    def median_speedup(cid: str) -> float | None:
        sp = [r["speedup"] for r in evals.get(cid, []) if r.get("speedup")]
        return statistics.median(sp) if sp else None

    pairs = []
    for child in cands.values():
        results = evals.get(child.id, [])
        if not child.parent_ids or not results or not all(r.get("correct") for r in results):
            continue
        parent = cands.get(child.parent_ids[0])
        c_sp = median_speedup(child.id)
        p_sp = median_speedup(parent.id) if parent else None
        if parent is None or c_sp is None:
            continue
        if p_sp is None and parent.proposer.get("model") == "reference":
            p_sp = 1.0
        if p_sp is None or c_sp / p_sp < MIN_GAIN:
            continue
        claim = f"the run claimed {c_sp / p_sp:.2f}x"
        is_ref = parent.proposer.get("model") == "reference"
        gain = remeasure(kind, task_source, parent.code, child.code, is_ref, claim)
        pairs.append(Pair(f"{task}:{child.id}", parent.code, child.code, language, gain, str(run_dir.resolve()),
                          list(child.skills)))
    summary = f"{len(cands)} candidates, {sum(len(v) for v in evals.values())} evaluations"
    return pairs, summary


def remeasure(kind: str, task_source: str, parent: str, child: str, parent_is_reference: bool,
              claim: str) -> Gain:
    """What kopt measures now for a run's parent -> child step, on fresh inputs (the evaluator
    draws new secret seeds): a stored speedup is the run's claim, never evidence. KernelBench
    tasks are re-evaluated in the sandbox on the CPU; other targets cannot be yet (unmeasured)."""
    if kind != "kernelbench" or not task_source:
        return Gain(None, "unmeasured", f"{claim}; kopt cannot re-measure {kind or 'unknown'} targets yet")
    import tempfile


    with tempfile.TemporaryDirectory(prefix="kopt-mine-") as d:
        task = Path(d) / "task.py"
        task.write_text(task_source)
        speedups = []
        for tag, code in (("child", child), ("parent", None if parent_is_reference else parent)):
            if code is None:
                speedups.append(1.0)  # the reference is 1x by definition
                continue
            (Path(d) / f"{tag}.py").write_text(code)
            try:
                r = evaluate(task, Path(d) / f"{tag}.py")
            except KoptError as e:
                return Gain(None, "unmeasured", f"{claim}; re-measuring failed: {e}", ok=False)
            if not r.get("correct") or not r.get("speedup"):
                return Gain(None, "unmeasured", f"{claim}; re-measured, the {tag} is {r.get('verdict')}: "
                                                f"{(r.get('reason') or '')[:120]}", ok=False)
            speedups.append(r["speedup"])
    gain = speedups[0] / speedups[1]
    return Gain(round(gain, 3), "eval", f"re-measured: {claim}; kopt measured {speedups[0]:.2f}x vs parent "
                                              f"{speedups[1]:.2f}x on fresh inputs")


# -- merging -----------------------------------------------------------------------------------------
def _words(card: Card) -> set[str]:
    return set(tokens(" ".join([card.title, " ".join(card.tags), card.how.summary])))


def near_duplicate(card: Card, library: Library, threshold: float = 0.45) -> Card | None:
    """An existing card in the same domain that says the same thing: a mined card with the
    same id or (for cards the classifier made) the same leading kind of change, or any card
    whose title, tags and summary share most of their words with this one."""
    best, best_sim = None, 0.0
    mine = _words(card)
    made_by_rules = card.id.startswith("mined-") and bool(card.signature)
    for other in library.cards.values():
        if other.domain != card.domain:
            continue
        if other.origin == "mined" and (other.id == card.id or
                                        (made_by_rules and other.signature[:1] == card.signature[:1])):
            return other
        theirs = _words(other)
        sim = len(mine & theirs) / max(1, len(mine | theirs))
        if sim > best_sim:
            best, best_sim = other, sim
    return best if best_sim >= threshold else None


def _merge_into(target: Card, new: Card) -> Card:
    """A mined card absorbs a near-duplicate's triggers and tags (evidence is added separately)."""
    when = When(code=list(dict.fromkeys(target.when.code + new.when.code)),
                profile=list(dict.fromkeys(target.when.profile + new.when.profile)),
                keywords=list(dict.fromkeys(target.when.keywords + new.when.keywords)))
    return target.model_copy(update={"when": when, "tags": list(dict.fromkeys(target.tags + new.tags)),
                                     "signature": list(dict.fromkeys(target.signature + new.signature))})


# -- the miner -------------------------------------------------------------------------------------
def mine(pairs: list[Pair], library: Library, writer) -> list[Outcome]:
    out = []
    for pair in pairs:
        out.append(_mine_one(pair, library, writer))
    return out


def _mine_one(pair: Pair, library: Library, writer) -> Outcome:
    g = pair.gain
    skip = lambda why, kinds=(): Outcome(pair.name, "skipped", None, list(kinds), g.speedup, g.method, why)
    if not g.ok:
        return skip(g.note)
    if g.speedup is not None and g.speedup < MIN_GAIN:
        return skip(f"measured gain below {MIN_GAIN}x ({g.note})")
    changes = classify(pair.slow, pair.fast, pair.language)
    kinds = [c.kind for c in changes]
    ev = Evidence(source=pair.source, task=pair.name, speedup=g.speedup, method=g.method,
                  note="; ".join([*(c.detail for c in changes[:3]), g.note])[:400], date=time.strftime("%Y-%m-%d"))
    unmeasured = f"not measured, so not evidence ({g.note})"
    tagged = dict.fromkeys(library.resolve(s) for s in pair.skills if library.resolve(s))
    known = [sid for sid in tagged if _covers(library.cards[sid], kinds, pair.domain)]
    if known:
        if g.speedup is None:
            return skip(unmeasured, kinds)
        for sid in known:
            library.add_evidence(sid, ev)
        return Outcome(pair.name, "evidence", ", ".join(known), kinds, g.speedup, g.method, g.note)
    try:
        card = writer.write(pair, changes, library)
    except CardError as e:
        return skip(str(e), kinds)
    if card is None:
        return skip("the diff classifier recognised no known kind of change", kinds)
    if isinstance(card, str):  # rules: an existing card covers this change
        if g.speedup is None:
            return skip(f"{card} covers it, but {unmeasured}", kinds)
        library.add_evidence(card, ev)
        return Outcome(pair.name, "evidence", card, kinds, g.speedup, g.method, g.note)
    dup = near_duplicate(card, library)
    if dup is not None:
        if dup.origin == "mined":
            merged = _merge_into(dup, card)
            if g.speedup is not None:
                merged.evidence.append(ev)
            library.save_card(merged)
        elif g.speedup is None:
            return skip(f"{dup.id} covers it, but {unmeasured}", kinds)
        else:
            library.add_evidence(dup.id, ev)
        return Outcome(pair.name, "merged", dup.id, kinds, g.speedup, g.method, g.note)
    # a new card from an unmeasured pair carries no evidence: it is marked mined and unreviewed
    evidence = [ev] if g.speedup is not None else []
    card = card.model_copy(update={"id": _free_id(card.id, library), "evidence": evidence, "origin": "mined"})
    library.save_card(card)
    return Outcome(pair.name, "new", card.id, kinds, g.speedup, g.method, g.note)


def _covers(card: Card, kinds: list[str], domain: str) -> bool:
    """Whether the diff classifier agrees that CARD is what the pair did: a plan step's `[id]`
    tag is the model's word, so it counts only when one of the classified kinds of change is
    the card's (its curated card for the domain, its signature or one of its tags)."""
    return any(KINDS[k][0].get(domain) == card.id or k in card.signature or k in card.tags for k in kinds)


def _free_id(wanted: str, library: Library) -> str:
    wanted = _slug(wanted)
    if wanted not in library.cards:
        return wanted
    n = 2
    while f"{wanted}-{n}" in library.cards:
        n += 1
    return f"{wanted}-{n}"
